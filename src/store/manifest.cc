#include "store/manifest.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/clock.h"
#include "core/hex.h"
#include "core/path.h"
#include "store/json_scanner.h"

namespace depot::store {

using core::Status;
using Json = nlohmann::json;

std::string_view EntryTypeName(EntryType t) {
  switch (t) {
    case EntryType::kFile:
      return "file";
    case EntryType::kDirectory:
      return "dir";
    case EntryType::kSymlink:
      return "symlink";
  }
  return "?";
}

std::uint64_t Manifest::TotalFileBytes() const {
  std::uint64_t n = 0;
  for (const auto& e : entries) n += e.type == EntryType::kFile ? e.size : 0;
  return n;
}

std::uint64_t Manifest::FileCount() const {
  return static_cast<std::uint64_t>(std::count_if(
      entries.begin(), entries.end(), [](const Entry& e) { return e.type == EntryType::kFile; }));
}

std::vector<ChunkRef> Manifest::UniqueChunks() const {
  std::vector<ChunkRef> out;
  ChunkIdSet seen;
  for (const auto& e : entries) {
    for (const auto& c : e.chunks) {
      if (seen.insert(c.id).second) out.push_back(c);
    }
  }
  return out;
}

const Program* FindProgram(const std::vector<Program>& programs, std::string_view name) {
  for (const auto& p : programs) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const Program* Manifest::FindProgram(std::string_view name) const {
  return store::FindProgram(programs, name);
}

Status ValidatePackageName(std::string_view name) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("package name '" + std::string(name.substr(0, 80)) + "' " +
                                   std::string(why));
  };
  if (name.empty() || name.size() > 64) return bad("must be 1 to 64 characters long");
  if (name[0] == '.' || name[0] == '-') return bad("must not start with '.' or '-'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return bad("may only contain letters, digits, '.', '_' and '-'");
  }
  return Status::Ok();
}

Status ValidateProgramName(std::string_view name) {
  if (name.empty() || name.size() > 32 || !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
      })) {
    return Status::InvalidArgument("program name '" + std::string(name.substr(0, 40)) +
                                   "' must be 1 to 32 characters of a-z, 0-9, '_' and '-'");
  }
  return Status::Ok();
}

namespace {

// Resolves symlink `link` (a path in the tree) physically against the tree's own
// entries, and fails if the resolution ever climbs above the root. Links to paths
// the tree does not contain are allowed as long as they stay inside.
class LinkResolver {
 public:
  LinkResolver(const std::unordered_map<std::string_view, const Entry*>& index, std::uint32_t depth)
      : index_(index), max_depth_(depth) {}

  Status Check(const Entry& link) {
    std::vector<std::string> stack = Split(std::string(core::Dirname(link.path)));
    return Walk(link, link.target, stack, 0);
  }

 private:
  static std::vector<std::string> Split(const std::string& p) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < p.size()) {
      std::size_t end = p.find('/', start);
      if (end == std::string::npos) end = p.size();
      if (end > start) out.push_back(p.substr(start, end - start));
      start = end + 1;
    }
    return out;
  }
  static std::string Join(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) {
      if (!out.empty()) out.push_back('/');
      out += p;
    }
    return out;
  }

  Status Walk(const Entry& origin, const std::string& target, std::vector<std::string>& stack,
              std::uint32_t depth) {
    if (depth > max_depth_) {
      return Status::InvalidArgument("symlink '" + origin.path + "': too many levels of symlinks");
    }
    if (target.empty()) return Status::InvalidArgument("symlink '" + origin.path + "' is empty");
    if (target[0] == '/') {
      return Status::InvalidArgument("symlink '" + origin.path + "' -> '" + origin.target +
                                     "' is absolute; links must stay inside the package");
    }
    for (const auto& comp : Split(target)) {
      if (comp == ".") continue;
      if (comp == "..") {
        if (stack.empty()) {
          return Status::InvalidArgument("symlink '" + origin.path + "' -> '" + origin.target +
                                         "' escapes the package tree");
        }
        stack.pop_back();
        continue;
      }
      stack.push_back(comp);
      auto it = index_.find(Join(stack));
      if (it != index_.end() && it->second->type == EntryType::kSymlink) {
        stack.pop_back();
        DEPOT_RETURN_IF_ERROR(Walk(origin, it->second->target, stack, depth + 1));
      }
    }
    return Status::Ok();
  }

  const std::unordered_map<std::string_view, const Entry*>& index_;
  std::uint32_t max_depth_;
};

