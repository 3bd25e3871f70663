#include "store/snapshot.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "core/sha256.h"
#include "core/testing.h"
#include "store/compress.h"

namespace depot::store {
namespace {

using core::Status;

class SnapshotTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(store_.Create().ok()); }

  core::Result<SnapshotResult> Run(const SnapshotOptions& opts = {},
                                   core::Env* env = core::Env::Default()) {
    return Snapshot(env, src_, &store_, opts);
  }
  std::size_t StoredChunks() {
    std::size_t n = 0;
    EXPECT_TRUE(store_.ForEach([&](const ChunkId&, std::uint64_t) { return ++n, true; }).ok());
    return n;
  }
  const Entry* Find(const SnapshotResult& r, std::string_view path) {
    for (const auto& e : r.entries) {
      if (e.path == path) return &e;
    }
    ADD_FAILURE() << "no entry " << path;
    static const Entry kMissing;
    return &kMissing;
  }

  testing::TempDir dir_;
  std::string src_ = dir_.Sub("src");
  ChunkStore store_{core::Env::Default(), dir_.Sub("chunks"), 1};
};

TEST_F(SnapshotTest, RecordsTreeAndStoresVerifiableChunks) {
  std::string big = testing::RandomData(3 << 20, 1);
  testing::WriteFileOrDie(src_ + "/bin/tool", big, 0755);
  testing::WriteFileOrDie(src_ + "/doc/readme.txt", "hello\n", 0644);
  testing::WriteFileOrDie(src_ + "/doc/empty", "", 0600);
  ASSERT_EQ(::mkdir((src_ + "/var").c_str(), 0750), 0);
  ASSERT_EQ(::symlink("../bin/tool", (src_ + "/doc/tool").c_str()), 0);

  auto r = Run();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stats.files, 3u);
  EXPECT_EQ(r->stats.dirs, 3u);
  EXPECT_EQ(r->stats.symlinks, 1u);
  EXPECT_EQ(r->stats.bytes, big.size() + 6);
  EXPECT_EQ(r->stats.reused_bytes, 0u);

  const Entry* tool = Find(*r, "bin/tool");
  EXPECT_EQ(tool->mode, 0755u);
  EXPECT_EQ(tool->sha256, core::Sha256::Hash(big));
  EXPECT_GT(tool->chunks.size(), 10u);
  std::string rebuilt;
  for (const auto& c : tool->chunks) rebuilt += *store_.Get(c.id, c.size, true);
  EXPECT_EQ(rebuilt, big);
  EXPECT_EQ(Find(*r, "doc/tool")->target, "../bin/tool");
  EXPECT_EQ(Find(*r, "var")->mode, 0750u);
  EXPECT_EQ(Find(*r, "doc/empty")->chunks.size(), 0u);
  EXPECT_EQ(Find(*r, "doc/readme.txt")->sha256, core::Sha256::Hash("hello\n"));

  // The entries form a valid manifest.
  Manifest m;
  m.package_id = "p1";
  m.package_name = "p";
  m.version = 1;
  m.created = "2026-01-01T00:00:00Z";
  m.entries = r->entries;
  EXPECT_TRUE(ValidateManifest(m).ok());
}

// A directory beside names that continue its name with a byte below '/' ('.', '-',
// ' ', '!'): the walk visits "a/b" before "a.txt", the manifest sorts it after.
TEST_F(SnapshotTest, DirectoryBesideSamePrefixNamesGivesAValidSortedManifest) {
  testing::WriteFileOrDie(src_ + "/a/b", "inside\n", 0644);
  testing::WriteFileOrDie(src_ + "/a/c/d", "deeper\n", 0600);
  testing::WriteFileOrDie(src_ + "/a.txt", std::string(300 << 10, 'x'), 0644);
  testing::WriteFileOrDie(src_ + "/a-b", "dash\n", 0644);
  testing::WriteFileOrDie(src_ + "/a b", "space\n", 0644);
  testing::WriteFileOrDie(src_ + "/a!", "bang\n", 0644);
  testing::WriteFileOrDie(src_ + "/\xc3\xa9t\xc3\xa9", "utf-8\n", 0644);
  ASSERT_EQ(::symlink("a/b", (src_ + "/a.link").c_str()), 0);
  ASSERT_EQ(::symlink("a", (src_ + "/a.dir").c_str()), 0);

  auto r = Run();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::vector<std::string> paths;
  for (const auto& e : r->entries) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"a", "a b", "a!", "a-b", "a.dir", "a.link", "a.txt",
                                             "a/b", "a/c", "a/c/d", "\xc3\xa9t\xc3\xa9"}));
  // Each file's hash and size landed on its own entry after the reordering.
  EXPECT_EQ(Find(*r, "a.txt")->size, 300u << 10);
  EXPECT_EQ(Find(*r, "a/b")->sha256, core::Sha256::Hash("inside\n"));
  EXPECT_EQ(Find(*r, "a/c/d")->sha256, core::Sha256::Hash("deeper\n"));
  EXPECT_EQ(Find(*r, "a/c/d")->mode, 0600u);
  EXPECT_EQ(Find(*r, "a b")->sha256, core::Sha256::Hash("space\n"));
  EXPECT_EQ(Find(*r, "a.link")->target, "a/b");

  Manifest m;
  m.package_id = "p";
  m.package_name = "p";
  m.version = 1;
  m.created = "2026-01-01T00:00:00Z";
  m.entries = r->entries;
  EXPECT_TRUE(ValidateManifest(m).ok()) << ValidateManifest(m).ToString();
}

