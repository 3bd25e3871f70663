#include "site/auth.h"

#include <strings.h>

#include "core/log.h"
#include "core/random.h"
#include "core/sha256.h"

namespace depot::site {

using core::Status;

namespace {

// A revocation or removal empties the token cache of every process at once (a
// "tokens" notification, processes.h); the lifetime bounds what a lost notification
// could leave, and re-reads expiry and revocation for anything edited by hand.
constexpr auto kCacheTtl = std::chrono::seconds(60);
constexpr auto kLastUseInterval = std::chrono::seconds(60);

// The role as it appears inside a token's text: RoleName without the dash, so a
// token stays one word.
std::string_view TokenKind(Role r) {
  return r == Role::kReadOnly ? std::string_view("readonly") : RoleName(r);
}

}  // namespace

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kAdmin:
      return "admin";
    case Role::kOperator:
      return "operator";
    case Role::kReadOnly:
      return "read-only";
    case Role::kEnroll:
      return "enroll";
    case Role::kDp:
      return "dp";
    case Role::kAgent:
      return "agent";
    case Role::kChild:
      return "child";
    default:
      return "none";
  }
}

bool ParseRole(std::string_view s, Role* out) {
  static const std::pair<std::string_view, Role> kRoles[] = {
      {"admin", Role::kAdmin},       {"operator", Role::kOperator}, {"read-only", Role::kReadOnly},
      {"readonly", Role::kReadOnly}, {"enroll", Role::kEnroll},     {"dp", Role::kDp},
      {"agent", Role::kAgent},       {"child", Role::kChild}};
  for (const auto& [name, role] : kRoles) {
    if (s == name) {
      *out = role;
      return true;
    }
  }
  return false;
}

bool RoleAllows(Role have, Role need) {
  auto rank = [](Role r) {
    switch (r) {
      case Role::kAdmin:
        return 3;
      case Role::kOperator:
        return 2;
      case Role::kReadOnly:
        return 1;
      default:
        return 0;
    }
  };
  if (rank(need) > 0) return rank(have) >= rank(need);
  return have == need && need != Role::kNone;
}

core::Result<NewToken> CreateToken(SiteContext& ctx, catalog::Tx& tx, Role role,
                                   const std::string& name, std::int64_t subject_id,
                                   std::int64_t expires_at_ms, std::optional<std::int64_t> uses) {
  NewToken t;
  t.secret = "depot_" + std::string(TokenKind(role)) + "_" + core::RandomHex(32);
  DEPOT_ASSIGN_OR_RETURN(
      t.id,
      tx.QueryInt("INSERT INTO tokens (kind, name, secret_hash, subject_id, created_at, "
                  "expires_at, uses_left) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                  {std::string(RoleName(role)), name, core::Sha256::HashHex(t.secret),
                   subject_id == 0 ? catalog::Value() : catalog::Value(subject_id), ctx.NowMs(),
                   expires_at_ms == 0 ? catalog::Value() : catalog::Value(expires_at_ms), uses}));
  return t;
}

namespace {

// The SHA-256 (hex) of the bearer token of `req`: what the catalog stores.
core::Result<std::string> BearerTokenHash(const http::Request& req) {
  const std::string* auth = req.GetHeader("authorization");
  if (auth == nullptr || auth->empty()) {
    return Status::PermissionDenied(
        "no credentials: send `Authorization: Bearer TOKEN` (the CLI reads --token or "
        "DEPOT_TOKEN)");
  }
  constexpr std::string_view kBearer = "Bearer ";
  if (auth->size() <= kBearer.size() ||
      strncasecmp(auth->c_str(), kBearer.data(), kBearer.size()) != 0) {
    return Status::PermissionDenied("credentials must be a bearer token");
  }
  std::string_view secret = std::string_view(*auth).substr(kBearer.size());
  while (!secret.empty() && secret.front() == ' ') secret.remove_prefix(1);
  if (secret.size() > 200) return Status::PermissionDenied("token not recognised");
  return core::Sha256::HashHex(secret);
}

}  // namespace