Status ValidateProgram(const Program& p, const ManifestLimits& limits) {
  DEPOT_RETURN_IF_ERROR(ValidateProgramName(p.name));
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("program '" + p.name + "' " + std::string(why));
  };
  if (p.command.empty()) return bad("has an empty command");
  if (p.command.size() > limits.max_command_length) return bad("has a command over 8192 bytes");
  if (p.command.find('\0') != std::string::npos) return bad("has a NUL byte in its command");
  if (!core::IsValidUtf8(p.command)) return bad("has a command that is not valid UTF-8");
  if (p.timeout_s == 0 || p.timeout_s > 7 * 86400) {
    return bad("timeout must be between 1 second and 7 days");
  }
  std::vector<int> all;
  for (const auto* list : {&p.success_codes, &p.reboot_codes, &p.retry_codes}) {
    if (list->size() > 64) return bad("lists more than 64 exit codes");
    for (int c : *list) {
      if (c < 0 || c > 255) return bad("exit code " + std::to_string(c) + " is not in 0..255");
      all.push_back(c);
    }
  }
  std::sort(all.begin(), all.end());
  if (std::adjacent_find(all.begin(), all.end()) != all.end()) {
    return bad("lists an exit code in more than one category");
  }
  if (p.success_codes.empty()) return bad("has no success exit code");
  return Status::Ok();
}

}  // namespace

Status ValidateManifest(const Manifest& m, const ManifestLimits& limits) {
  DEPOT_RETURN_IF_ERROR(ValidatePackageName(m.package_name));
  if (m.package_id.empty() || m.package_id.size() > 64 ||
      !std::all_of(m.package_id.begin(), m.package_id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
      })) {
    return Status::InvalidArgument("package id '" + m.package_id.substr(0, 80) +
                                   "' must be 1 to 64 characters of letters, digits, '-', '_'");
  }
  if (m.version < 1 || m.version > (1ll << 53)) {
    return Status::InvalidArgument("version " + std::to_string(m.version) + " is not in 1..2^53");
  }
  DEPOT_RETURN_IF_ERROR(core::ParseUtc(m.created).status().WithContext("created"));
  if (!core::IsValidUtf8(m.description)) {
    return Status::InvalidArgument("description is not valid UTF-8");
  }
  if (m.description.size() > limits.max_description_length) {
    return Status::InvalidArgument("description is longer than 4096 bytes");
  }
  if (m.programs.size() > limits.max_programs) {
    return Status::InvalidArgument("more than " + std::to_string(limits.max_programs) +
                                   " programs");
  }
  for (std::size_t i = 0; i < m.programs.size(); ++i) {
    DEPOT_RETURN_IF_ERROR(ValidateProgram(m.programs[i], limits));
    for (std::size_t j = 0; j < i; ++j) {
      if (m.programs[j].name == m.programs[i].name) {
        return Status::InvalidArgument("program '" + m.programs[i].name + "' is listed twice");
      }
    }
  }
  DEPOT_RETURN_IF_ERROR(Chunker::Create(m.chunker).status().WithContext("chunker"));
  if (m.entries.size() > limits.max_entries) {
    return Status::InvalidArgument("more than " + std::to_string(limits.max_entries) + " entries");
  }

  std::unordered_map<std::string_view, const Entry*> index;
  index.reserve(m.entries.size());
  std::uint64_t total = 0;
  const std::string* prev = nullptr;
  for (const auto& e : m.entries) {
    DEPOT_RETURN_IF_ERROR(core::ValidateRelativePath(e.path));
    auto bad = [&](std::string_view why) {
      return Status::InvalidArgument(std::string(EntryTypeName(e.type)) + " '" + e.path + "' " +
                                     std::string(why));
    };
    if (prev != nullptr && !(*prev < e.path)) {
      if (*prev == e.path) return bad("is listed twice (duplicate path)");
      return bad("is out of order (entries must be sorted by path)");
    }
    prev = &e.path;
    std::string_view parent = core::Dirname(e.path);
    if (!parent.empty()) {
      auto it = index.find(parent);
      if (it == index.end())
        return bad("has no directory entry for its parent '" + std::string(parent) + "'");
      if (it->second->type != EntryType::kDirectory) {
        return bad("lies under '" + std::string(parent) + "', which is a " +
                   std::string(EntryTypeName(it->second->type)) + ", not a directory");
      }
    }
    if (e.mode & ~0777u) return bad("has mode bits outside 0777");
    switch (e.type) {
      case EntryType::kDirectory:
      case EntryType::kSymlink:
        if (e.size != 0 || !e.chunks.empty()) return bad("must not have a size or chunks");
        if (e.type == EntryType::kDirectory && !e.target.empty())
          return bad("must not have a target");
        if (e.type == EntryType::kSymlink) {
          if (e.target.empty() || e.target.size() > core::kMaxPathLength ||
              e.target.find('\0') != std::string::npos || !core::IsValidUtf8(e.target)) {
            return bad("has an empty, over-long, NUL-containing or non-UTF-8 target");
          }
        }
        break;
      case EntryType::kFile: {
        if (!e.target.empty()) return bad("must not have a target");
        if (e.size > limits.max_file_size) return bad("is larger than the 1 TiB limit");
        std::uint64_t sum = 0;
        for (const auto& c : e.chunks) {
          if (c.size == 0 || c.size > m.chunker.max_size) {
            return bad("has a chunk of " + std::to_string(c.size) + " bytes, outside 1.." +
                       std::to_string(m.chunker.max_size));
          }
          sum += c.size;
        }
        if (sum != e.size) {
          return bad("has chunks adding up to " + std::to_string(sum) + " bytes, not its size " +
                     std::to_string(e.size));
        }
        if (e.size == 0 && e.sha256 != core::Sha256::Hash("")) {
          return bad("is empty but its sha256 is not the hash of nothing");
        }
        if (e.chunks.size() == 1 && e.chunks[0].id != e.sha256) {
          return bad("has one chunk whose id differs from the file's sha256");
        }
        total += e.size;
        if (total > limits.max_total_size) return bad("pushes the package over 16 TiB");
        break;
      }
    }
    index.emplace(e.path, &e);
  }
  LinkResolver resolver(index, limits.max_symlink_depth);
  for (const auto& e : m.entries) {
    if (e.type == EntryType::kSymlink) DEPOT_RETURN_IF_ERROR(resolver.Check(e));
  }
  return Status::Ok();
}

