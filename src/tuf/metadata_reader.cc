// The strict Reader and the envelope/common-field parsers shared by every role file.

#include <algorithm>
#include <set>
#include <utility>

#include "core/hex.h"
#include "tuf/json_internal.h"
#include "tuf/metadata_internal.h"

namespace depot::tuf::internal {
namespace {

constexpr std::size_t kMaxSignatureHexLength = 1024;

// Accepts "1.x" and "1.x.y" (TUF: clients match the major version).
bool SpecVersionSupported(std::string_view v) {
  int parts = 0;
  std::size_t start = 0;
  while (start <= v.size()) {
    std::size_t end = v.find('.', start);
    if (end == std::string_view::npos) end = v.size();
    std::string_view part = v.substr(start, end - start);
    if (part.empty() || part.size() > 9 ||
        !std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    if (parts == 0 && part != "1") return false;
    ++parts;
    start = end + 1;
  }
  return parts == 2 || parts == 3;
}

}  // namespace

// Quotes untrusted text for an error message: bounded, control characters escaped.
std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 120)) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[u >> 4];
      out += kHex[u & 0xf];
    } else {
      out.push_back(c);
    }
  }
  if (s.size() > 120) out += "...";
  return out + "'";
}

Result<Envelope> ParseEnvelope(std::string_view bytes, const Reader& r) {
  DEPOT_ASSIGN_OR_RETURN(Json doc, internal::ParseStrictJson(bytes, r.file()));
  if (!doc.is_object()) return r.Bad("top level", "not a JSON object");
  DEPOT_ASSIGN_OR_RETURN(const Json* signed_json, r.Object(doc, "signed", "top level"));
  DEPOT_ASSIGN_OR_RETURN(const Json* sigs, r.Array(doc, "signatures", "top level"));
  if (sigs->size() > kMaxSignatures) {
    return r.Bad("signatures", std::to_string(sigs->size()) + " signatures, more than the " +
                                   std::to_string(kMaxSignatures) + " allowed");
  }
  Envelope env;
  std::set<std::string> seen;
  for (std::size_t i = 0; i < sigs->size(); ++i) {
    const Json& s = (*sigs)[i];
    const std::string where = "signatures[" + std::to_string(i) + "]";
    if (!s.is_object()) return r.Bad(where, "not an object");
    DEPOT_ASSIGN_OR_RETURN(std::string keyid, r.String(s, "keyid", where));
    DEPOT_ASSIGN_OR_RETURN(std::string sig, r.String(s, "sig", where));
    if (!core::IsLowerHex(keyid, kSha256HexLength)) {
      return r.Bad(where, "keyid is not 64 lowercase hex characters");
    }
    if (sig.size() % 2 != 0 || sig.size() > kMaxSignatureHexLength ||
        (!sig.empty() && !core::IsLowerHex(sig))) {
      return r.Bad(where, "sig is not lowercase hex of at most 512 bytes");
    }
    if (!seen.insert(keyid).second) {
      return r.Bad(where, "a second signature by key " + keyid +
                              " (the TUF spec allows one signature per keyid)");
    }
    env.signatures.push_back(Signature{std::move(keyid), std::move(sig)});
  }
  env.signed_json = *signed_json;
  DEPOT_ASSIGN_OR_RETURN(env.canonical, internal::EncodeCanonical(env.signed_json, r.file()));
  return env;
}

Result<Common> ParseCommon(const Json& s, Role role, const Reader& r) {
  DEPOT_ASSIGN_OR_RETURN(std::string type, r.String(s, "_type", "signed"));
  if (type != RoleName(role)) {
    return r.Bad("signed",
                 "_type is " + Quote(type) + ", expected '" + std::string(RoleName(role)) + "'");
  }
  DEPOT_ASSIGN_OR_RETURN(std::string spec, r.String(s, "spec_version", "signed"));
  if (!SpecVersionSupported(spec)) {
    return r.Bad("signed", "spec_version " + Quote(spec) +
                               " is not supported (depot reads TUF 1.x metadata)");
  }
  Common c;
  DEPOT_ASSIGN_OR_RETURN(c.version, r.Version(s, "signed"));
  DEPOT_ASSIGN_OR_RETURN(std::string expires, r.String(s, "expires", "signed"));
  auto t = core::ParseUtc(expires);
  if (!t.ok()) return r.Bad("signed.expires", t.status().message());
  c.expires = *t;
  return c;
}

Result<MetaFile> ParseMetaFile(const Json& v, const std::string& where, const Reader& r) {
  if (!v.is_object()) return r.Bad(where, "not an object");
  MetaFile m;
  DEPOT_ASSIGN_OR_RETURN(m.version, r.Version(v, where));
  if (v.contains("length")) {
    DEPOT_ASSIGN_OR_RETURN(m.length, r.IntegerField(v, "length", where, 1, kMaxLength));
  }
  if (v.contains("hashes")) {
    DEPOT_ASSIGN_OR_RETURN(m.sha256, r.Sha256Hashes(v, where));
  }
  return m;
}

}  // namespace depot::tuf::internal
