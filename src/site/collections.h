// Collections of clients: static member lists, or rules over client attributes kept
// current as attributes and rules change (internal to the site component; see
// membership.h).
#pragma once

#include <string>

#include "site/context.h"
#include "site/json.h"

namespace depot::site {

core::Result<Json> CreateCollection(SiteContext& ctx, const Json& body);
core::Result<Json> ListCollections(SiteContext& ctx);
core::Result<Json> ShowCollection(SiteContext& ctx, const std::string& name);
// InvalidArgument while a deployment (live or cancelled) refers to it.
core::Result<Json> DeleteCollection(SiteContext& ctx, const std::string& name);
// PATCH: {"add":[...],"remove":[...]} for a static collection, or {"rule":"..."}.
core::Result<Json> ChangeCollection(SiteContext& ctx, const std::string& name, const Json& body);

}  // namespace depot::site