namespace {

// Writes the manifest's JSON directly: the bytes nlohmann's dump(-1) of the
// equivalent document would give (compact, object keys in byte order, strings
// escaped as it does with ensure_ascii off), which is the format pinned in
// docs/formats.md and checked against nlohmann in manifest_test. Building that
// document first -- a std::map per entry, a string per chunk id -- took most of the
// 0.3 s an add of the standard tree spent after its last chunk.
class JsonWriter {
 public:
  explicit JsonWriter(std::size_t reserve) { out_.reserve(reserve); }

  void Raw(std::string_view s) { out_.append(s); }
  void Char(char c) { out_.push_back(c); }
  void Key(std::string_view k) {  // keys are fixed ASCII names: no escaping needed
    out_.push_back('"');
    out_.append(k);
    out_.append("\":");
  }
  void Uint(std::uint64_t v) {
    char buf[24];
    char* p = buf + sizeof(buf);
    do {
      *--p = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0);
    out_.append(p, static_cast<std::size_t>(buf + sizeof(buf) - p));
  }
  void Int(std::int64_t v) {
    if (v < 0) {
      out_.push_back('-');
      Uint(static_cast<std::uint64_t>(0) - static_cast<std::uint64_t>(v));
    } else {
      Uint(static_cast<std::uint64_t>(v));
    }
  }
  void Hex(const core::Digest& d) {
    static const char kDigits[] = "0123456789abcdef";
    out_.push_back('"');
    for (std::uint8_t b : d) {
      out_.push_back(kDigits[b >> 4]);
      out_.push_back(kDigits[b & 15]);
    }
    out_.push_back('"');
  }
  // A JSON string. Only valid UTF-8 can be written (like nlohmann's strict mode).
  Status String(std::string_view s) {
    if (!core::IsValidUtf8(s))
      return Status::InvalidArgument("manifest: string is not valid UTF-8");
    out_.push_back('"');
    std::size_t run = 0;  // start of the bytes not yet copied
    for (std::size_t i = 0; i < s.size(); ++i) {
      const auto c = static_cast<unsigned char>(s[i]);
      if (c >= 0x20 && c != '"' && c != '\\') continue;
      out_.append(s.data() + run, i - run);
      run = i + 1;
      switch (c) {
        case '"':
          out_.append("\\\"");
          break;
        case '\\':
          out_.append("\\\\");
          break;
        case '\b':
          out_.append("\\b");
          break;
        case '\t':
          out_.append("\\t");
          break;
        case '\n':
          out_.append("\\n");
          break;
        case '\f':
          out_.append("\\f");
          break;
        case '\r':
          out_.append("\\r");
          break;
        default: {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out_.append(buf);
        }
      }
    }
    out_.append(s.data() + run, s.size() - run);
    out_.push_back('"');
    return Status::Ok();
  }
  void Codes(const std::vector<int>& codes) {
    out_.push_back('[');
    for (std::size_t i = 0; i < codes.size(); ++i) {
      if (i) out_.push_back(',');
      Int(codes[i]);
    }
    out_.push_back(']');
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

// The programs array, as the manifest holds it.
Status WritePrograms(JsonWriter& w, const std::vector<Program>& programs) {
  w.Char('[');
  for (std::size_t i = 0; i < programs.size(); ++i) {
    const Program& p = programs[i];
    if (i) w.Char(',');
    w.Char('{');
    w.Key("command");
    DEPOT_RETURN_IF_ERROR(w.String(p.command));
    w.Raw(",");
    w.Key("exit_codes");
    w.Char('{');
    w.Key("reboot");
    w.Codes(p.reboot_codes);
    w.Raw(",");
    w.Key("retry");
    w.Codes(p.retry_codes);
    w.Raw(",");
    w.Key("success");
    w.Codes(p.success_codes);
    w.Raw("},");
    w.Key("name");
    DEPOT_RETURN_IF_ERROR(w.String(p.name));
    w.Raw(",");
    w.Key("timeout_s");
    w.Uint(p.timeout_s);
    w.Char('}');
  }
  w.Char(']');
  return Status::Ok();
}

}  // namespace

core::Result<std::string> SerializePrograms(const std::vector<Program>& programs) {
  for (const auto& p : programs) DEPOT_RETURN_IF_ERROR(ValidateProgram(p, ManifestLimits{}));
  JsonWriter w(256);
  DEPOT_RETURN_IF_ERROR(WritePrograms(w, programs));
  return w.Take();
}

core::Result<std::string> SerializeManifest(const Manifest& m) {
  DEPOT_RETURN_IF_ERROR(ValidateManifest(m).WithContext("refusing to write an invalid manifest"));
  std::size_t estimate = 1024 + m.description.size();
  for (const auto& e : m.entries)
    estimate += 96 + e.path.size() + e.target.size() + 80 * e.chunks.size();
  JsonWriter w(estimate);
  // Keys in byte order, as nlohmann's std::map-backed objects print them.
  w.Raw("{");
  w.Key("chunker");
  w.Raw("{\"algorithm\":\"fastcdc-gear64-nc2\",");
  w.Key("avg");
  w.Uint(m.chunker.avg_size);
  w.Raw(",");
  w.Key("max");
  w.Uint(m.chunker.max_size);
  w.Raw(",");
  w.Key("min");
  w.Uint(m.chunker.min_size);
  w.Raw("},");
  w.Key("created");
  DEPOT_RETURN_IF_ERROR(w.String(m.created));
  w.Raw(",");
  w.Key("description");
  DEPOT_RETURN_IF_ERROR(w.String(m.description));
  w.Raw(",");
  w.Key("entries");
  w.Raw("[");
  for (std::size_t i = 0; i < m.entries.size(); ++i) {
    const Entry& e = m.entries[i];
    if (i) w.Char(',');
    w.Char('{');
    switch (e.type) {
      case EntryType::kDirectory:
        w.Key("mode");
        w.Uint(e.mode);
        w.Raw(",");
        w.Key("path");
        DEPOT_RETURN_IF_ERROR(w.String(e.path));
        w.Raw(",\"type\":\"dir\"");
        break;
      case EntryType::kSymlink:
        w.Key("path");
        DEPOT_RETURN_IF_ERROR(w.String(e.path));
        w.Raw(",");
        w.Key("target");
        DEPOT_RETURN_IF_ERROR(w.String(e.target));
        w.Raw(",\"type\":\"symlink\"");
        break;
      case EntryType::kFile:
        w.Key("chunks");
        w.Char('[');
        for (std::size_t k = 0; k < e.chunks.size(); ++k) {
          if (k) w.Char(',');
          w.Char('[');
          w.Hex(e.chunks[k].id);
          w.Char(',');
          w.Uint(e.chunks[k].size);
          w.Char(']');
        }
        w.Raw("],");
        w.Key("mode");
        w.Uint(e.mode);
        w.Raw(",");
        w.Key("path");
        DEPOT_RETURN_IF_ERROR(w.String(e.path));
        w.Raw(",");
        w.Key("sha256");
        w.Hex(e.sha256);
        w.Raw(",");
        w.Key("size");
        w.Uint(e.size);
        w.Raw(",\"type\":\"file\"");
        break;
    }
    w.Char('}');
  }
  w.Raw("],");
  w.Key("format");
  w.Int(kManifestFormat);
  w.Raw(",");
  w.Key("package");
  w.Char('{');
  w.Key("id");
  DEPOT_RETURN_IF_ERROR(w.String(m.package_id));
  w.Raw(",");
  w.Key("name");
  DEPOT_RETURN_IF_ERROR(w.String(m.package_name));
  w.Raw("},");
  w.Key("programs");
  DEPOT_RETURN_IF_ERROR(WritePrograms(w, m.programs));
  w.Raw(",");
  w.Key("version");
  w.Int(m.version);
  w.Char('}');
  return w.Take();
}

namespace {

// Strict field access: every object's keys are checked against an allow-list and
// every value's type is checked before use.
class Reader {
 public:
  explicit Reader(std::string where) : where_(std::move(where)) {}

