// The site catalog's schema, as migrations (see migrate.h). docs/catalog.md describes
// the tables; this file is the truth.
#pragma once

#include <vector>

#include "catalog/migrate.h"

namespace depot::catalog {

// Every migration of the site catalog, in order. Append only.
const std::vector<Migration>& SiteMigrations();

}  // namespace depot::catalog