core::Result<Principal> Authenticate(SiteContext& ctx, const http::Request& req) {
  DEPOT_ASSIGN_OR_RETURN(std::string hash, BearerTokenHash(req));
  const core::MonoTime now_steady = ctx.clock->Monotonic();
  std::int64_t now_ms = ctx.NowMs();
  bool write_last_use = false;
  std::int64_t token_id = 0;
  std::uint64_t generation = 0;
  {
    std::lock_guard<std::mutex> lock(ctx.tokens_mu);
    generation = ctx.token_generation;
    auto it = ctx.token_cache.find(hash);
    if (it != ctx.token_cache.end() && now_steady - it->second.cached_at < kCacheTtl) {
      if (it->second.expires_at_ms != 0 && now_ms >= it->second.expires_at_ms) {
        return Status::PermissionDenied("token `" + it->second.principal.name +
                                        "` has expired; create a new one");
      }
      if (now_steady - it->second.last_use_written >= kLastUseInterval) {
        it->second.last_use_written = now_steady;
        write_last_use = true;
        token_id = it->second.principal.token_id;
      }
      Principal p = it->second.principal;
      if (!write_last_use) return p;
    }
  }
  if (token_id != 0) {
    // last_used_at is informational: noted here, written with the other sightings in
    // one transaction per flush (FlushSeen), never one transaction per request --
    // 20 k agents' first polls of a minute would otherwise be 20 k write transactions.
    {
      std::lock_guard<std::mutex> lock(ctx.seen_mu);
      ctx.token_used[token_id] = now_ms;
    }
    std::lock_guard<std::mutex> lock(ctx.tokens_mu);
    auto it = ctx.token_cache.find(hash);
    if (it != ctx.token_cache.end()) return it->second.principal;
  }
  auto row = ctx.db->QueryRow(
      "SELECT id, kind, name, subject_id, expires_at, uses_left, revoked_at FROM tokens "
      "WHERE secret_hash = ?",
      {hash});
  if (!row.ok()) {
    if (row.status().IsNotFound()) return Status::PermissionDenied("token not recognised");
    return row.status();
  }
  Principal p;
  p.token_id = row->Int(0);
  if (!ParseRole(row->Text(1), &p.role)) return Status::PermissionDenied("token not recognised");
  p.name = row->Text(2);
  p.subject_id = row->OptInt(3).value_or(0);
  std::int64_t expires = row->OptInt(4).value_or(0);
  if (!row->IsNull(6)) {
    return Status::PermissionDenied("token `" + p.name + "` was revoked");
  }
  if (expires != 0 && now_ms >= expires) {
    return Status::PermissionDenied("token `" + p.name + "` has expired; create a new one");
  }
  if (p.role == Role::kEnroll && row->OptInt(5).value_or(1) <= 0) {
    return Status::PermissionDenied("enrollment token `" + p.name + "` has no uses left");
  }
  if (p.role != Role::kEnroll) {  // enroll tokens change with every use: never cached
    std::lock_guard<std::mutex> lock(ctx.tokens_mu);
    if (ctx.token_cache.size() > 200'000) ctx.token_cache.clear();
    // Read before a revocation that has since committed: answered, not remembered.
    if (ctx.token_generation == generation) {
      ctx.token_cache[hash] = CachedToken{p, expires, now_steady, {}};
    }
  }
  return p;
}

Status ConsumeEnrollToken(SiteContext& ctx, catalog::Tx& tx, std::int64_t token_id) {
  DEPOT_ASSIGN_OR_RETURN(
      auto row,
      tx.QueryRow("SELECT uses_left, expires_at, revoked_at, name FROM tokens WHERE id = ? "
                  "AND kind = 'enroll'",
                  {token_id}));
  if (!row.IsNull(2)) return Status::PermissionDenied("enrollment token was revoked");
  if (row.OptInt(1).value_or(0) != 0 && ctx.NowMs() >= row.Int(1)) {
    return Status::PermissionDenied("enrollment token `" + row.Text(3) + "` has expired");
  }
  if (!row.IsNull(0)) {
    if (row.Int(0) <= 0) {
      return Status::PermissionDenied("enrollment token `" + row.Text(3) + "` has no uses left");
    }
    DEPOT_RETURN_IF_ERROR(
        tx.Exec("UPDATE tokens SET uses_left = uses_left - 1 WHERE id = ?", {token_id}).status());
  }
  return tx
      .Exec("UPDATE tokens SET uses = uses + 1, last_used_at = ? WHERE id = ?",
            {ctx.NowMs(), token_id})
      .status();
}

Status RevokeToken(SiteContext& ctx, catalog::Tx& tx, std::int64_t token_id) {
  DEPOT_ASSIGN_OR_RETURN(
      std::int64_t n,
      tx.Exec("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
              {ctx.NowMs(), token_id}));
  if (n == 0) {
    return Status::NotFound("no active token with id " + std::to_string(token_id) +
                            " (see `depot token list`)");
  }
  return Status::Ok();
}

Status RevokeSubjectTokens(SiteContext& ctx, catalog::Tx& tx, Role role, std::int64_t subject_id) {
  return tx
      .Exec(
          "UPDATE tokens SET revoked_at = ? WHERE kind = ? AND subject_id = ? AND revoked_at "
          "IS NULL",
          {ctx.NowMs(), std::string(RoleName(role)), subject_id})
      .status();
}

void ForgetCachedTokensHere(SiteContext& ctx) {
  std::lock_guard<std::mutex> lock(ctx.tokens_mu);
  ++ctx.token_generation;
  ctx.token_cache.clear();
}

void ForgetCachedTokens(SiteContext& ctx) {
  // Every process's cache (this one's synchronously, through its subscription).
  Status s = ctx.db->Notify("tokens");
  if (!s.ok()) {
    core::Log(core::LogLevel::kWarn, "site.notify_failed",
              {{"what", "tokens"}, {"error", s.ToString()}});
  }
}

}  // namespace depot::site