  Status Keys(const Json& obj, std::initializer_list<std::string_view> required,
              std::initializer_list<std::string_view> optional = {}) {
    if (!obj.is_object()) return Fail("is not a JSON object");
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      bool known = std::find(required.begin(), required.end(), it.key()) != required.end() ||
                   std::find(optional.begin(), optional.end(), it.key()) != optional.end();
      if (!known) return Fail("has an unknown field '" + it.key() + "'");
    }
    for (auto k : required) {
      if (!obj.contains(k)) return Fail("lacks the field '" + std::string(k) + "'");
    }
    return Status::Ok();
  }
  Status String(const Json& obj, std::string_view key, std::string* out, std::size_t max_len) {
    auto it = obj.find(key);
    if (it == obj.end()) return Status::Ok();
    if (!it->is_string()) return Fail("field '" + std::string(key) + "' is not a string");
    const auto& s = it->get_ref<const std::string&>();
    if (s.size() > max_len) return Fail("field '" + std::string(key) + "' is too long");
    *out = s;
    return Status::Ok();
  }
  template <typename T>
  Status Int(const Json& obj, std::string_view key, T* out, std::int64_t lo, std::int64_t hi) {
    auto it = obj.find(key);
    if (it == obj.end()) return Status::Ok();
    return IntValue(*it, std::string(key), out, lo, hi);
  }
  template <typename T>
  Status IntValue(const Json& v, const std::string& what, T* out, std::int64_t lo,
                  std::int64_t hi) {
    if (!v.is_number_integer()) return Fail(what + " is not an integer");
    if (v.is_number_unsigned()) {
      auto u = v.get<std::uint64_t>();
      if (u > static_cast<std::uint64_t>(hi) || (lo > 0 && u < static_cast<std::uint64_t>(lo))) {
        return Fail(what + " is out of range");
      }
      *out = static_cast<T>(u);
      return Status::Ok();
    }
    auto s = v.get<std::int64_t>();
    if (s < lo || s > hi) return Fail(what + " is out of range");
    *out = static_cast<T>(s);
    return Status::Ok();
  }
  Status Fail(const std::string& why) const {
    return Status::InvalidArgument("manifest: " + where_ + " " + why);
  }

