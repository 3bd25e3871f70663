// Credentials (internal to the site component). Tokens are 256-bit random secrets
// spelled "depot_<kind>_<64 hex>"; the catalog stores only their SHA-256, so a copy of
// the catalog grants nothing. Roles are ordered admin > operator > read-only for the
// admin API; enroll, dp and agent tokens only open their own endpoints.
#pragma once

#include <optional>
#include <string>

#include "catalog/db.h"
#include "http/server.h"
#include "site/context.h"

namespace depot::site {

// "admin", "operator", "read-only", "enroll", "dp", "agent".
std::string_view RoleName(Role r);
// Parses the names above; false for anything else.
bool ParseRole(std::string_view s, Role* out);
// True when `have` may do what `need` allows (admin >= operator >= read-only; the
// others only match themselves).
bool RoleAllows(Role have, Role need);

struct NewToken {
  std::int64_t id = 0;
  std::string secret;  // shown once, never stored
};

// Creates a token in the caller's transaction. `expires_at_ms` 0: never;
// `uses` nullopt: unlimited (only enroll tokens count uses).
core::Result<NewToken> CreateToken(SiteContext& ctx, catalog::Tx& tx, Role role,
                                   const std::string& name, std::int64_t subject_id,
                                   std::int64_t expires_at_ms, std::optional<std::int64_t> uses);

// Resolves the bearer token of `req`. PermissionDenied (no token, unknown, revoked,
// expired, used up) with a message that says which, without echoing the secret.
// Enroll tokens are resolved but not consumed (ConsumeEnrollToken does that).
core::Result<Principal> Authenticate(SiteContext& ctx, const http::Request& req);

// Uses one enrollment of an enroll token inside `tx`; PermissionDenied when it is no
// longer valid.
core::Status ConsumeEnrollToken(SiteContext& ctx, catalog::Tx& tx, std::int64_t token_id);

// Revokes tokens in `tx` (by id, or every token of a DP/client subject). The caller
// calls ForgetCachedTokens once `tx` has committed, so a revoked credential stops
// working at once (a lookup racing the revocation is not cached: token_generation).
core::Status RevokeToken(SiteContext& ctx, catalog::Tx& tx, std::int64_t token_id);
core::Status RevokeSubjectTokens(SiteContext& ctx, catalog::Tx& tx, Role role,
                                 std::int64_t subject_id);
// Empties the token cache of every process on the catalog (a "tokens" notification).
void ForgetCachedTokens(SiteContext& ctx);
// The same in this process only (what the notification does on arrival).
void ForgetCachedTokensHere(SiteContext& ctx);

}  // namespace depot::site
