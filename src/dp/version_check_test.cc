#include "dp/version_check.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/sha256.h"
#include "core/testing.h"
#include "store/compress.h"

namespace depot::dp {
namespace {

class VersionCheckTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(store_.Create().ok()); }

  store::ChunkRef Put(const std::string& data) {
    store::ChunkId id = core::Sha256::Hash(data);
    auto frame = store::CompressFrame(data, 1);
    EXPECT_TRUE(frame.ok());
    EXPECT_TRUE(store_.PutFrame(id, static_cast<std::uint32_t>(data.size()), *frame, nullptr).ok());
    return {id, static_cast<std::uint32_t>(data.size())};
  }
  void Damage(const store::ChunkId& id) {
    std::string path = dir_.Sub("chunks") + "/" + store::ChunkRelPath(id);
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(std::filesystem::file_size(path) / 2));
    f.put('\xff');
  }
  bool Has(const store::ChunkId& id) { return *store_.Has(id); }

  depot::testing::TempDir dir_;
  store::ChunkStore store_{core::Env::Default(), dir_.Sub("chunks"), 1};
};

TEST_F(VersionCheckTest, DamagedChunksAreRemovedMissingOnesCountedGoodOnesKept) {
  auto a = Put(depot::testing::RandomData(100000, 1));
  auto b = Put(depot::testing::RandomData(100000, 2));
  auto c = Put(depot::testing::RandomData(100000, 3));
  store::ChunkRef gone{core::Sha256::Hash("never stored"), 12};
  Damage(b.id);
  VersionCheck r = CheckVersionChunks(&store_, {a, b, c, gone}, {}, nullptr);
  EXPECT_EQ(r.checked, 4u);
  EXPECT_EQ(r.damaged, 1u);
  EXPECT_EQ(r.missing, 1u);
  ASSERT_EQ(r.damaged_objects.size(), 1u);
  EXPECT_EQ(r.damaged_objects[0].rfind("chunks/" + store::ChunkRelPath(b.id) + ": ", 0), 0u)
      << r.damaged_objects[0];
  EXPECT_TRUE(Has(a.id));
  EXPECT_FALSE(Has(b.id)) << "a damaged chunk is never served again";
  EXPECT_TRUE(Has(c.id));
}

TEST_F(VersionCheckTest, ReportedChunksComeFirstAndOnlyThoseOfTheVersion) {
  auto a = Put(depot::testing::RandomData(50000, 1));
  auto b = Put(depot::testing::RandomData(50000, 2));
  auto other = Put(depot::testing::RandomData(50000, 3));  // another version's
  Damage(b.id);
  Damage(other.id);
  // Stop after the first check: it must have been the reported chunk.
  int calls = 0;
  VersionCheck r =
      CheckVersionChunks(&store_, {a, b}, {other.id, b.id}, [&] { return calls++ >= 1; });
  EXPECT_EQ(r.checked, 1u);
  EXPECT_EQ(r.damaged, 1u);
  EXPECT_FALSE(Has(b.id));
  EXPECT_TRUE(Has(other.id)) << "a report cannot make the DP drop chunks of other versions";
  EXPECT_TRUE(Has(a.id));
}

TEST_F(VersionCheckTest, CheckChunkSaysWhy) {
  auto a = Put(depot::testing::RandomData(70000, 4));
  std::string why;
  EXPECT_EQ(CheckChunk(&store_, a.id, &why), ChunkHealth::kGood);
  Damage(a.id);
  EXPECT_EQ(CheckChunk(&store_, a.id, &why), ChunkHealth::kDamaged);
  EXPECT_FALSE(why.empty());
  EXPECT_EQ(CheckChunk(&store_, a.id, &why), ChunkHealth::kMissing);
}

}  // namespace
}  // namespace depot::dp
