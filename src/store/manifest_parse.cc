// Parsing manifests and program lists, strictly: the entries (nearly all of the
// bytes) through the JsonScanner straight into their structs, the small header
// fields through a nlohmann document checked by the Reader rules, then every rule of
// ValidateManifest.
#include <algorithm>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "core/path.h"
#include "core/sha256.h"
#include "store/json_scanner.h"
#include "store/manifest.h"
#include "store/manifest_internal.h"

namespace depot::store {

using core::Status;
using Json = nlohmann::json;

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

// The fields of an entry object, one bit each.
enum EntryField : unsigned {
  kPath = 1,
  kType = 2,
  kMode = 4,
  kSize = 8,
  kSha = 16,
  kChunks = 32,
  kTarget = 64
};
constexpr std::pair<std::string_view, unsigned> kEntryFields[] = {
    {"path", kPath},  {"type", kType},     {"mode", kMode},    {"size", kSize},
    {"sha256", kSha}, {"chunks", kChunks}, {"target", kTarget}};

// Reads the objects of the entries array one by one. Every rule of the document
// Reader holds: known fields only, each once, the ones its type requires, types and
// ranges; the path rules follow in ValidateManifest. The strings are reused from
// entry to entry.
class EntryReader {
 public:
  EntryReader(JsonScanner* sc, const ManifestLimits& limits) : sc_(sc), limits_(limits) {}

  // Reads entry #i+1 (the scanner is at its value) into *out.
  Status Read(std::size_t i, Entry* out) {
    e_ = out;
    index_ = i;
    seen_ = 0;
    type_.clear();
    deferred_.clear();
    if (!sc_->BeginObject()) return Fail("is not a JSON object (" + sc_->error() + ")");
    bool end_of_entry = false;
    while (sc_->NextKey(&key_, &end_of_entry)) {
      unsigned bit = 0;
      for (const auto& [name, b] : kEntryFields) {
        if (key_ == name) bit = b;
      }
      if (bit == 0) return Fail("has an unknown field '" + key_ + "'");
      if (seen_ & bit) return Fail("has the field '" + key_ + "' twice");
      bool ok = Field(bit);
      if (!ok || sc_->failed()) {
        return Fail("field '" + key_ +
                    "': " + (sc_->failed() ? sc_->error() : std::string("malformed")));
      }
      seen_ |= bit;
    }
    if (!end_of_entry) return Fail("is malformed (" + sc_->error() + ")");
    if (!deferred_.empty()) return Fail(deferred_);
    return CheckShape();
  }

 private:
  // "manifest: entry '<path>' <why>", or "entry #<n>" before the path was read.
  Status Fail(const std::string& why) const {
    std::string where =
        (seen_ & kPath) ? "entry '" + e_->path + "'" : "entry #" + std::to_string(index_ + 1);
    return Status::InvalidArgument("manifest: " + where + " " + why);
  }

  // A well-formed value that breaks a rule is reported once the whole entry is
  // read, so the message can name the entry by its path (keys come sorted, and
  // "chunks" and "mode" precede "path").
  void Defer(std::string why) {
    if (deferred_.empty()) deferred_ = std::move(why);
  }

  // Reads the value of the field `bit`; false when it is malformed.
  bool Field(unsigned bit) {
    Entry& e = *e_;
    std::int64_t v = 0;
    bool ok = true;
    switch (bit) {
      case kPath:
        ok = sc_->String(&e.path, core::kMaxPathLength + 1);
        break;
      case kType:
        ok = sc_->String(&type_, 16);
        break;
      case kMode:
        ok = sc_->Int(&v, INT64_MIN, INT64_MAX);
        if (ok && (v < 0 || v > 0777)) Defer("mode is out of range");
        e.mode = static_cast<std::uint32_t>(v);
        break;
      case kSize:
        ok = sc_->Int(&v, INT64_MIN, INT64_MAX);
        if (ok && (v < 0 || static_cast<std::uint64_t>(v) > limits_.max_file_size))
          Defer("size is out of range");
        e.size = static_cast<std::uint64_t>(v);
        break;
      case kSha:
        ok = sc_->String(&hex_, 80);
        if (ok) {
          auto d = core::ParseDigestHex(hex_);
          if (!d.ok()) Defer("sha256: " + d.status().message());
          e.sha256 = d.ok() ? *d : core::Digest{};
        }
        break;
      case kChunks:
        ok = Chunks();
        break;
      case kTarget:
        ok = sc_->String(&e.target, core::kMaxPathLength);
        break;
    }
    return ok;
  }

  // The chunk list: [["<sha256>", size], ...].
  bool Chunks() {
    std::int64_t v = 0;
    bool ok = sc_->BeginArray();
    bool chunks_done = false;
    while (ok && sc_->NextElement(&chunks_done)) {
      // ["<sha256>", size]
      bool pair_done = false;
      ChunkRef ref;
      ok = sc_->BeginArray() && sc_->NextElement(&pair_done) && sc_->String(&hex_, 80);
      if (!ok) break;
      auto id = core::ParseDigestHex(hex_);
      if (!id.ok()) Defer("chunk id: " + id.status().message());
      ref.id = id.ok() ? *id : core::Digest{};
      ok = sc_->NextElement(&pair_done) && sc_->Int(&v, INT64_MIN, INT64_MAX);
      if (ok && (v < 1 || v > kMaxChunkSizeLimit)) Defer("chunk size is out of range");
      if (ok && sc_->NextElement(&pair_done)) ok = sc_->Fail("a chunk is [\"<sha256>\", size]");
      if (!ok || !pair_done) break;
      ref.size = static_cast<std::uint32_t>(v);
      e_->chunks.push_back(ref);
    }
    return ok && chunks_done;
  }

