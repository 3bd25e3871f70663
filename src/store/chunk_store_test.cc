#include "store/chunk_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "core/parallel.h"
#include "core/testing.h"
#include "store/chunker.h"
#include "store/compress.h"

namespace depot::store {
namespace {

using core::Status;

class ChunkStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(store_.Create().ok()); }
  testing::TempDir dir_;
  ChunkStore store_{core::Env::Default(), dir_.Sub("chunks"), 3};
};

TEST_F(ChunkStoreTest, SweepRemovesAbandonedTempsAndReportsEveryChunkInThePass) {
  std::string a = "chunk a", b = "chunk b";
  ChunkId ia = core::Sha256::Hash(a), ib = core::Sha256::Hash(b);
  ASSERT_TRUE(store_.Put(ia, a).ok());
  ASSERT_TRUE(store_.Put(ib, b).ok());
  std::string dead =
      store_.root() + "/" + core::DigestHex(ia).substr(0, 2) + "/.x.tmp.999999999-0123456789abcdef";
  testing::WriteFileOrDie(dead, "left by a crashed writer");
  ChunkIdSet seen;
  auto swept = store_.SweepAbandonedTemps([&](const ChunkId& id) { seen.insert(id); });
  ASSERT_TRUE(swept.ok()) << swept.status().ToString();
  EXPECT_EQ(*swept, 1u);
  EXPECT_FALSE(*core::Env::Default()->Exists(dead));
  EXPECT_EQ(seen, (ChunkIdSet{ia, ib}));
}

TEST_F(ChunkStoreTest, PutGetHasRemove) {
  std::string data = testing::RandomData(70000, 1);
  ChunkId id = core::Sha256::Hash(data);
  EXPECT_FALSE(*store_.Has(id));
  ASSERT_TRUE(store_.Put(id, data).ok());
  EXPECT_TRUE(*store_.Has(id));
  EXPECT_EQ(*store_.Get(id, data.size(), true), data);
  EXPECT_EQ(*store_.Get(id, UINT64_MAX, true), data);
  // Layout: chunks/<2 hex>/<64 hex>, one zstd frame.
  std::string hex = core::DigestHex(id);
  std::string frame = testing::ReadFileOrDie(dir_.Sub("chunks/" + hex.substr(0, 2) + "/" + hex));
  EXPECT_EQ(*DecompressFrame(frame, data.size()), data);
  // Idempotent.
  ASSERT_TRUE(store_.Put(id, data).ok());
  ASSERT_TRUE(store_.Remove(id).ok());
  EXPECT_TRUE(store_.Get(id, data.size(), true).status().IsNotFound());
  EXPECT_TRUE(store_.Remove(id).IsNotFound());
}

TEST_F(ChunkStoreTest, PutRejectsWrongId) {
  ChunkId id = core::Sha256::Hash("something else");
  Status s = store_.Put(id, "data");
  EXPECT_TRUE(s.IsCorruption()) << s.ToString();
  EXPECT_FALSE(*store_.Has(id));
}

TEST_F(ChunkStoreTest, PutFrameVerifies) {
  std::string data = testing::RandomData(30000, 2);
  ChunkId id = core::Sha256::Hash(data);
  std::string frame = *CompressFrame(data);
  EXPECT_TRUE(store_.PutFrame(id, data.size() + 1, frame).status().IsCorruption());
  std::string other = *CompressFrame(testing::RandomData(30000, 3));
  EXPECT_TRUE(store_.PutFrame(id, data.size(), other).status().IsCorruption());
  EXPECT_FALSE(*store_.Has(id));
  EXPECT_EQ(*store_.PutFrame(id, data.size(), frame), data);
  EXPECT_TRUE(*store_.Has(id));
}

TEST_F(ChunkStoreTest, DetectsCorruptTruncatedAndOversizedChunks) {
  std::string data = testing::RandomData(50000, 4);
  ChunkId id = core::Sha256::Hash(data);
  ASSERT_TRUE(store_.Put(id, data).ok());
  std::string path = store_.PathOf(id);
  std::string good = testing::ReadFileOrDie(path);

  // Corrupt: same length, one byte flipped in the payload.
  std::string bad = good;
  bad[bad.size() / 2] ^= 0x40;
  testing::WriteFileOrDie(path, bad);
  EXPECT_TRUE(store_.Get(id, data.size(), true).status().IsCorruption());

  // A frame of other, valid content under this id: only the hash check catches it.
  testing::WriteFileOrDie(path, *CompressFrame(testing::RandomData(50000, 5)));
  EXPECT_TRUE(store_.Get(id, data.size(), true).status().IsCorruption());
  EXPECT_TRUE(store_.Get(id, data.size(), false).ok());

  // Truncated.
  testing::WriteFileOrDie(path, good.substr(0, good.size() - 100));
  EXPECT_TRUE(store_.Get(id, data.size(), true).status().IsCorruption());

  // Oversized: longer than any chunk frame may be.
  testing::WriteFileOrDie(path, std::string(MaxFrameSize(kMaxChunkSizeLimit) + 1, 'x'));
  EXPECT_TRUE(store_.Get(id, data.size(), true).status().IsCorruption());
}