 private:
  std::string where_;
};

Status ParseCodes(const Json& codes, const std::string& where, std::string_view key,
                  std::vector<int>* out) {
  Reader r(where);
  auto it = codes.find(key);
  if (it == codes.end()) return Status::Ok();
  if (!it->is_array() || it->size() > 64) return r.Fail(std::string(key) + " is not a short array");
  out->clear();
  for (const auto& v : *it) {
    int c;
    DEPOT_RETURN_IF_ERROR(r.IntValue(v, std::string(key) + " code", &c, 0, 255));
    out->push_back(c);
  }
  return Status::Ok();
}

// A programs array as the manifest holds it (WritePrograms).
Status ReadPrograms(const Json& programs, const ManifestLimits& limits, std::vector<Program>* out) {
  if (!programs.is_array() || programs.size() > limits.max_programs) {
    return Reader("document").Fail("programs is not an array of at most 32");
  }
  for (std::size_t i = 0; i < programs.size(); ++i) {
    const Json& pj = programs[i];
    Reader r("program #" + std::to_string(i + 1));
    DEPOT_RETURN_IF_ERROR(r.Keys(pj, {"name", "command", "timeout_s", "exit_codes"}));
    Program p;
    DEPOT_RETURN_IF_ERROR(r.String(pj, "name", &p.name, 32));
    DEPOT_RETURN_IF_ERROR(r.String(pj, "command", &p.command, limits.max_command_length));
    DEPOT_RETURN_IF_ERROR(r.Int(pj, "timeout_s", &p.timeout_s, 1, 7 * 86400));
    const Json& codes = pj["exit_codes"];
    DEPOT_RETURN_IF_ERROR(r.Keys(codes, {"success"}, {"reboot", "retry"}));
    std::string where = "program '" + p.name + "' exit_codes";
    DEPOT_RETURN_IF_ERROR(ParseCodes(codes, where, "success", &p.success_codes));
    DEPOT_RETURN_IF_ERROR(ParseCodes(codes, where, "reboot", &p.reboot_codes));
    DEPOT_RETURN_IF_ERROR(ParseCodes(codes, where, "retry", &p.retry_codes));
    out->push_back(std::move(p));
  }
  return Status::Ok();
}

// The entries array, read by the scanner into `out`. Every rule of the document
// Reader holds: known fields only, each once, the ones its type requires, types and
// ranges; the path rules follow in ValidateManifest.
Status ParseEntries(JsonScanner* sc, const ManifestLimits& limits, std::vector<Entry>* out) {
  enum : unsigned {
    kPath = 1,
    kType = 2,
    kMode = 4,
    kSize = 8,
    kSha = 16,
    kChunks = 32,
    kTarget = 64
  };
  static constexpr std::pair<std::string_view, unsigned> kFields[] = {
      {"path", kPath},  {"type", kType},     {"mode", kMode},    {"size", kSize},
      {"sha256", kSha}, {"chunks", kChunks}, {"target", kTarget}};
  if (!sc->BeginArray())
    return Status::InvalidArgument("manifest: entries is not an array (" + sc->error() + ")");
  std::string key, type, hex;
  bool done = false;
  for (std::size_t i = 0; sc->NextElement(&done); ++i) {
    if (i >= limits.max_entries) {
      return Status::InvalidArgument("manifest: document has more than " +
                                     std::to_string(limits.max_entries) + " entries");
    }
    Entry e;
    unsigned seen = 0;
    type.clear();
    auto fail = [&](const std::string& why) {
      std::string where =
          (seen & kPath) ? "entry '" + e.path + "'" : "entry #" + std::to_string(i + 1);
      return Status::InvalidArgument("manifest: " + where + " " + why);
    };
    // A well-formed value that breaks a rule is reported once the whole entry is
    // read, so the message can name the entry by its path (keys come sorted, and
    // "chunks" and "mode" precede "path").
    std::string deferred;
    auto defer = [&](std::string why) {
      if (deferred.empty()) deferred = std::move(why);
    };
    if (!sc->BeginObject()) return fail("is not a JSON object (" + sc->error() + ")");
    bool end_of_entry = false;
    while (sc->NextKey(&key, &end_of_entry)) {
      unsigned bit = 0;
      for (const auto& [name, b] : kFields) {
        if (key == name) bit = b;
      }
      if (bit == 0) return fail("has an unknown field '" + key + "'");
      if (seen & bit) return fail("has the field '" + key + "' twice");
      std::int64_t v = 0;
      bool ok = true;
      switch (bit) {
        case kPath:
          ok = sc->String(&e.path, core::kMaxPathLength + 1);
          break;
        case kType:
          ok = sc->String(&type, 16);
          break;
        case kMode:
          ok = sc->Int(&v, INT64_MIN, INT64_MAX);
          if (ok && (v < 0 || v > 0777)) defer("mode is out of range");
          e.mode = static_cast<std::uint32_t>(v);
          break;
        case kSize:
          ok = sc->Int(&v, INT64_MIN, INT64_MAX);
          if (ok && (v < 0 || static_cast<std::uint64_t>(v) > limits.max_file_size))
            defer("size is out of range");
          e.size = static_cast<std::uint64_t>(v);
          break;
        case kSha:
          ok = sc->String(&hex, 80);
          if (ok) {
            auto d = core::ParseDigestHex(hex);
            if (!d.ok()) defer("sha256: " + d.status().message());
            e.sha256 = d.ok() ? *d : core::Digest{};
          }
          break;
        case kChunks: {
          ok = sc->BeginArray();
          bool chunks_done = false;
          while (ok && sc->NextElement(&chunks_done)) {
            // ["<sha256>", size]
            bool pair_done = false;
            ChunkRef ref;
            ok = sc->BeginArray() && sc->NextElement(&pair_done) && sc->String(&hex, 80);
            if (!ok) break;
            auto id = core::ParseDigestHex(hex);
            if (!id.ok()) defer("chunk id: " + id.status().message());
            ref.id = id.ok() ? *id : core::Digest{};
            ok = sc->NextElement(&pair_done) && sc->Int(&v, INT64_MIN, INT64_MAX);
            if (ok && (v < 1 || v > kMaxChunkSizeLimit)) defer("chunk size is out of range");
            if (ok && sc->NextElement(&pair_done)) ok = sc->Fail("a chunk is [\"<sha256>\", size]");
            if (!ok || !pair_done) break;
            ref.size = static_cast<std::uint32_t>(v);
            e.chunks.push_back(ref);
          }
          ok = ok && chunks_done;
          break;
        }
        case kTarget:
          ok = sc->String(&e.target, core::kMaxPathLength);
          break;
      }
      if (!ok || sc->failed()) {
        return fail("field '" + key +
                    "': " + (sc->failed() ? sc->error() : std::string("malformed")));
      }
      seen |= bit;
    }
    if (!end_of_entry) return fail("is malformed (" + sc->error() + ")");
    if (!deferred.empty()) return fail(deferred);
    if (!(seen & kType)) return fail("lacks the field 'type'");
    unsigned allowed;
    if (type == "file") {
      e.type = EntryType::kFile;
      allowed = kPath | kType | kMode | kSize | kSha | kChunks;
    } else if (type == "dir") {
      e.type = EntryType::kDirectory;
      allowed = kPath | kType | kMode;
    } else if (type == "symlink") {
      e.type = EntryType::kSymlink;
      allowed = kPath | kType | kTarget;
    } else {
      return fail("has unknown type '" + type + "' (want file, dir or symlink)");
    }
    for (const auto& [name, b] : kFields) {
      if ((seen & b) && !(allowed & b))
        return fail("has an unknown field '" + std::string(name) + "'");
      if (!(seen & b) && (allowed & b)) return fail("lacks the field '" + std::string(name) + "'");
    }
    // Bounded by the file size: every chunk holds at least one byte.
    if (e.chunks.size() > e.size) return fail("has more chunks than bytes");
    out->push_back(std::move(e));
  }
  if (!done)
    return Status::InvalidArgument("manifest: entries are malformed (" + sc->error() + ")");
  return Status::Ok();
}

}  // namespace

core::Result<Manifest> ParseManifest(std::string_view bytes, const ManifestLimits& limits) {
  if (bytes.size() > limits.max_bytes) {
    return Status::InvalidArgument("manifest is " + std::to_string(bytes.size()) +
                                   " bytes, over the limit of " + std::to_string(limits.max_bytes));
  }
  // The entries (nearly all of the bytes) are read straight into their structs; the
  // few small header fields go through a document, checked by the Reader rules.
  Manifest m;
  JsonScanner sc(bytes);
  Json doc = Json::object();
  bool have_entries = false;
  if (!sc.BeginObject())
    return Status::InvalidArgument("manifest is not a JSON object (" + sc.error() + ")");
  std::string key;
  bool done = false;
  while (sc.NextKey(&key, &done)) {
    if (key == "entries") {
      if (have_entries)
        return Status::InvalidArgument("manifest: document has the field 'entries' twice");
      have_entries = true;
      DEPOT_RETURN_IF_ERROR(ParseEntries(&sc, limits, &m.entries));
      continue;
    }
    if (doc.contains(key))
      return Status::InvalidArgument("manifest: document has the field '" + key + "' twice");
    std::string_view text;
    if (!sc.SkipValue(&text)) break;
    Json value = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
    if (value.is_discarded())
      return Status::InvalidArgument("manifest: field '" + key + "' is not valid JSON");
    doc[key] = std::move(value);
  }
  if (!done || !sc.AtEnd())
    return Status::InvalidArgument("manifest is not valid JSON (" + sc.error() + ")");
  Reader top("document");
  DEPOT_RETURN_IF_ERROR(top.Keys(
      doc, {"format", "package", "version", "created", "programs", "chunker"}, {"description"}));
  if (!have_entries) return top.Fail("lacks the field 'entries'");
  int format = 0;
  DEPOT_RETURN_IF_ERROR(top.Int(doc, "format", &format, 0, 1000));
  if (format != kManifestFormat) {
    return Status::InvalidArgument("manifest format " + std::to_string(format) +
                                   " is not supported (this depot reads format 1); upgrade depot");
  }
  const Json& pkg = doc["package"];
  Reader rp("package");
  DEPOT_RETURN_IF_ERROR(rp.Keys(pkg, {"id", "name"}));
  DEPOT_RETURN_IF_ERROR(rp.String(pkg, "id", &m.package_id, 64));
  DEPOT_RETURN_IF_ERROR(rp.String(pkg, "name", &m.package_name, 64));
  DEPOT_RETURN_IF_ERROR(top.Int(doc, "version", &m.version, 1, 1ll << 53));
  DEPOT_RETURN_IF_ERROR(top.String(doc, "created", &m.created, 32));
  DEPOT_RETURN_IF_ERROR(
      top.String(doc, "description", &m.description, limits.max_description_length));

  DEPOT_RETURN_IF_ERROR(ReadPrograms(doc["programs"], limits, &m.programs));

  const Json& ch = doc["chunker"];
  Reader rc("chunker");
  DEPOT_RETURN_IF_ERROR(rc.Keys(ch, {"algorithm", "min", "avg", "max"}));
  std::string algorithm;
  DEPOT_RETURN_IF_ERROR(rc.String(ch, "algorithm", &algorithm, 64));
  if (algorithm != "fastcdc-gear64-nc2") {
    return rc.Fail("algorithm '" + algorithm + "' is not supported");
  }
  DEPOT_RETURN_IF_ERROR(rc.Int(ch, "min", &m.chunker.min_size, 1, kMaxChunkSizeLimit));
  DEPOT_RETURN_IF_ERROR(rc.Int(ch, "avg", &m.chunker.avg_size, 1, kMaxChunkSizeLimit));
  DEPOT_RETURN_IF_ERROR(rc.Int(ch, "max", &m.chunker.max_size, 1, kMaxChunkSizeLimit));

  DEPOT_RETURN_IF_ERROR(ValidateManifest(m, limits).WithContext("manifest"));
  return m;
}

core::Result<std::vector<Program>> ParsePrograms(std::string_view json) {
  if (json.size() > (1 << 20)) return Status::InvalidArgument("programs: over 1 MiB");
  Json doc = Json::parse(json.begin(), json.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::InvalidArgument("programs: not valid JSON");
  ManifestLimits limits;
  std::vector<Program> out;
  DEPOT_RETURN_IF_ERROR(ReadPrograms(doc, limits, &out));
  for (std::size_t i = 0; i < out.size(); ++i) {
    DEPOT_RETURN_IF_ERROR(ValidateProgram(out[i], limits));
    for (std::size_t j = 0; j < i; ++j) {
      if (out[j].name == out[i].name)
        return Status::InvalidArgument("program '" + out[i].name + "' is listed twice");
    }
  }
  return out;
}

}  // namespace depot::store
