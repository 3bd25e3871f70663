#include "store/assemble.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/testing.h"
#include "store/snapshot.h"

namespace depot::store {
namespace {

using core::Status;

class AssembleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(store_.Create().ok());
    testing::WriteFileOrDie(src_ + "/bin/tool", testing::RandomData(2 << 20, 1), 0755);
    testing::WriteFileOrDie(src_ + "/bin/copy", testing::ReadFileOrDie(src_ + "/bin/tool"), 0700);
    testing::WriteFileOrDie(src_ + "/etc/conf", "a=1\n", 0640);
    testing::WriteFileOrDie(src_ + "/etc/empty", "", 0644);
    ::mkdir((src_ + "/ro").c_str(), 0755);
    testing::WriteFileOrDie(src_ + "/ro/inside", "x", 0444);
    ::chmod((src_ + "/ro").c_str(), 0555);
    ::symlink("../bin/tool", (src_ + "/etc/tool").c_str());
    auto r = Snapshot(core::Env::Default(), src_, &store_, {});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    m_.package_id = "p1";
    m_.package_name = "p";
    m_.version = 1;
    m_.created = "2026-01-01T00:00:00Z";
    m_.entries = r->entries;
    ASSERT_TRUE(ValidateManifest(m_).ok());
  }

  Status PlaceAll(Assembler& a) {
    for (std::size_t i = 0; i < a.chunks().size(); ++i) {
      const auto& c = a.chunks()[i];
      DEPOT_ASSIGN_OR_RETURN(std::string data, store_.Get(c.id, c.size, true));
      DEPOT_RETURN_IF_ERROR(a.Place(i, data));
    }
    return Status::Ok();
  }

  testing::TempDir dir_;
  std::string src_ = dir_.Sub("src");
  ChunkStore store_{core::Env::Default(), dir_.Sub("chunks"), 1};
  Manifest m_;
};

