// The in-process site tests' fixture: a real site on loopback (a real catalog -- each
// test runs on SQLite and on PostgreSQL -- and a real content library) and an admin
// client, driven through the HTTP client like the CLI drives it. Test-only.
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "catalog/test_db.h"
#include "core/testing.h"
#include "http/client.h"
#include "site/site.h"

namespace depot::site {

// For the catalog of a test site: "" (SQLite in the data directory) or a new
// PostgreSQL database. Fails the test when the database cannot be made.
inline std::string TestCatalog(catalog::Dialect d, const testing::TempDir& dir) {
  if (d == catalog::Dialect::kSqlite) return "";
  auto where = catalog::NewTestDatabase(d, dir.path());
  EXPECT_TRUE(where.ok()) << where.status().ToString();
  return where.ok() ? *where : "";
}

class SiteTest : public ::testing::TestWithParam<catalog::Dialect> {
 protected:
  using Json = nlohmann::json;

  void SetUp() override {
    InitOptions o;
    o.data_dir = dir_.Sub("site");
    o.code = "TST";
    o.listen = "127.0.0.1:0";
    o.db = TestCatalog(GetParam(), dir_);
    auto init = InitSite(core::Env::Default(), core::Clock::Real(), o);
    ASSERT_TRUE(init.ok()) << init.status().ToString();
    admin_token_ = init->admin_token;
    auto site = Site::Open(core::Env::Default(), core::Clock::Real(), o.data_dir);
    ASSERT_TRUE(site.ok()) << site.status().ToString();
    site_ = std::move(*site);
    ASSERT_TRUE(site_->Start().ok());
    admin_ = Client(admin_token_);
  }

  std::unique_ptr<http::Client> Client(const std::string& token) {
    http::ClientOptions opts;
    opts.bearer_token = token;
    return std::move(*http::Client::Create(site_->url(), opts));
  }

  Json Call(http::Client* c, const std::string& method, const std::string& target,
            const Json& body = nullptr, long want = 200) {
    auto r = c->Do(method, target, body.is_null() ? "" : body.dump());
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) return Json();
    EXPECT_EQ(r->status, want) << method << " " << target << ": " << r->body;
    Json j = Json::parse(r->body, nullptr, false);
    return j.is_discarded() ? Json() : j;
  }

  testing::TempDir dir_;
  std::string admin_token_;
  std::unique_ptr<Site> site_;
  std::unique_ptr<http::Client> admin_;
};

}  // namespace depot::site
