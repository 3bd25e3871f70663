#include "store/chunk_batch.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "core/sha256.h"

namespace depot::store {
namespace {

std::vector<ChunkRecord> ReadAll(std::string_view batch, core::Status* s) {
  std::vector<ChunkRecord> out;
  *s = ForEachChunkRecord(batch, [&](const ChunkRecord& r) {
    out.push_back(r);
    return core::Status::Ok();
  });
  return out;
}

TEST(ChunkBatchTest, RecordsRoundTripInOrder) {
  std::string batch;
  AppendChunkRecord(&batch, core::Sha256::Hash("a"), 1, "frame-a");
  AppendChunkRecord(&batch, core::Sha256::Hash("b"), 70000, std::string(300, 'x'));
  AppendChunkRecord(&batch, core::Sha256::Hash("c"), 0, "");
  EXPECT_EQ(batch.size(), 3 * kChunkRecordHeader + 7 + 300);
  core::Status s;
  auto records = ReadAll(batch, &s);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].id, core::Sha256::Hash("a"));
  EXPECT_EQ(records[0].frame, "frame-a");
  EXPECT_EQ(records[1].size, 70000u);
  EXPECT_EQ(records[1].frame.size(), 300u);
  EXPECT_TRUE(records[2].frame.empty());
  EXPECT_TRUE(ReadAll("", &s).empty());
  EXPECT_TRUE(s.ok());
}

TEST(ChunkBatchTest, ATruncatedRecordIsNamedAndNothingAfterItIsRead) {
  std::string batch;
  AppendChunkRecord(&batch, core::Sha256::Hash("a"), 1, "frame-a");
  AppendChunkRecord(&batch, core::Sha256::Hash("b"), 2, "frame-b");
  for (std::size_t cut :
       {batch.size() - 1, kChunkRecordHeader + 7 + 39, kChunkRecordHeader + 7 + 1}) {
    core::Status s;
    auto records = ReadAll(std::string_view(batch).substr(0, cut), &s);
    EXPECT_TRUE(s.IsInvalidArgument()) << cut;
    EXPECT_NE(s.message().find("record 1 is truncated"), std::string::npos) << s.message();
    EXPECT_EQ(records.size(), 1u);
  }
}

TEST(ChunkBatchTest, TheCallersErrorStopsTheWalk) {
  std::string batch;
  for (int i = 0; i < 5; ++i)
    AppendChunkRecord(&batch, core::Sha256::Hash(std::to_string(i)), 1, "f");
  int seen = 0;
  core::Status s = ForEachChunkRecord(batch, [&](const ChunkRecord&) {
    return ++seen == 2 ? core::Status::Corruption("bad frame") : core::Status::Ok();
  });
  EXPECT_TRUE(s.IsCorruption());
  EXPECT_EQ(seen, 2);
}

// Random bytes and random cuts of valid batches: the reader never reads out of
// bounds (ASan build) and every frame lies inside the batch.
TEST(ChunkBatchTest, ArbitraryInputIsFramedSafely) {
  std::mt19937_64 rng(20261204);
  for (int round = 0; round < 2000; ++round) {
    std::string batch;
    if (round % 2 == 0) {
      batch.resize(rng() % 200);
      for (char& c : batch) c = static_cast<char>(rng());
    } else {
      for (int i = 0; i < 3; ++i) {
        AppendChunkRecord(&batch, core::Sha256::Hash(std::to_string(rng())), 9,
                          std::string(rng() % 50, 'z'));
      }
      batch.resize(rng() % (batch.size() + 1));
      if (!batch.empty()) batch[rng() % batch.size()] = static_cast<char>(rng());
    }
    ForEachChunkRecord(batch, [&](const ChunkRecord& r) {
      EXPECT_GE(r.frame.data(), batch.data());
      EXPECT_LE(r.frame.data() + r.frame.size(), batch.data() + batch.size());
      return core::Status::Ok();
    }).IgnoreError();
  }
}

}  // namespace
}  // namespace depot::store