TEST_F(AssembleTest, RebuildsTreeByteForByteWithModes) {
  Assembler a(core::Env::Default(), &m_, dir_.Sub(".out.staging"));
  ASSERT_TRUE(a.Prepare().ok());
  // Duplicate content (bin/copy == bin/tool) shares chunks.
  EXPECT_LT(a.chunks().size(), m_.entries[1].chunks.size() + m_.entries[2].chunks.size());
  ASSERT_TRUE(PlaceAll(a).ok());
  ASSERT_TRUE(a.Finish(2).ok());
  ASSERT_TRUE(a.CommitTo(dir_.Sub("out")).ok());
  std::string cmd = "diff -r --no-dereference '" + src_ + "' '" + dir_.Sub("out") + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  struct stat st;
  ASSERT_EQ(::stat(dir_.Sub("out/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat(dir_.Sub("out/bin/copy").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(::stat(dir_.Sub("out/ro").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0555u);
  ASSERT_EQ(::lstat(dir_.Sub("out/etc/tool").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_FALSE(*core::Env::Default()->Exists(dir_.Sub(".out.staging")));
  ::chmod(dir_.Sub("out/ro").c_str(), 0755);
  ::chmod((src_ + "/ro").c_str(), 0755);
}

TEST_F(AssembleTest, WrongBytesAreCaughtAndNothingIsCommitted) {
  Assembler a(core::Env::Default(), &m_, dir_.Sub(".out.staging"));
  ASSERT_TRUE(a.Prepare().ok());
  ASSERT_TRUE(PlaceAll(a).ok());
  // Overwrite one chunk of a multi-chunk file with same-sized wrong bytes.
  std::size_t victim = 0;
  for (std::size_t i = 0; i < a.chunks().size(); ++i) {
    if (a.chunks()[i].size > 1000) victim = i;
  }
  ASSERT_TRUE(a.Place(victim, std::string(a.chunks()[victim].size, 'z')).ok());
  Status s = a.Finish(2);
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_NE(s.message().find("bin/"), std::string::npos) << s.message();
  a.Discard();
  EXPECT_FALSE(*core::Env::Default()->Exists(dir_.Sub(".out.staging")));
  EXPECT_FALSE(*core::Env::Default()->Exists(dir_.Sub("out")));
  ::chmod((src_ + "/ro").c_str(), 0755);
}

// Orders in which a test places the chunks of the fixture's tree.
enum class Order { kForward, kReverse, kRepeatSecond };

std::vector<std::size_t> PlacementOrder(std::size_t n, Order order) {
  std::vector<std::size_t> out;
  for (std::size_t k = 0; k < n; ++k) out.push_back(order == Order::kReverse ? n - 1 - k : k);
  // The second chunk twice, before the first: the same bytes written twice at one
  // place, which only a read-back can vouch for.
  if (order == Order::kRepeatSecond) out.insert(out.begin(), {1, 1});
  return out;
}

TEST_F(AssembleTest, FilesAreHashedWhileWrittenEvenOutOfOrderElseReadBack) {
  int round = 0;
  for (Order order : {Order::kForward, Order::kReverse, Order::kRepeatSecond}) {
    SCOPED_TRACE(++round);
    std::string name = "out" + std::to_string(round);
    Assembler a(core::Env::Default(), &m_, dir_.Sub("." + name + ".staging"));
    ASSERT_TRUE(a.Prepare().ok());
    for (std::size_t i : PlacementOrder(a.chunks().size(), order)) {
      const auto& c = a.chunks()[i];
      ASSERT_TRUE(a.Place(i, *store_.Get(c.id, c.size, true)).ok());
    }
    ASSERT_TRUE(a.Finish(2).ok());
    // bin/tool and bin/copy (same bytes) are the multi-chunk files. Reversed, every
    // chunk but the first comes early and waits in memory.
    EXPECT_EQ(a.early_bytes(), 0u);  // nothing left waiting, whatever the order
    const bool read_back = order == Order::kRepeatSecond;
    EXPECT_EQ(a.files_hashed_in_order(), read_back ? 0u : 2u);
    EXPECT_EQ(a.files_read_back(), read_back ? 2u : 0u);
    ASSERT_TRUE(a.CommitTo(dir_.Sub(name)).ok());
    std::string cmd = "cmp -s '" + src_ + "/bin/tool' '" + dir_.Sub(name) + "/bin/copy'";
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    ::chmod(dir_.Sub(name + "/ro").c_str(), 0755);
  }
  ::chmod((src_ + "/ro").c_str(), 0755);
}

TEST_F(AssembleTest, EarlyChunkPlacedTwiceReleasesItsMemory) {
  Assembler a(core::Env::Default(), &m_, dir_.Sub(".twice.staging"));
  ASSERT_TRUE(a.Prepare().ok());
  ASSERT_GE(a.chunks().size(), 3u);
  const auto& c = a.chunks()[2];
  std::string data = *store_.Get(c.id, c.size, true);
  ASSERT_TRUE(a.Place(2, data).ok());  // early: waits in memory for chunks 0 and 1
  EXPECT_GT(a.early_bytes(), 0u);
  ASSERT_TRUE(a.Place(2, data).ok());  // the same place again: read back instead
  EXPECT_EQ(a.early_bytes(), 0u);
  for (std::size_t i = 0; i < a.chunks().size(); ++i) {
    if (i == 2) continue;
    const auto& ci = a.chunks()[i];
    ASSERT_TRUE(a.Place(i, *store_.Get(ci.id, ci.size, true)).ok());
  }
  EXPECT_EQ(a.early_bytes(), 0u);
  ASSERT_TRUE(a.Finish(2).ok());
  EXPECT_EQ(a.files_read_back(), 2u);
  ::chmod((src_ + "/ro").c_str(), 0755);
}

TEST_F(AssembleTest, ManifestHashMismatchIsCaughtWhileWrittenOrOnReadBack) {
  // The chunks are right but the manifest's file hash is not: Place reports it when
  // it completes the file, Finish when it has to read the file back.
  Manifest bad = m_;
  for (auto& e : bad.entries) {
    if (e.path == "bin/tool") e.sha256 = core::Sha256::Hash("something else");
  }
  int round = 0;
  for (Order order : {Order::kForward, Order::kReverse, Order::kRepeatSecond}) {
    SCOPED_TRACE(++round);
    Assembler a(core::Env::Default(), &bad, dir_.Sub(".bad" + std::to_string(round)));
    ASSERT_TRUE(a.Prepare().ok());
    Status placed;
    for (std::size_t i : PlacementOrder(a.chunks().size(), order)) {
      const auto& c = a.chunks()[i];
      Status s = a.Place(i, *store_.Get(c.id, c.size, true));
      if (placed.ok()) placed = s;
    }
    Status finished = a.Finish(2);
    Status s = order == Order::kRepeatSecond ? finished : placed;
    EXPECT_TRUE(s.IsCorruption()) << s.ToString();
    EXPECT_NE(s.message().find("bin/tool"), std::string::npos) << s.message();
    EXPECT_TRUE(finished.IsCorruption()) << finished.ToString();  // and it stays refused
  }
  ::chmod((src_ + "/ro").c_str(), 0755);
}

TEST_F(AssembleTest, MissingChunkAndWrongSizeAreErrors) {
  Assembler a(core::Env::Default(), &m_, dir_.Sub(".staging"));
  ASSERT_TRUE(a.Prepare().ok());
  EXPECT_TRUE(a.Place(0, "short").IsCorruption());
  EXPECT_TRUE(a.Finish(1).IsCorruption());
  ::chmod((src_ + "/ro").c_str(), 0755);
}

TEST_F(AssembleTest, ExistingDestinationIsRefused) {
  Assembler a(core::Env::Default(), &m_, dir_.Sub(".staging"));
  ASSERT_TRUE(a.Prepare().ok());
  ASSERT_TRUE(PlaceAll(a).ok());
  ASSERT_TRUE(a.Finish(1).ok());
  ASSERT_TRUE(core::Env::Default()->CreateDir(dir_.Sub("taken")).ok());
  EXPECT_TRUE(a.CommitTo(dir_.Sub("taken")).IsInvalidArgument());
  ::chmod((src_ + "/ro").c_str(), 0755);
}

}  // namespace
}  // namespace depot::store
