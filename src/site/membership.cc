#include "site/membership.h"

#include <cctype>

namespace depot::site {

using core::Status;

namespace {

constexpr std::size_t kMaxAttributes = 64;
constexpr std::size_t kMaxAttributeValues = 64;
constexpr std::size_t kMaxValueLength = 256;

bool ValidAttributeName(std::string_view k) {
  if (k.empty() || k.size() > 64 || !std::isalpha(static_cast<unsigned char>(k[0]))) return false;
  for (char c : k) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'))
      return false;
  }
  return true;
}

}  // namespace

// {"os":"linux","ips":["10.0.0.5"],"tags":{"site":"berlin"}} -> attributes, with
// tags flattened to "tag.site".
core::Result<Attributes> ParseAttributes(const Json& j) {
  if (!j.is_object()) return Status::InvalidArgument("attributes must be a JSON object");
  Attributes out;
  auto add = [&](const std::string& key, const Json& v) -> Status {
    if (!ValidAttributeName(key)) {
      return Status::InvalidArgument(
          "attribute name `" + key.substr(0, 80) +
          "` must be 1-64 characters of A-Z a-z 0-9 _ . - starting with a letter");
    }
    std::vector<std::string> values;
    if (v.is_string()) {
      values.push_back(v.get<std::string>());
    } else if (v.is_array() && v.size() <= kMaxAttributeValues) {
      for (const Json& x : v) {
        if (!x.is_string())
          return Status::InvalidArgument("attribute " + key + " must hold strings");
        values.push_back(x.get<std::string>());
      }
    } else {
      return Status::InvalidArgument("attribute " + key + " must be a string or a list of strings");
    }
    for (const auto& s : values) {
      if (s.size() > kMaxValueLength) {
        return Status::InvalidArgument("attribute " + key + " has a value longer than 256 bytes");
      }
    }
    out[key] = std::move(values);
    return Status::Ok();
  };
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "tags") {
      if (!it->is_object()) return Status::InvalidArgument("attribute tags must be an object");
      for (auto t = it->begin(); t != it->end(); ++t)
        DEPOT_RETURN_IF_ERROR(add("tag." + t.key(), *t));
    } else {
      DEPOT_RETURN_IF_ERROR(add(it.key(), *it));
    }
    if (out.size() > kMaxAttributes) return Status::InvalidArgument("more than 64 attributes");
  }
  return out;
}

Json AttributesJson(const Attributes& a) {
  Json j = Json::object();
  for (const auto& [k, v] : a) {
    if (v.size() == 1 && k != "ips") {
      j[k] = v[0];
    } else {
      j[k] = v;
    }
  }
  return j;
}

Json StoredAttributesJson(const std::string& text) {
  Json a = Json::parse(text, nullptr, false);
  return a.is_object() ? a : Json::object();
}

Attributes LoadAttributes(const std::string& text) {
  Json j = Json::parse(text, nullptr, false);
  auto a =
      j.is_discarded() ? core::Result<Attributes>(Status::InvalidArgument("")) : ParseAttributes(j);
  return a.ok() ? *a : Attributes{};
}

// Re-evaluates every rule collection for one client.
Status EvaluateClient(catalog::Tx& tx, std::int64_t client_id, const Attributes& attrs) {
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows rules,
                         tx.Query("SELECT id, rule FROM collections WHERE kind = 'rule'"));
  for (const auto& r : rules) {
    auto rule = Rule::Parse(r.Text(1));
    bool member = rule.ok() && rule->Matches(attrs);
    if (member) {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("INSERT INTO collection_members (collection_id, client_id) VALUES (?, ?) "
                  "ON CONFLICT (collection_id, client_id) DO NOTHING",
                  {r.Int(0), client_id})
              .status());
    } else {
      DEPOT_RETURN_IF_ERROR(
          tx.Exec("DELETE FROM collection_members WHERE collection_id = ? AND client_id = ?",
                  {r.Int(0), client_id})
              .status());
    }
  }
  return Status::Ok();
}

// Re-evaluates one rule against every client.
core::Result<std::int64_t> EvaluateRule(catalog::Tx& tx, std::int64_t collection_id,
                                        const Rule& rule) {
  DEPOT_RETURN_IF_ERROR(
      tx.Exec("DELETE FROM collection_members WHERE collection_id = ?", {collection_id}).status());
  DEPOT_ASSIGN_OR_RETURN(catalog::Rows clients, tx.Query("SELECT id, attributes FROM clients"));
  std::int64_t members = 0;
  for (const auto& c : clients) {
    if (!rule.Matches(LoadAttributes(c.Text(1)))) continue;
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("INSERT INTO collection_members (collection_id, client_id) VALUES (?, ?)",
                {collection_id, c.Int(0)})
            .status());
    ++members;
  }
  return members;
}

// Resolves client uids or names to ids; a name shared by several clients is an error.
core::Result<std::vector<std::int64_t>> ResolveClients(catalog::Tx& tx,
                                                       const std::vector<std::string>& refs) {
  std::vector<std::int64_t> ids;
  for (const auto& ref : refs) {
    DEPOT_ASSIGN_OR_RETURN(
        catalog::Rows rows,
        tx.Query("SELECT id, uid FROM clients WHERE uid = ? OR name = ?", {ref, ref}));
    if (rows.empty())
      return Status::NotFound("no client with id or name `" + ref.substr(0, 80) +
                              "` (see `depot client list`)");
    if (rows.size() > 1) {
      std::string uids;
      for (const auto& r : rows) uids += (uids.empty() ? "" : ", ") + r.Text(1);
      return Status::InvalidArgument("several clients are named `" + ref +
                                     "`; use one of their ids: " + uids);
    }
    ids.push_back(rows[0].Int(0));
  }
  return ids;
}

}  // namespace depot::site