  // Sets the entry's type and checks that it has exactly the fields the type takes.
  Status CheckShape() {
    Entry& e = *e_;
    if (!(seen_ & kType)) return Fail("lacks the field 'type'");
    unsigned allowed;
    if (type_ == "file") {
      e.type = EntryType::kFile;
      allowed = kPath | kType | kMode | kSize | kSha | kChunks;
    } else if (type_ == "dir") {
      e.type = EntryType::kDirectory;
      allowed = kPath | kType | kMode;
    } else if (type_ == "symlink") {
      e.type = EntryType::kSymlink;
      allowed = kPath | kType | kTarget;
    } else {
      return Fail("has unknown type '" + type_ + "' (want file, dir or symlink)");
    }
    for (const auto& [name, b] : kEntryFields) {
      if ((seen_ & b) && !(allowed & b))
        return Fail("has an unknown field '" + std::string(name) + "'");
      if (!(seen_ & b) && (allowed & b)) return Fail("lacks the field '" + std::string(name) + "'");
    }
    // Bounded by the file size: every chunk holds at least one byte.
    if (e.chunks.size() > e.size) return Fail("has more chunks than bytes");
    return Status::Ok();
  }

  JsonScanner* sc_;
  const ManifestLimits& limits_;
  std::string key_, type_, hex_;
  // The entry being read:
  Entry* e_ = nullptr;
  std::size_t index_ = 0;
  unsigned seen_ = 0;  // EntryField bits
  std::string deferred_;
};

// The entries array, read by the scanner into `out`.
Status ParseEntries(JsonScanner* sc, const ManifestLimits& limits, std::vector<Entry>* out) {
  if (!sc->BeginArray())
    return Status::InvalidArgument("manifest: entries is not an array (" + sc->error() + ")");
  EntryReader reader(sc, limits);
  bool done = false;
  for (std::size_t i = 0; sc->NextElement(&done); ++i) {
    if (i >= limits.max_entries) {
      return Status::InvalidArgument("manifest: document has more than " +
                                     std::to_string(limits.max_entries) + " entries");
    }
    Entry e;
    DEPOT_RETURN_IF_ERROR(reader.Read(i, &e));
    out->push_back(std::move(e));
  }
  if (!done)
    return Status::InvalidArgument("manifest: entries are malformed (" + sc->error() + ")");
  return Status::Ok();
}

// The header fields of the document (everything but the entries) into *m.
Status ReadHeader(Json& doc, const ManifestLimits& limits, Manifest* m) {
  Reader top("document");
  int format = 0;
  DEPOT_RETURN_IF_ERROR(top.Int(doc, "format", &format, 0, 1000));
  if (format != kManifestFormat) {
    return Status::InvalidArgument("manifest format " + std::to_string(format) +
                                   " is not supported (this depot reads format 1); upgrade depot");
  }
  const Json& pkg = doc["package"];
  Reader rp("package");
  DEPOT_RETURN_IF_ERROR(rp.Keys(pkg, {"id", "name"}));
  DEPOT_RETURN_IF_ERROR(rp.String(pkg, "id", &m->package_id, 64));
  DEPOT_RETURN_IF_ERROR(rp.String(pkg, "name", &m->package_name, 64));
  DEPOT_RETURN_IF_ERROR(top.Int(doc, "version", &m->version, 1, 1ll << 53));
  DEPOT_RETURN_IF_ERROR(top.String(doc, "created", &m->created, 32));
  DEPOT_RETURN_IF_ERROR(
      top.String(doc, "description", &m->description, limits.max_description_length));

  DEPOT_RETURN_IF_ERROR(ReadPrograms(doc["programs"], limits, &m->programs));

  const Json& ch = doc["chunker"];
  Reader rc("chunker");
  DEPOT_RETURN_IF_ERROR(rc.Keys(ch, {"algorithm", "min", "avg", "max"}));
  std::string algorithm;
  DEPOT_RETURN_IF_ERROR(rc.String(ch, "algorithm", &algorithm, 64));
  if (algorithm != "fastcdc-gear64-nc2") {
    return rc.Fail("algorithm '" + algorithm + "' is not supported");
  }
  DEPOT_RETURN_IF_ERROR(rc.Int(ch, "min", &m->chunker.min_size, 1, kMaxChunkSizeLimit));
  DEPOT_RETURN_IF_ERROR(rc.Int(ch, "avg", &m->chunker.avg_size, 1, kMaxChunkSizeLimit));
  DEPOT_RETURN_IF_ERROR(rc.Int(ch, "max", &m->chunker.max_size, 1, kMaxChunkSizeLimit));
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
  DEPOT_RETURN_IF_ERROR(ReadHeader(doc, limits, &m));

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
  DEPOT_RETURN_IF_ERROR(internal::ValidateProgramList(out, limits));
  return out;
}

}  // namespace depot::store
