// Serializing manifests and program lists: the deterministic JSON bytes that get
// hashed and signed (compact, keys in byte order; docs/formats.md).
#include <cstdio>
#include <string>

#include "core/path.h"
#include "store/manifest.h"
#include "store/manifest_internal.h"

namespace depot::store {

using core::Status;

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

// One entry object, its keys in byte order.
Status WriteEntry(JsonWriter& w, const Entry& e) {
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
  return Status::Ok();
}

}  // namespace

core::Result<std::string> SerializePrograms(const std::vector<Program>& programs) {
  for (const auto& p : programs) {
    DEPOT_RETURN_IF_ERROR(internal::ValidateProgram(p, ManifestLimits{}));
  }
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
    if (i) w.Char(',');
    DEPOT_RETURN_IF_ERROR(WriteEntry(w, m.entries[i]));
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

}  // namespace depot::store
