#include "site/config.h"

#include <gtest/gtest.h>

#include "core/testing.h"

namespace depot::site {
namespace {

TEST(ConfigTest, RenderedConfigLoadsBackTheSame) {
  testing::TempDir dir;
  SiteConfig c;
  c.code = "BER1";
  c.listen = "0.0.0.0:9000";
  c.keep_versions = 7;
  c.gc_grace = std::chrono::hours(2);
  c.retry_base = std::chrono::milliseconds(250);
  c.max_upload_body = 32ull << 20;
  c.timestamp_lifetime = std::chrono::hours(2);
  c.probe_timeout = std::chrono::seconds(3);
  testing::WriteFileOrDie(dir.Sub("site.toml"), RenderConfig(c));
  auto loaded = LoadConfig(core::Env::Default(), dir.Sub("site.toml"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString() << RenderConfig(c);
  EXPECT_EQ(loaded->code, "BER1");
  EXPECT_EQ(loaded->listen, "0.0.0.0:9000");
  EXPECT_EQ(loaded->keep_versions, 7);
  EXPECT_EQ(loaded->gc_grace, std::chrono::hours(2));
  EXPECT_EQ(loaded->retry_base, std::chrono::milliseconds(250));
  EXPECT_EQ(loaded->max_upload_body, 32ull << 20);
  EXPECT_EQ(loaded->timestamp_lifetime, std::chrono::hours(2));
  EXPECT_EQ(loaded->probe_timeout, std::chrono::seconds(3));
}

TEST(ConfigTest, TyposAndBadValuesAreNamed) {
  testing::TempDir dir;
  auto load = [&](const std::string& text) {
    testing::WriteFileOrDie(dir.Sub("site.toml"), text);
    return LoadConfig(core::Env::Default(), dir.Sub("site.toml")).status();
  };
  EXPECT_TRUE(load("[site]\ncode = \"A\"\n").ok());
  core::Status s = load("[site]\ncode = \"A\"\nlisen = \"x\"\n");
  EXPECT_NE(s.message().find("unknown key `lisen`"), std::string::npos) << s.ToString();
  s = load("[site]\ncode = \"a-b\"\n");
  EXPECT_TRUE(s.IsInvalidArgument());
  s = load("[site]\ncode = \"A\"\n[packages]\ngc_grace = \"soon\"\n");
  EXPECT_NE(s.message().find("gc_grace"), std::string::npos) << s.ToString();
  s = load("[site]\ncode = \"A\"\n[sight]\n");
  EXPECT_NE(s.message().find("sight"), std::string::npos) << s.ToString();
  s = load("[site\ncode = 1");
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("site.toml:"), std::string::npos) << s.ToString();
  s = load("[site]\ncode = \"A\"\n[tls]\ncert = \"c.pem\"\n");
  EXPECT_NE(s.message().find("both cert and key"), std::string::npos) << s.ToString();
  s = load("[site]\ncode = \"A\"\n[signing]\ntimestamp_lifetime = \"1m\"\n");
  EXPECT_NE(s.message().find("timestamp_lifetime must be from 10m to 30d"), std::string::npos)
      << s.ToString();
}

}  // namespace
}  // namespace depot::site