TEST_F(SnapshotTest, SecondSnapshotStoresOnlyChangedChunks) {
  std::string big = testing::RandomData(4 << 20, 2);
  testing::WriteFileOrDie(src_ + "/a.bin", big);
  testing::WriteFileOrDie(src_ + "/b.txt", "small");
  auto first = Run();
  ASSERT_TRUE(first.ok());
  std::size_t chunks_before = StoredChunks();

  auto again = Run();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->stats.new_chunks, 0u);
  EXPECT_EQ(StoredChunks(), chunks_before);

  // Insert 100 bytes in the middle: only the chunk(s) around the edit are new.
  big.insert(2 << 20, testing::RandomData(100, 3));
  testing::WriteFileOrDie(src_ + "/a.bin", big);
  auto edited = Run();
  ASSERT_TRUE(edited.ok());
  EXPECT_GE(edited->stats.new_chunks, 1u);
  EXPECT_LE(edited->stats.new_chunks, 3u);
  EXPECT_LT(edited->stats.new_bytes, 3u * 256 * 1024);
}

TEST_F(SnapshotTest, ListingAndLookupFindTheSameChunks) {
  testing::WriteFileOrDie(src_ + "/a.bin", testing::RandomData(1 << 20, 4));
  testing::WriteFileOrDie(src_ + "/b.txt", "small");
  testing::WriteFileOrDie(src_ + "/c.txt", "small");  // same chunk as b.txt
  int round = 0;
  for (PresenceCheck mode : {PresenceCheck::kList, PresenceCheck::kLookup, PresenceCheck::kAuto}) {
    SCOPED_TRACE(++round);
    ChunkStore store(core::Env::Default(), dir_.Sub("store" + std::to_string(round)), 1);
    ASSERT_TRUE(store.Create().ok());
    SnapshotOptions opts;
    opts.presence = mode;
    auto first = Snapshot(core::Env::Default(), src_, &store, opts);
    ASSERT_TRUE(first.ok()) << first.status().ToString();
    EXPECT_GE(first->stats.new_chunks, 2u);
    auto again = Snapshot(core::Env::Default(), src_, &store, opts);
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(again->stats.new_chunks, 0u);
    // A chunk that went missing from the store is stored again, whichever way the
    // snapshot learns what is present.
    ASSERT_TRUE(store.Remove(core::Sha256::Hash("small")).ok());
    auto repaired = Snapshot(core::Env::Default(), src_, &store, opts);
    ASSERT_TRUE(repaired.ok());
    EXPECT_EQ(repaired->stats.new_chunks, 1u);
    EXPECT_TRUE(*store.Has(core::Sha256::Hash("small")));
  }
}

TEST_F(SnapshotTest, RejectsSpecialFilesNamingThem) {
  testing::WriteFileOrDie(src_ + "/ok.txt", "x");
  ASSERT_EQ(::mkfifo((src_ + "/pipe").c_str(), 0644), 0);
  auto r = Run();
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsInvalidArgument());
  EXPECT_NE(r.status().message().find("pipe: is a FIFO"), std::string::npos)
      << r.status().message();
  ::unlink((src_ + "/pipe").c_str());

  int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sock = src_ + "/sock";
  ASSERT_LT(sock.size(), sizeof(addr.sun_path));
  std::strcpy(addr.sun_path, sock.c_str());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  r = Run();
  ::close(fd);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("sock: is a socket"), std::string::npos);
  EXPECT_EQ(StoredChunks(), 0u);
}