TEST_F(ChunkStoreTest, ConcurrentWritersOfTheSameChunk) {
  std::string data = testing::RandomData(100000, 6);
  ChunkId id = core::Sha256::Hash(data);
  core::RunParallel(8, [&](unsigned) {
    for (int i = 0; i < 20; ++i) {
      EXPECT_TRUE(store_.Put(id, data).ok());
      auto got = store_.Get(id, data.size(), true);
      if (got.ok()) {
        EXPECT_EQ(*got, data);
      }
      EXPECT_TRUE(got.ok() || got.status().IsNotFound());
    }
  });
  EXPECT_EQ(*store_.Get(id, data.size(), true), data);
  // No temp files left behind.
  std::string hex = core::DigestHex(id);
  auto entries = core::Env::Default()->ListDir(dir_.Sub("chunks/" + hex.substr(0, 2)));
  ASSERT_EQ(entries->size(), 1u);
}

TEST_F(ChunkStoreTest, BatchedPutsAppearOnCommit) {
  core::AtomicBatch batch(core::Env::Default(), store_.root());
  std::string data = testing::RandomData(1000, 7);
  ChunkId id = core::Sha256::Hash(data);
  ASSERT_TRUE(store_.Put(id, data, &batch).ok());
  EXPECT_FALSE(*store_.Has(id));
  ASSERT_TRUE(batch.Commit().ok());
  EXPECT_TRUE(*store_.Has(id));
}

TEST_F(ChunkStoreTest, FullDiskLeavesNoPartialChunk) {
  testing::FaultyEnv env(core::Env::Default());
  ChunkStore store(&env, store_.root(), 3);
  env.write_budget = 100;
  std::string data = testing::RandomData(50000, 8);
  ChunkId id = core::Sha256::Hash(data);
  EXPECT_TRUE(store.Put(id, data).IsIOError());
  EXPECT_FALSE(*store.Has(id));
  std::size_t files = 0;
  ASSERT_TRUE(store.ForEach([&](const ChunkId&, std::uint64_t) { return ++files, true; }).ok());
  EXPECT_EQ(files, 0u);
}

TEST_F(ChunkStoreTest, IterateAndCollectGarbage) {
  ChunkIdSet live;
  std::vector<ChunkId> all;
  for (int i = 0; i < 20; ++i) {
    std::string data = "chunk " + std::to_string(i);
    ChunkId id = core::Sha256::Hash(data);
    ASSERT_TRUE(store_.Put(id, data).ok());
    all.push_back(id);
    if (i % 2 == 0) live.insert(id);
  }
  // A temp file from a crashed writer, and a stray file.
  testing::WriteFileOrDie(dir_.Sub("chunks/00/.abc.tmp.1234"), "partial");
  // A live writer's temp file (this process) is left alone.
  std::string live_temp = dir_.Sub("chunks/01/.def.tmp." + std::to_string(::getpid()) + "-00ff");
  testing::WriteFileOrDie(live_temp, "in progress");
  testing::WriteFileOrDie(dir_.Sub("chunks/00/README"), "not a chunk");
  std::size_t n = 0;
  std::vector<std::string> strays;
  ASSERT_TRUE(store_
                  .ForEach(
                      [&](const ChunkId&, std::uint64_t size) {
                        EXPECT_GT(size, 0u);
                        ++n;
                        return true;
                      },
                      [&](const std::string& p) { strays.push_back(p); })
                  .ok());
  EXPECT_EQ(n, 20u);
  EXPECT_EQ(strays.size(), 1u);
  auto stats = store_.CollectGarbage(live);
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->kept, 10u);
  EXPECT_EQ(stats->removed, 10u);
  EXPECT_EQ(stats->temp_removed, 1u);
  for (int i = 0; i < 20; ++i) EXPECT_EQ(*store_.Has(all[i]), i % 2 == 0);
  EXPECT_TRUE(*core::Env::Default()->Exists(dir_.Sub("chunks/00/README")));
  EXPECT_TRUE(*core::Env::Default()->Exists(live_temp));
}

TEST_F(ChunkStoreTest, ListIdsSeesChunksOnlyAndEstimateGrows) {
  auto empty = store_.EstimateEntries();
  ASSERT_TRUE(empty.ok());
  ChunkIdSet want;
  for (int i = 0; i < 300; ++i) {
    std::string data = "listed chunk " + std::to_string(i);
    ChunkId id = core::Sha256::Hash(data);
    ASSERT_TRUE(store_.Put(id, data).ok());
    want.insert(id);
  }
  // Temp files and strays are not chunks.
  testing::WriteFileOrDie(dir_.Sub("chunks/00/.abc.tmp.1234-00"), "partial");
  testing::WriteFileOrDie(dir_.Sub("chunks/00/README"), "not a chunk");
  std::string misplaced = core::DigestHex(core::Sha256::Hash("misplaced"));
  testing::WriteFileOrDie(
      dir_.Sub("chunks/" + std::string(misplaced[0] == 'f' ? "00" : "ff") + "/" + misplaced),
      "wrong directory");
  ChunkIdSet got;
  ASSERT_TRUE(store_.ListIds(&got).ok());
  EXPECT_EQ(got, want);
  // The estimate follows the directories' growth; it is rough, not a count.
  auto full = store_.EstimateEntries();
  ASSERT_TRUE(full.ok());
  EXPECT_GE(*full, *empty);
}

}  // namespace
}  // namespace depot::store
