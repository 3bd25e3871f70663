#include "http/static_files.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "core/testing.h"
#include "http/client.h"
#include "store/compress.h"

namespace depot::http {
namespace {

class TreeHandler : public Handler {
 public:
  explicit TreeHandler(StaticTree* tree) : tree_(tree) {}
  std::uint64_t BodyLimit(const Request&) override { return 0; }
  void Handle(Request& req, Response* resp) override {
    if (req.path.rfind("/repo/", 0) != 0) {
      *resp = Response::Text(404, "");
      return;
    }
    tree_->Serve(req, std::string_view(req.path).substr(6), resp);
  }

 private:
  StaticTree* tree_;
};

class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    chunk_ = std::string(64, 'a');
    testing::WriteFileOrDie(dir_.Sub("tree/chunks/aa/" + chunk_), "0123456789");
    testing::WriteFileOrDie(dir_.Sub("tree/metadata/timestamp.json"), "{}");
    testing::WriteFileOrDie(dir_.Sub("tree/metadata/.timestamp.json.tmp.1-x"), "partial");
    testing::WriteFileOrDie(dir_.Sub("tree/metadata/3.snapshot.json"), "{\"v\":3}");
    testing::WriteFileOrDie(dir_.Sub("secret"), "outside");
    ASSERT_EQ(::symlink("../../secret", dir_.Sub("tree/metadata/link.json").c_str()), 0);
    ASSERT_EQ(::symlink(dir_.Sub("").c_str(), dir_.Sub("tree/up").c_str()), 0);
    auto tree = StaticTree::Open(dir_.Sub("tree"));
    ASSERT_TRUE(tree.ok());
    tree_ = std::move(*tree);
    handler_ = std::make_unique<TreeHandler>(tree_.get());
    auto s = Server::Start(handler_.get(), {});
    ASSERT_TRUE(s.ok());
    server_ = std::move(*s);
    client_ = std::move(*Client::Create(server_->url()));
  }
  ClientResponse Get(const std::string& target, std::vector<std::string> headers = {},
                     std::string method = "GET") {
    auto r = client_->Do(method, target, {}, "", headers);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : ClientResponse{};
  }
  testing::TempDir dir_;
  std::string chunk_;
  std::unique_ptr<StaticTree> tree_;
  std::unique_ptr<TreeHandler> handler_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<Client> client_;
};

TEST_F(StaticFilesTest, WholeFileWithImmutableCachingAndEtag) {
  auto r = Get("/repo/chunks/aa/" + chunk_);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "0123456789");
  EXPECT_EQ(*r.GetHeader("cache-control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(*r.GetHeader("etag"), "\"" + chunk_ + "\"");
  r = Get("/repo/chunks/aa/" + chunk_, {"If-None-Match: \"" + chunk_ + "\""});
  EXPECT_EQ(r.status, 304);
  EXPECT_EQ(r.body, "");
  r = Get("/repo/metadata/timestamp.json");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(*r.GetHeader("cache-control"), "no-cache");
  EXPECT_EQ(*r.GetHeader("content-type"), "application/json");
  EXPECT_EQ(*Get("/repo/metadata/3.snapshot.json").GetHeader("cache-control"),
            "public, max-age=31536000, immutable");
}

TEST_F(StaticFilesTest, ManifestsGoZstdEncodedToClientsThatAskForTheWholeFile) {
  std::string manifest;
  for (int i = 0; i < 400; ++i) manifest += "{\"path\":\"f" + std::to_string(i) + "\",\"sha256\":\"" + chunk_ + "\"}\n";
  std::string rel = "targets/tools/" + std::string(64, 'b') + ".1.json";
  testing::WriteFileOrDie(dir_.Sub("tree/" + rel), manifest);
  testing::WriteFileOrDie(dir_.Sub("tree/metadata/9.targets.json"), manifest);  // not a manifest
  std::string url = "/repo/" + rel;

  auto r = Get(url, {"Accept-Encoding: gzip, zstd"});
  ASSERT_EQ(r.status, 200);
  ASSERT_NE(r.GetHeader("content-encoding"), nullptr);
  EXPECT_EQ(*r.GetHeader("content-encoding"), "zstd");
  EXPECT_EQ(*r.GetHeader("vary"), "Accept-Encoding");
  EXPECT_LT(r.body.size(), manifest.size() / 4);
  auto plain = store::DecompressFrameBounded(r.body, 1 << 20);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(*plain, manifest);
  std::string zetag = *r.GetHeader("etag");
  EXPECT_EQ(zetag, "\"" + std::string(64, 'b') + "-zstd\"");
  EXPECT_EQ(Get(url, {"Accept-Encoding: zstd", "If-None-Match: " + zetag}).status, 304);
  r = Get(url, {"Accept-Encoding: zstd"}, "HEAD");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(*r.GetHeader("content-encoding"), "zstd");

  // As stored: no Accept-Encoding, zstd refused by q=0, a range, or not a manifest.
  for (const auto& headers : std::vector<std::vector<std::string>>{
           {}, {"Accept-Encoding: gzip"}, {"Accept-Encoding: zstd;q=0"}, {"Accept-Encoding: zstd", "Range: bytes=0-9"}}) {
    r = Get(url, headers);
    EXPECT_EQ(r.GetHeader("content-encoding"), nullptr) << (headers.empty() ? "" : headers[0]);
    EXPECT_EQ(r.body, headers.size() == 2 ? manifest.substr(0, 10) : manifest);
  }
  r = Get("/repo/metadata/9.targets.json", {"Accept-Encoding: zstd"});
  EXPECT_EQ(r.GetHeader("content-encoding"), nullptr);
  EXPECT_EQ(r.body, manifest);
}

