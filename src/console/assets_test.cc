#include "console/assets.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>
#include <string>

#include "core/sha256.h"

namespace depot::console {
namespace {

http::Request Get(std::string path) {
  http::Request r;
  r.method = "GET";
  r.path = r.target = std::move(path);
  return r;
}

TEST(ConsoleAssetsTest, EveryFileHasAKnownTypeAndIndexIsHtml) {
  ASSERT_NE(FindFile("index.html"), nullptr);
  EXPECT_EQ(ContentType("index.html"), "text/html; charset=utf-8");
  for (const EmbeddedFile& f : EmbeddedFiles()) {
    EXPECT_NE(ContentType(f.path), "application/octet-stream") << f.path;
    EXPECT_FALSE(f.bytes.empty()) << f.path;
    EXPECT_EQ(f.etag, "\"" + core::Sha256::HashHex(f.bytes).substr(0, 32) + "\"") << f.path;
  }
  EXPECT_EQ(FindFile("nope.js"), nullptr);
}

TEST(ConsoleAssetsTest, TheRootAndTheBarePathRedirectToTheConsole) {
  for (const char* p : {"/", "/console"}) {
    http::Response resp;
    Serve(Get(p), &resp);
    EXPECT_EQ(resp.status, 302) << p;
    ASSERT_NE(resp.GetHeader("Location"), nullptr);
    EXPECT_EQ(*resp.GetHeader("Location"), "/console/");
  }
}

TEST(ConsoleAssetsTest, ServesIndexWithAPolicyAndRevalidatesByEtag) {
  http::Response resp;
  Serve(Get("/console/"), &resp);
  ASSERT_EQ(resp.status, 200);
  EXPECT_EQ(resp.body, std::string(FindFile("index.html")->bytes));
  ASSERT_NE(resp.GetHeader("Content-Security-Policy"), nullptr);
  EXPECT_NE(resp.GetHeader("Content-Security-Policy")->find("script-src 'self'"),
            std::string::npos);
  EXPECT_EQ(*resp.GetHeader("X-Content-Type-Options"), "nosniff");
  ASSERT_NE(resp.GetHeader("ETag"), nullptr);
  http::Request again = Get("/console/index.html");
  again.headers.push_back({"If-None-Match", *resp.GetHeader("ETag")});
  http::Response cached;
  Serve(again, &cached);
  EXPECT_EQ(cached.status, 304);
  EXPECT_TRUE(cached.body.empty());
}

TEST(ConsoleAssetsTest, UnknownFilesAreNotFoundAndOtherMethodsRefused) {
  http::Response resp;
  Serve(Get("/console/../site.toml"), &resp);
  EXPECT_EQ(resp.status, 404);
  http::Request post = Get("/console/app.js");
  post.method = "POST";
  Serve(post, &resp);
  EXPECT_EQ(resp.status, 405);
  EXPECT_TRUE(IsConsolePath("/console/app.js"));
  EXPECT_FALSE(IsConsolePath("/consoles"));
  EXPECT_FALSE(IsConsolePath("/api/v1/status"));
}

// Every module import, script, stylesheet and icon the files name is embedded: a
// file added to a page but not to web/ fails here, not in a browser.
TEST(ConsoleAssetsTest, EveryReferencedFileIsEmbedded) {
  const std::regex ref(
      R"((?:from\s+|import\s+|src=|href=)['"](\.{0,2}/?[A-Za-z0-9_./-]+\.(?:js|css|svg))['"])");
  int checked = 0;
  for (const EmbeddedFile& f : EmbeddedFiles()) {
    std::string text(f.bytes);
    std::string dir(
        f.path.substr(0, f.path.rfind('/') == std::string_view::npos ? 0 : f.path.rfind('/') + 1));
    for (std::sregex_iterator it(text.begin(), text.end(), ref), end; it != end; ++it) {
      std::string target = (*it)[1].str();
      std::string base = dir;
      if (target.rfind("./", 0) == 0) target = target.substr(2);
      while (target.rfind("../", 0) == 0) {
        target = target.substr(3);
        base = base.empty() ? base : base.substr(0, base.rfind('/', base.size() - 2) + 1);
        if (base == "/") base.clear();
      }
      EXPECT_NE(FindFile(base + target), nullptr) << f.path << " names " << (*it)[1].str();
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
}

// Catalog text reaches the page only as text: no file may parse strings as markup
// or code (the CSP forbids inline script too; this keeps the source honest).
TEST(ConsoleAssetsTest, NoFileTurnsStringsIntoMarkupOrCode) {
  for (const EmbeddedFile& f : EmbeddedFiles()) {
    if (!f.path.ends_with(".js")) continue;
    for (const char* bad : {"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                            "eval(", "new Function", "createContextualFragment"}) {
      EXPECT_EQ(f.bytes.find(bad), std::string_view::npos) << f.path << " uses " << bad;
    }
  }
}

}  // namespace
}  // namespace depot::console
