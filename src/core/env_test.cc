#include "core/env.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>

#include "core/testing.h"

namespace depot::core {
namespace {

TEST(EnvTest, WriteFileAtomicReplacesAndLeavesNoTemp) {
  testing::TempDir dir;
  Env* env = Env::Default();
  std::string p = dir.Sub("f.json");
  ASSERT_TRUE(env->WriteFileAtomic(p, "one", 0600).ok());
  ASSERT_TRUE(env->WriteFileAtomic(p, "two!", 0640).ok());
  EXPECT_EQ(*env->ReadFile(p, 100), "two!");
  EXPECT_EQ(env->Stat(p)->mode, 0640u);
  auto entries = env->ListDir(dir.path());
  ASSERT_TRUE(entries.ok());
  ASSERT_EQ(entries->size(), 1u);
  EXPECT_EQ((*entries)[0].name, "f.json");
}

TEST(EnvTest, ReadFileEnforcesLimit) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.Sub("big"), std::string(1000, 'x'));
  Env* env = Env::Default();
  EXPECT_TRUE(env->ReadFile(dir.Sub("big"), 1000).ok());
  auto r = env->ReadFile(dir.Sub("big"), 999);
  EXPECT_TRUE(r.status().IsInvalidArgument()) << r.status().ToString();
  EXPECT_TRUE(env->ReadFile(dir.Sub("absent"), 10).status().IsNotFound());
  EXPECT_TRUE(env->ReadFile(dir.path(), 10).status().IsInvalidArgument());
}

TEST(EnvTest, FaultyEnvFailsWritesWhenFull) {
  testing::TempDir dir;
  testing::FaultyEnv env(Env::Default());
  env.write_budget = 10;
  Status s = env.WriteFileAtomic(dir.Sub("x"), std::string(11, 'a'));
  EXPECT_TRUE(s.IsIOError()) << s.ToString();
  // Nothing was left behind: neither the final name nor the temp file.
  EXPECT_TRUE(env.ListDir(dir.path())->empty());
  env.write_budget = -1;
  EXPECT_TRUE(env.WriteFileAtomic(dir.Sub("x"), std::string(11, 'a')).ok());
}

TEST(EnvTest, WriteFileIfChangedWritesNothingWhenTheFileHoldsTheData) {
  testing::TempDir dir;
  testing::FaultyEnv env(Env::Default());
  ASSERT_TRUE(env.WriteFileIfChanged(dir.Sub("c.toml"), "a = 1\n", 0600).ok());
  env.write_budget = 0;  // the disk is full
  EXPECT_TRUE(env.WriteFileIfChanged(dir.Sub("c.toml"), "a = 1\n", 0600).ok());
  EXPECT_TRUE(env.WriteFileIfChanged(dir.Sub("c.toml"), "a = 2\n", 0600).IsIOError());
  EXPECT_TRUE(env.WriteFileIfChanged(dir.Sub("c.toml"), "a = 1\nb = 2\n", 0600).IsIOError());
  env.write_budget = -1;
  ASSERT_TRUE(env.WriteFileIfChanged(dir.Sub("c.toml"), "a = 2\n", 0600).ok());
  EXPECT_EQ(*env.ReadFile(dir.Sub("c.toml"), 100), "a = 2\n");
}

TEST(EnvTest, DirsSymlinksAndRemoveAll) {
  testing::TempDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(env->CreateDirs(dir.Sub("a/b/c")).ok());
  ASSERT_TRUE(env->CreateDirs(dir.Sub("a/b/c")).ok());  // idempotent
  testing::WriteFileOrDie(dir.Sub("a/b/c/f"), "x");
  ASSERT_TRUE(env->CreateSymlink("b/c/f", dir.Sub("a/link")).ok());
  EXPECT_EQ(*env->ReadLink(dir.Sub("a/link")), "b/c/f");
  EXPECT_EQ(env->Lstat(dir.Sub("a/link"))->type, FileType::kSymlink);
  EXPECT_EQ(env->Stat(dir.Sub("a/link"))->type, FileType::kRegular);
  EXPECT_TRUE(env->OpenForRead(dir.Sub("a/link"), true).status().IsInvalidArgument());
  EXPECT_TRUE(env->CreateDir(dir.Sub("a/b/c/f")).IsInvalidArgument());
  ASSERT_TRUE(env->RemoveAll(dir.Sub("a")).ok());
  EXPECT_FALSE(*env->Exists(dir.Sub("a")));
  EXPECT_TRUE(env->RemoveAll(dir.Sub("a")).ok());
}

TEST(EnvTest, PathHelpers) {
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
  EXPECT_EQ(Dirname("a/b/c"), "a/b");
  EXPECT_EQ(Dirname("c"), "");
  EXPECT_EQ(Basename("a/b/c"), "c");
  std::string t = TempPathFor("dir/name");
  EXPECT_EQ(t.rfind("dir/.name.tmp.", 0), 0u) << t;
  EXPECT_NE(TempPathFor("dir/name"), t);
  // Our own temp files are live; a dead pid's (and an old unnamed one's) are abandoned.
  EXPECT_FALSE(IsAbandonedTemp(Basename(t)));
  EXPECT_TRUE(IsAbandonedTemp(".name.tmp.999999999-0123456789abcdef"));
  EXPECT_TRUE(IsAbandonedTemp(".name.tmp.0123456789abcdef"));
  EXPECT_FALSE(IsAbandonedTemp("name"));
}

TEST(EnvTest, ListDirStatMatchesListDirAndLstat) {
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.Sub("a/file"), "12345", 0640);
  ASSERT_TRUE(Env::Default()->CreateDir(dir.Sub("a/sub")).ok());
  ASSERT_TRUE(Env::Default()->CreateSymlink("file", dir.Sub("a/link")).ok());
  testing::FaultyEnv generic(Env::Default());  // the base-class implementation
  for (Env* env : {Env::Default(), static_cast<Env*>(&generic)}) {
    auto listed = env->ListDirStat(dir.Sub("a"));
    ASSERT_TRUE(listed.ok()) << listed.status().ToString();
    ASSERT_EQ(listed->size(), 3u);
    for (const auto& e : *listed) {
      EXPECT_FALSE(e.vanished);
      auto want = env->Lstat(dir.Sub("a/" + e.name));
      ASSERT_TRUE(want.ok());
      EXPECT_EQ(e.info.type, want->type) << e.name;
      EXPECT_EQ(e.info.mode, want->mode) << e.name;
      EXPECT_EQ(e.info.size, want->size) << e.name;
      EXPECT_EQ(e.info.inode, want->inode) << e.name;
    }
    EXPECT_TRUE(env->ListDirStat(dir.Sub("missing")).status().IsNotFound());
  }
}

}  // namespace
}  // namespace depot::core