TEST_F(SnapshotTest, RejectsEscapingSymlinkBeforeReading) {
  testing::WriteFileOrDie(src_ + "/data", testing::RandomData(1 << 20, 4));
  ASSERT_EQ(::symlink("../../etc/passwd", (src_ + "/evil").c_str()), 0);
  auto r = Run();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("evil"), std::string::npos);
  EXPECT_NE(r.status().message().find("escapes"), std::string::npos);
  EXPECT_EQ(StoredChunks(), 0u);
}

TEST_F(SnapshotTest, UnreadableFileNamesPathAndCause) {
  testing::WriteFileOrDie(src_ + "/secret", "x", 0000);
  testing::WriteFileOrDie(src_ + "/public", "y", 0644);
  // Root reads everything, so the disk seam plays the unreadable file.
  testing::FaultyEnv env(core::Env::Default());
  env.deny_read = "/secret";
  auto r = Snapshot(&env, src_, &store_, {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsPermissionDenied());
  EXPECT_NE(r.status().message().find("secret: cannot be read"), std::string::npos);
}

TEST_F(SnapshotTest, FileVanishingMidSnapshotIsNamed) {
  // Many files so the worker is still busy when the file disappears.
  for (int i = 0; i < 50; ++i) {
    testing::WriteFileOrDie(src_ + "/f" + std::to_string(i), testing::RandomData(200000, i));
  }
  std::atomic<std::uint64_t> progress{0};
  SnapshotOptions opts;
  opts.threads = 1;
  opts.progress_bytes = &progress;
  std::thread remover([&] {
    while (progress.load() == 0) std::this_thread::yield();
    ::unlink((src_ + "/f9").c_str());  // sorted largest-first; all equal, so late enough
  });
  auto r = Run(opts);
  remover.join();
  if (r.ok()) GTEST_SKIP() << "the file was read before it was removed";
  EXPECT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("f9: vanished"), std::string::npos) << r.status().message();
  EXPECT_EQ(StoredChunks(), 0u);
}

// DESIGN §1 (004, source in use): a file that keeps changing is retried, then the
// snapshot fails naming it; no chunk of the attempt is left in the store.
TEST_F(SnapshotTest, WriterAppendingDuringSnapshotFailsNamingTheFile) {
  testing::WriteFileOrDie(src_ + "/stable.bin", testing::RandomData(1 << 20, 5));
  std::string log = src_ + "/app.log";
  testing::WriteFileOrDie(log, testing::RandomData(2 << 20, 6));
  core::ManualClock clock(core::Clock::Real()->Now());  // the backoff between reads takes no time
  SnapshotOptions opts;
  opts.max_attempts = 4;
  opts.first_backoff = std::chrono::milliseconds(20);
  opts.clock = &clock;
  testing::FaultyEnv writer(core::Env::Default());  // appends whenever the file is read
  writer.append_when_read = "app.log";
  writer.append_when_read_data = std::string(4096, 'x');
  auto r = Run(opts, &writer);
  EXPECT_EQ(writer.appends.load(), 4) << "one append per attempt";
  ASSERT_FALSE(r.ok()) << "a snapshot of a file being appended to succeeded";
  EXPECT_TRUE(r.status().IsIOError()) << r.status().ToString();
  EXPECT_NE(r.status().message().find("app.log: file changed while being read"), std::string::npos)
      << r.status().message();
  EXPECT_NE(r.status().message().find("4 attempts"), std::string::npos) << r.status().message();
  EXPECT_EQ(StoredChunks(), 0u);

  // Once the writer stopped, the same snapshot succeeds and its hashes match.
  auto ok = Run(opts);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  const Entry* e = Find(*ok, "app.log");
  EXPECT_EQ(e->sha256, core::Sha256::Hash(testing::ReadFileOrDie(log)));
}

TEST_F(SnapshotTest, MissingSourceAndNonDirectory) {
  auto r = Run();
  EXPECT_TRUE(r.status().IsNotFound()) << r.status().ToString();
  testing::WriteFileOrDie(src_, "file");
  EXPECT_TRUE(Run().status().IsInvalidArgument());
}

