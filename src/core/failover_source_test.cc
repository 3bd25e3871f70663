// FailoverSource over in-memory sources that can be taken down (fault injection:
// "down" answers Unavailable, as a site process that is gone does).
#include "core/failover_source.h"

#include <gtest/gtest.h>

#include <map>

namespace depot::core {
namespace {

class MemorySource final : public RepoSource {
 public:
  explicit MemorySource(std::string name) : name_(std::move(name)) {}
  std::string Describe() const override { return name_; }
  Result<std::string> Fetch(const std::string& path, std::uint64_t max_bytes) override {
    ++calls;
    if (down) return Status::Unavailable(name_ + " is down");
    if (down_for == path) return Status::Unavailable(name_ + " lost the connection for " + path);
    auto it = objects.find(path);
    if (it == objects.end()) return Status::NotFound(path);
    if (it->second.size() > max_bytes) return Status::Corruption("too long");
    return it->second;
  }
  std::map<std::string, std::string> objects;
  bool down = false;
  std::string down_for;  // one path that fails with Unavailable
  int calls = 0;

 private:
  std::string name_;
};

class FailoverSourceTest : public ::testing::Test {
 protected:
  FailoverSourceTest() {
    auto a = std::make_unique<MemorySource>("a");
    auto b = std::make_unique<MemorySource>("b");
    a_ = a.get();
    b_ = b.get();
    for (MemorySource* s : {a_, b_}) {
      s->objects = {{"x", "xx"}, {"y", "yy"}, {"z", "zz"}};
    }
    std::vector<std::unique_ptr<RepoSource>> v;
    v.push_back(std::move(a));
    v.push_back(std::move(b));
    source_ = std::make_unique<FailoverSource>(std::move(v), &clock_);
  }
  ManualClock clock_{std::chrono::system_clock::now()};
  MemorySource* a_;
  MemorySource* b_;
  std::unique_ptr<FailoverSource> source_;
};

TEST_F(FailoverSourceTest, AnUnreachableSourceHandsOverAndTheNextStaysCurrent) {
  EXPECT_EQ(*source_->Fetch("x", 10), "xx");
  EXPECT_EQ(source_->Describe(), "a");
  a_->down = true;
  EXPECT_EQ(*source_->Fetch("y", 10), "yy");
  EXPECT_EQ(source_->Describe(), "b");
  const int a_calls = a_->calls;
  EXPECT_EQ(*source_->Fetch("z", 10), "zz");
  EXPECT_EQ(a_->calls, a_calls) << "the failed source is not asked again while b works";
}

TEST_F(FailoverSourceTest, AnswersThatAreNotUnavailabilityAreReturnedAsTheyAre) {
  EXPECT_TRUE(source_->Fetch("missing", 10).status().IsNotFound());
  EXPECT_TRUE(source_->Fetch("x", 1).status().IsCorruption());
  EXPECT_EQ(source_->Describe(), "a");
  EXPECT_EQ(b_->calls, 0);
}

TEST_F(FailoverSourceTest, WhenEverySourceIsDownTheErrorIsReturned) {
  a_->down = b_->down = true;
  EXPECT_TRUE(source_->Fetch("x", 10).status().IsUnavailable());
  // Both back off now: the next fetch tries the current one only.
  a_->down = b_->down = false;
  EXPECT_EQ(*source_->Fetch("x", 10), "xx");
}

TEST_F(FailoverSourceTest, AFailedSourceIsTriedAgainOnceItsBackoffIsOver) {
  a_->down = true;
  EXPECT_EQ(*source_->Fetch("x", 10), "xx");  // from b
  a_->down = false;
  b_->down = true;
  // a is still backing off: b's failure has nowhere to go.
  EXPECT_TRUE(source_->Fetch("x", 10).status().IsUnavailable());
  clock_.Advance(std::chrono::minutes(2));
  EXPECT_EQ(*source_->Fetch("x", 10), "xx");
  EXPECT_EQ(source_->Describe(), "a");
}

TEST_F(FailoverSourceTest, AManyFetchDeliversEachRequestOnceWithTheFailedOnesFromTheNext) {
  a_->down_for = "y";
  std::vector<FetchRequest> reqs = {{"x", 10}, {"y", 10}, {"z", 10}, {"missing", 10}};
  std::map<std::size_t, std::string> got;
  Status s = source_->FetchMany(reqs, 2, [&](std::size_t i, Result<std::string> r) {
    EXPECT_EQ(got.count(i), 0u) << "request " << i << " delivered twice";
    got[i] = r.ok() ? *r : std::string(CodeName(r.status().code()));
    return true;
  });
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(got,
            (std::map<std::size_t, std::string>{
                {0, "xx"}, {1, "yy"}, {2, "zz"}, {3, std::string(CodeName(Code::kNotFound))}}));
  EXPECT_EQ(source_->Describe(), "b");
}

}  // namespace
}  // namespace depot::core