TEST_F(StaticFilesTest, Ranges) {
  std::string url = "/repo/chunks/aa/" + chunk_;
  auto r = Get(url, {"Range: bytes=0-0"});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, "0");
  EXPECT_EQ(*r.GetHeader("content-range"), "bytes 0-0/10");
  r = Get(url, {"Range: bytes=9-9"});
  EXPECT_EQ(r.body, "9");
  r = Get(url, {"Range: bytes=3-6"});
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(r.body, "3456");
  r = Get(url, {"Range: bytes=7-"});
  EXPECT_EQ(r.body, "789");
  r = Get(url, {"Range: bytes=-2"});
  EXPECT_EQ(r.body, "89");
  r = Get(url, {"Range: bytes=5-100"});
  EXPECT_EQ(r.body, "56789");
  r = Get(url, {"Range: bytes=10-"});
  EXPECT_EQ(r.status, 416);
  EXPECT_EQ(*r.GetHeader("content-range"), "bytes */10");
  r = Get(url, {"Range: bytes=0-1,3-4"});  // several ranges: the whole body
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "0123456789");
  r = Get(url, {"Range: bytes=2-3"}, "HEAD");
  EXPECT_EQ(r.status, 206);
  EXPECT_EQ(*r.GetHeader("content-length"), "2");
  EXPECT_EQ(r.body, "");
}

TEST_F(StaticFilesTest, NothingOutsideTheTreeNorHiddenNorDirectories) {
  EXPECT_EQ(Get("/repo/metadata/link.json").status, 404);        // symlink
  EXPECT_EQ(Get("/repo/up/secret").status, 404);                 // symlinked directory
  EXPECT_EQ(Get("/repo/../secret").status, 404);                 // traversal
  EXPECT_EQ(Get("/repo/metadata/%2e%2e/%2e%2e/secret").status, 404);
  EXPECT_EQ(Get("/repo/metadata/.timestamp.json.tmp.1-x").status, 404);  // temp file
  EXPECT_EQ(Get("/repo/metadata").status, 404);                  // no listing
  EXPECT_EQ(Get("/repo/metadata/").status, 404);
  EXPECT_EQ(Get("/repo/nope.json").status, 404);
  EXPECT_EQ(Get("/repo/chunks/aa/" + chunk_, {}, "DELETE").status, 405);
}

TEST(ByteRangeTest, Parse) {
  std::uint64_t f, l;
  bool u;
  EXPECT_TRUE(ParseByteRange("bytes=0-499", 1000, &f, &l, &u));
  EXPECT_EQ(f, 0u);
  EXPECT_EQ(l, 499u);
  EXPECT_FALSE(ParseByteRange("bytes=5-1", 1000, &f, &l, &u));
  EXPECT_FALSE(ParseByteRange("items=0-1", 1000, &f, &l, &u));
  EXPECT_FALSE(ParseByteRange("bytes=a-b", 1000, &f, &l, &u));
  EXPECT_TRUE(ParseByteRange("bytes=-0", 1000, &f, &l, &u));
  EXPECT_TRUE(u);
  EXPECT_TRUE(ParseByteRange("bytes=0-", 0, &f, &l, &u));
  EXPECT_TRUE(u);
}

}  // namespace
}  // namespace depot::http