TEST_F(SnapshotTest, BadFileNameIsRejected) {
  testing::WriteFileOrDie(src_ + "/bad\nname", "x");
  auto r = Run();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("control character"), std::string::npos);
}

TEST_F(SnapshotTest, FullDiskFailsWithNothingStored) {
  testing::FaultyEnv env(core::Env::Default());
  for (int i = 0; i < 20; ++i) {
    testing::WriteFileOrDie(src_ + "/f" + std::to_string(i), testing::RandomData(100000, 100 + i));
  }
  ChunkStore store(&env, store_.root(), 1);
  env.write_budget = 500000;
  auto r = Snapshot(&env, src_, &store, {});
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsIOError()) << r.status().ToString();
  EXPECT_EQ(StoredChunks(), 0u);
  // No temp files either.
  std::size_t temps = 0;
  for (auto& sub : *core::Env::Default()->ListDir(store_.root())) {
    temps += core::Env::Default()->ListDir(core::JoinPath(store_.root(), sub.name))->size();
  }
  EXPECT_EQ(temps, 0u);
}

TEST_F(SnapshotTest, FailedBackgroundSyncFailsTheSnapshotWithNothingStored) {
  // A writeback error reported to a background sync is not reported again to the
  // commit's sync: the snapshot must fail on it.
  testing::FaultyEnv env(core::Env::Default());
  for (int i = 0; i < 8; ++i) {
    testing::WriteFileOrDie(src_ + "/f" + std::to_string(i), testing::RandomData(100000, 200 + i));
  }
  ChunkStore store(&env, store_.root(), 1);
  SnapshotOptions opts;
  opts.background_sync_bytes = 1;  // after every chunk
  env.fail_sync = true;
  auto r = Snapshot(&env, src_, &store, opts);
  env.fail_sync = false;
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(r.status().IsIOError()) << r.status().ToString();
  EXPECT_EQ(StoredChunks(), 0u);
  // And with syncs that work, the same options store everything.
  auto ok = Snapshot(&env, src_, &store, opts);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(StoredChunks(), ok->stats.new_chunks);
}

}  // namespace
}  // namespace depot::store

namespace depot::store {
namespace {

class CollectingSink : public ChunkSink {
 public:
  core::Status Put(const ChunkId& id, std::uint32_t size, std::string_view frame) override {
    std::lock_guard<std::mutex> lock(mu);
    auto data = DecompressFrame(frame, size);
    if (!data.ok()) return data.status();
    if (core::Sha256::Hash(*data) != id)
      return core::Status::Corruption("sink got a frame that is not its id");
    EXPECT_TRUE(chunks.emplace(id, size).second) << "each distinct chunk once";
    return core::Status::Ok();
  }
  std::mutex mu;
  std::map<ChunkId, std::uint32_t> chunks;
};

TEST(SnapshotSinkTest, EveryDistinctChunkGoesToTheSinkAndNothingIsWritten) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.Sub("src/a.bin"), testing::RandomData(900000, 1));
  testing::WriteFileOrDie(dir.Sub("src/b.bin"), testing::RandomData(900000, 1));  // same content
  testing::WriteFileOrDie(dir.Sub("src/c.txt"), "small");
  CollectingSink sink;
  SnapshotOptions opts;
  opts.sink = &sink;
  auto r = Snapshot(core::Env::Default(), dir.Sub("src"), nullptr, opts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::set<ChunkId> referenced;
  for (const auto& e : r->entries) {
    for (const auto& c : e.chunks) referenced.insert(c.id);
  }
  EXPECT_EQ(referenced.size(), sink.chunks.size());
  for (const auto& id : referenced) EXPECT_TRUE(sink.chunks.count(id));
  EXPECT_EQ(r->stats.new_chunks, sink.chunks.size());
}

class FailingSink : public ChunkSink {
 public:
  core::Status Put(const ChunkId&, std::uint32_t, std::string_view) override {
    return core::Status::Unavailable("site went away");
  }
};

TEST(SnapshotSinkTest, ASinkErrorFailsTheSnapshot) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.Sub("src/a.bin"), testing::RandomData(100000, 2));
  FailingSink sink;
  SnapshotOptions opts;
  opts.sink = &sink;
  auto r = Snapshot(core::Env::Default(), dir.Sub("src"), nullptr, opts);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("site went away"), std::string::npos);
}

}  // namespace
}  // namespace depot::store
