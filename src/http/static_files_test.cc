#include "http/static_files.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "core/sha256.h"
#include "core/testing.h"
#include "http/client.h"
#include "http/curl_source.h"
#include "store/compress.h"

namespace depot::http {
namespace {

class TreeHandler : public Handler {
 public:
  explicit TreeHandler(StaticTree* tree) : tree_(tree) {}
  Admission Admit(const Request&) override { return {1 << 20, std::nullopt}; }
  void Handle(Request& req, Response* resp) override {
    if (req.path.rfind("/repo/", 0) != 0) {
      *resp = Response::Text(404, "");
      return;
    }
    std::string_view rel = std::string_view(req.path).substr(6);
    if (rel == kChunkBatchPath && batches) {
      ++batch_requests;
      tree_->ServeChunkBatch(req, resp);
      return;
    }
    ++get_requests;
    tree_->Serve(req, rel, resp);
  }
  std::atomic<bool> batches{true};  // false: answer batches like nginx (405)
  std::atomic<int> batch_requests{0}, get_requests{0};

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
  for (int i = 0; i < 400; ++i)
    manifest += "{\"path\":\"f" + std::to_string(i) + "\",\"sha256\":\"" + chunk_ + "\"}\n";
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
  for (const auto& headers :
       std::vector<std::vector<std::string>>{{},
                                             {"Accept-Encoding: gzip"},
                                             {"Accept-Encoding: zstd;q=0"},
                                             {"Accept-Encoding: zstd", "Range: bytes=0-9"}}) {
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
  EXPECT_EQ(Get("/repo/metadata/link.json").status, 404);  // symlink
  EXPECT_EQ(Get("/repo/up/secret").status, 404);           // symlinked directory
  EXPECT_EQ(Get("/repo/../secret").status, 404);           // traversal
  EXPECT_EQ(Get("/repo/metadata/%2e%2e/%2e%2e/secret").status, 404);
  EXPECT_EQ(Get("/repo/metadata/.timestamp.json.tmp.1-x").status, 404);  // temp file
  EXPECT_EQ(Get("/repo/metadata").status, 404);                          // no listing
  EXPECT_EQ(Get("/repo/metadata/").status, 404);
  EXPECT_EQ(Get("/repo/nope.json").status, 404);
  EXPECT_EQ(Get("/repo/chunks/aa/" + chunk_, {}, "DELETE").status, 405);
}

// Kept-open files, seen from StaticTree::Serve directly.
class KeptFilesTest : public ::testing::Test {
 protected:
  std::unique_ptr<StaticTree> Open(StaticFileOptions options = {}) {
    auto tree = StaticTree::Open(dir_.Sub("tree"), options);
    EXPECT_TRUE(tree.ok()) << tree.status().ToString();
    return tree.ok() ? std::move(*tree) : nullptr;
  }
  static std::string Chunk(int i) {
    std::string id = core::Sha256::HashHex(std::to_string(i));
    return "chunks/" + id.substr(0, 2) + "/" + id;
  }
  // Status and body of a GET for `rel`, read from the response's file as the server would.
  static std::pair<int, std::string> Get(const StaticTree& tree, const std::string& rel) {
    Request req;
    req.method = "GET";
    Response resp;
    tree.Serve(req, rel, &resp);
    if (!resp.file) return {resp.status, resp.body};
    std::string body(resp.file->length, '\0');
    ssize_t n = ::pread(resp.file->file->fd(), body.data(), body.size(),
                        static_cast<off_t>(resp.file->offset));
    EXPECT_EQ(n, static_cast<ssize_t>(body.size()));
    return {resp.status, body};
  }
  static std::size_t OpenFds() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
  }
  testing::TempDir dir_;
};

TEST_F(KeptFilesTest, AFileDeletedOrReplacedSinceItWasKeptIsNotServedFromTheKeptCopy) {
  testing::WriteFileOrDie(dir_.Sub("tree/" + Chunk(1)), "first");
  testing::WriteFileOrDie(dir_.Sub("tree/metadata/timestamp.json"), "{}");
  auto tree = Open();
  EXPECT_EQ(Get(*tree, Chunk(1)), std::make_pair(200, std::string("first")));
  EXPECT_EQ(tree->kept_files(), 1u);
  EXPECT_EQ(Get(*tree, Chunk(1)), std::make_pair(200, std::string("first")));  // from the kept copy
  EXPECT_EQ(Get(*tree, "metadata/timestamp.json"), std::make_pair(200, std::string("{}")));
  EXPECT_EQ(tree->kept_files(), 1u) << "a mutable file is never kept open";

  // Replaced (a repair: removed, then written again): the new file is served.
  ASSERT_EQ(::unlink(dir_.Sub("tree/" + Chunk(1)).c_str()), 0);
  testing::WriteFileOrDie(dir_.Sub("tree/" + Chunk(1)), "second");
  EXPECT_EQ(Get(*tree, Chunk(1)), std::make_pair(200, std::string("second")));
  Request batch;
  batch.method = "POST";
  batch.body = Chunk(1).substr(10) + "\n";
  Response resp;
  tree->ServeChunkBatch(batch, &resp);
  EXPECT_EQ(resp.body, Chunk(1).substr(10) + " 6\nsecond");

  // Deleted: gone, and no longer held open.
  ASSERT_EQ(::unlink(dir_.Sub("tree/" + Chunk(1)).c_str()), 0);
  EXPECT_EQ(Get(*tree, Chunk(1)).first, 404);
  EXPECT_EQ(tree->kept_files(), 0u);
}

TEST_F(KeptFilesTest, BoundedInNumberAndIdleTimeAndClosedOnRequest) {
  for (int i = 0; i < 64; ++i)
    testing::WriteFileOrDie(dir_.Sub("tree/" + Chunk(i)), std::to_string(i));
  std::size_t fds_before = OpenFds();
  {
    StaticFileOptions options;
    options.open_files = 16;
    auto tree = Open(options);
    for (int i = 0; i < 64; ++i)
      ASSERT_EQ(Get(*tree, Chunk(i)), std::make_pair(200, std::to_string(i)));
    EXPECT_LE(tree->kept_files(), 16u);
    EXPECT_GT(tree->kept_files(), 0u);
    EXPECT_LE(OpenFds(), fds_before + 1 + 16);  // the root, the kept files
    tree->CloseKeptFiles();
    EXPECT_EQ(tree->kept_files(), 0u);
    EXPECT_EQ(OpenFds(), fds_before + 1);
  }
  EXPECT_EQ(OpenFds(), fds_before);
  {
    // Unused for longer than open_file_idle (0 s here): closed at the next look into
    // their part of the cache, so at most one per part stays.
    StaticFileOptions options;
    options.open_file_idle = std::chrono::seconds(0);
    auto tree = Open(options);
    for (int i = 0; i < 64; ++i) ASSERT_EQ(Get(*tree, Chunk(i)).first, 200);
    EXPECT_LE(tree->kept_files(), 8u);
  }
  {
    StaticFileOptions options;
    options.open_files = 0;
    auto tree = Open(options);
    ASSERT_EQ(Get(*tree, Chunk(0)).first, 200);
    EXPECT_EQ(tree->kept_files(), 0u);
  }
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

// A chunk file as a store holds it: named after an id, any bytes (frames are not
// checked by the server; the client verifies them).
std::string PutChunkFile(testing::TempDir& dir, int i, std::string bytes) {
  std::string id = core::Sha256::HashHex("chunk " + std::to_string(i));
  testing::WriteFileOrDie(dir.Sub("tree/chunks/" + id.substr(0, 2) + "/" + id), bytes);
  return id;
}

TEST_F(StaticFilesTest, ChunkBatchCarriesPresentChunksAndMarksTheRest) {
  std::string a = PutChunkFile(dir_, 1, "first frame");
  std::string b = PutChunkFile(dir_, 2, std::string(100000, 'x'));
  std::string absent = core::Sha256::HashHex("not stored");
  auto r =
      client_->Do("POST", "/repo/chunks/batch", a + "\n" + absent + "\n" + b + "\n", "text/plain");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(*r->GetHeader("content-type"), kChunkBatchContentType);
  std::string expected =
      a + " 11\nfirst frame" + absent + " -\n" + b + " 100000\n" + std::string(100000, 'x');
  EXPECT_EQ(r->body.size(), expected.size());
  EXPECT_TRUE(r->body == expected) << r->body.substr(0, 300);

  // Malformed lists and the wrong method are refused; nothing outside chunks/ is reachable.
  for (std::string body :
       {std::string("../../secret\n"), std::string(63, 'a') + "\n", std::string(64, 'A') + "\n"}) {
    auto bad = client_->Do("POST", "/repo/chunks/batch", body, "text/plain");
    ASSERT_TRUE(bad.ok());
    EXPECT_EQ(bad->status, 400) << body;
  }
  std::string many;
  for (std::size_t i = 0; i <= kMaxBatchIds; ++i) many += a + "\n";
  EXPECT_EQ(client_->Do("POST", "/repo/chunks/batch", many, "text/plain")->status, 400);
  EXPECT_EQ(Get("/repo/chunks/batch").status, 405);
}

TEST_F(StaticFilesTest, CurlSourceFetchesChunksInBatchesAndFallsBackToGets) {
  std::vector<core::FetchRequest> requests;
  std::vector<std::string> want;
  for (int i = 0; i < 300; ++i) {
    std::string bytes = "frame " + std::to_string(i) + std::string(i * 10, 'z');
    std::string id = PutChunkFile(dir_, i, bytes);
    requests.push_back({"chunks/" + id.substr(0, 2) + "/" + id, bytes.size()});
    want.push_back(bytes);
  }
  // One the server lacks: the batch answers "-", the client asks with a GET (404).
  std::string absent = core::Sha256::HashHex("absent");
  requests.insert(requests.begin() + 150, {"chunks/" + absent.substr(0, 2) + "/" + absent, 100});
  want.insert(want.begin() + 150, "");
  // A file longer than its cap: refused like an endless GET.
  want[10] = "";

  auto run = [&](CurlSource* src) {
    requests[10].max_bytes = 3;
    std::vector<core::Result<std::string>> got(requests.size(),
                                               core::Status::Unavailable("not delivered"));
    ASSERT_TRUE(src->FetchMany(requests, 4,
                               [&](std::size_t i, core::Result<std::string> r) {
                                 got[i] = std::move(r);
                                 return true;
                               })
                    .ok());
    for (std::size_t i = 0; i < requests.size(); ++i) {
      if (i == 150) {
        EXPECT_TRUE(got[i].status().IsNotFound()) << got[i].status().ToString();
      } else if (i == 10) {
        EXPECT_TRUE(got[i].status().IsCorruption()) << got[i].status().ToString();
      } else {
        ASSERT_TRUE(got[i].ok()) << i << ": " << got[i].status().ToString();
        EXPECT_EQ(*got[i], want[i]) << i;
      }
    }
  };
  CurlOptions options;
  options.chunk_batches = true;
  auto batched = CurlSource::Create(server_->url() + "/repo", options);
  ASSERT_TRUE(batched.ok());
  run(batched->get());
  EXPECT_GE(handler_->batch_requests.load(), 3);
  EXPECT_LE(handler_->batch_requests.load(), 10);
  EXPECT_LE(handler_->get_requests.load(),
            2);  // the absent chunk (the over-long one comes in its batch)

  // A server without batches (as nginx): one refused batch, then GETs.
  handler_->batches = false;
  handler_->batch_requests = 0;
  handler_->get_requests = 0;
  auto plain = CurlSource::Create(server_->url() + "/repo", options);
  ASSERT_TRUE(plain.ok());
  run(plain->get());
  EXPECT_GE(handler_->get_requests.load(), static_cast<int>(requests.size()));

  // Known not to offer batches: the next run pipelines its GETs (http/pipeline.h)
  // to this server, with the same results.
  handler_->batch_requests = 0;
  handler_->get_requests = 0;
  run(plain->get());
  EXPECT_EQ(handler_->batch_requests.load(), 0);
  EXPECT_EQ(handler_->get_requests.load(), static_cast<int>(requests.size()));
  // And the same with pipelining off (libcurl, one transfer per GET).
  CurlOptions no_pipeline;
  no_pipeline.pipelining = false;
  auto curl_only = CurlSource::Create(server_->url() + "/repo", no_pipeline);
  ASSERT_TRUE(curl_only.ok());
  run(curl_only->get());
}

}  // namespace
}  // namespace depot::http

namespace depot::http {
namespace {

// Finding 3: a batch listing one chunk a thousand times built a 32 MiB answer from a
// 65 KB request. Ids are distinct, answers leased from a budget per address and in
// all; past it the answer carries nothing and the client GETs each chunk alone.
TEST(ChunkBatchBudgetTest, RepeatedIdsAreRefusedAndAnswersStayWithinTheirBudget) {
  testing::TempDir dir;
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) ids.push_back(PutChunkFile(dir, i, std::string(30000, 'a' + i)));
  StaticFileOptions options;
  options.batch_memory = 4 * 70000;  // a quarter, 70000, per address: two chunks' answer
  auto tree = StaticTree::Open(dir.Sub("tree"), options);
  ASSERT_TRUE(tree.ok()) << tree.status().ToString();
  auto batch = [&](const std::string& from, std::vector<std::string> list) {
    Request req;
    req.method = "POST";
    req.remote_address = from;
    for (const std::string& id : list) req.body += id + "\n";
    Response resp;
    (*tree)->ServeChunkBatch(req, &resp);
    return resp;
  };
  Response repeated = batch("10.0.0.1", {ids[0], ids[1], ids[0]});
  EXPECT_EQ(repeated.status, 400);
  EXPECT_NE(repeated.body.find("each id once"), std::string::npos) << repeated.body;

  Response first = batch("10.0.0.1", {ids[0], ids[1]});
  ASSERT_EQ(first.status, 200);
  EXPECT_EQ(first.body.size(), 2 * (64 + 7 + 30000));  // both carried: "<id> 30000\n" + frame
  EXPECT_EQ(first.body.capacity(), first.body.size()) << "the lease covers all it holds";
  // While the first is held (not yet sent), the same address gets no more bytes...
  Response second = batch("10.0.0.1", {ids[2]});
  EXPECT_EQ(second.body, ids[2] + " -\n");
  // ...another address does...
  Response elsewhere = batch("10.0.0.2", {ids[2]});
  EXPECT_EQ(elsewhere.body.size(), 64 + 7 + 30000u);
  // ...and once the first is sent (dropped), the first address does again.
  first = Response();
  Response third = batch("10.0.0.1", {ids[3]});
  EXPECT_EQ(third.body.size(), 64 + 7 + 30000u);
}

}  // namespace
}  // namespace depot::http
