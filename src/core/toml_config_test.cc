#include "core/toml_config.h"

#include <gtest/gtest.h>

#include "core/testing.h"

namespace depot::core {
namespace {

TEST(TomlConfigTest, FormatsRoundTrip) {
  EXPECT_EQ(FormatDuration(std::chrono::hours(48)), "2d");
  EXPECT_EQ(FormatDuration(std::chrono::seconds(90)), "90s");
  EXPECT_EQ(FormatDuration(std::chrono::minutes(90)), "90m");
  EXPECT_EQ(FormatDuration(std::chrono::milliseconds(1500)), "1500ms");
  for (Duration d : {Duration(std::chrono::hours(48)), Duration(std::chrono::milliseconds(1500)),
                     Duration(std::chrono::seconds(61))}) {
    EXPECT_EQ(*ParseDuration(FormatDuration(d)), d);
  }
  for (std::uint64_t n : {1ull, 1024ull, 1536ull, 64ull << 20, 3ull << 30})
    EXPECT_EQ(*ParseSize(FormatSize(n)), n);
  EXPECT_FALSE(ParseSize("12TB").ok());
  EXPECT_EQ(*ParseSize("1048576GiB"), 1ull << 50);
  EXPECT_FALSE(ParseSize("1048577GiB").ok()) << "over the limit once the unit is applied";
  EXPECT_FALSE(ParseSize("1125899906842624GiB").ok()) << "would wrap around 2^64";
  EXPECT_EQ(TomlQuote("a\"b\\c"), "\"a\\\"b\\\\c\"");
}

TEST(TomlConfigTest, ReadsKeysAndNamesWhatIsWrong) {
  testing::TempDir dir;
  std::string path = dir.Sub("x.toml");
  testing::WriteFileOrDie(
      path, "[t]\nname = \"n\"\ncount = 7\nwait = \"90s\"\nsize = \"2MiB\"\non = true\n", 0644);
  auto root = ReadTomlFile(Env::Default(), path, "make one");
  ASSERT_TRUE(root.ok()) << root.status().ToString();
  TomlTable t((*root)["t"].as_table(), "t", path, "docs/x.md");
  std::string name;
  std::int64_t count = 0;
  Duration wait{};
  std::uint64_t size = 0;
  bool on = false;
  std::string absent = "default";
  ASSERT_TRUE(t.String("name", &name).ok());
  ASSERT_TRUE(t.Int("count", 1, 10, &count).ok());
  ASSERT_TRUE(t.Duration("wait", &wait).ok());
  ASSERT_TRUE(t.Size("size", &size).ok());
  ASSERT_TRUE(t.Bool("on", &on).ok());
  ASSERT_TRUE(t.String("absent", &absent).ok());
  EXPECT_TRUE(t.Finish().ok());
  EXPECT_EQ(name, "n");
  EXPECT_EQ(count, 7);
  EXPECT_EQ(wait, std::chrono::seconds(90));
  EXPECT_EQ(size, 2u << 20);
  EXPECT_TRUE(on);
  EXPECT_EQ(absent, "default");

  TomlTable strict((*root)["t"].as_table(), "t", path, "docs/x.md");
  Status s = strict.Int("count", 1, 5, &count);
  EXPECT_NE(s.message().find("[t] count must be an integer from 1 to 5"), std::string::npos)
      << s.message();
  s = strict.Finish();
  EXPECT_NE(s.message().find("unknown key `name` in [t]"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("docs/x.md"), std::string::npos);

  testing::WriteFileOrDie(path, "a = [\n", 0644);
  s = ReadTomlFile(Env::Default(), path, "make one").status();
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_EQ(s.message().rfind(path + ":", 0), 0u) << s.message();
  s = ReadTomlFile(Env::Default(), dir.Sub("none.toml"), "make one").status();
  EXPECT_TRUE(s.IsNotFound());
  EXPECT_NE(s.message().find("make one"), std::string::npos);
}

}  // namespace
}  // namespace depot::core
