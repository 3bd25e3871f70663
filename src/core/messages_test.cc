#include "core/messages.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>

namespace depot::core {
namespace {

TEST(MessagesTest, CatalogIsSortedUniqueAndInItsComponentRange) {
  std::size_t n = 0;
  const MessageSpec* all = AllMessages(&n);
  ASSERT_GT(n, 30u);
  std::set<std::string_view> names;
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0) {
      EXPECT_LT(all[i - 1].id, all[i].id) << all[i].id;
    }
    EXPECT_TRUE(names.insert(all[i].name).second) << all[i].name;
    int range = all[i].id / 1000;
    std::string_view want = range == 1   ? "package"
                            : range == 2 ? "distribution"
                            : range == 3 ? "dp"
                            : range == 4 ? "agent"
                            : range == 5 ? "site"
                                         : "hierarchy";
    EXPECT_EQ(all[i].component, want) << all[i].id;
    EXPECT_EQ(FindMessage(all[i].id), &all[i]);
  }
  EXPECT_EQ(FindMessage(999), nullptr);
}

TEST(MessagesTest, FormatFillsKnownParamsAndKeepsUnknown) {
  std::string text = FormatMessage(
      msg::kDpVersionFailed,
      {{"dp", "dp1"}, {"package", "tools"}, {"version", "3"}, {"error", "connection refused"}});
  EXPECT_EQ(text,
            "DP dp1 failed to copy package tools version 3: connection refused (next retry "
            "{next_retry})");
  EXPECT_EQ(FormatMessage(12345, {}), "message 12345");
}

TEST(MessagesTest, Severity) {
  Severity s;
  EXPECT_TRUE(ParseSeverity("warn", &s));
  EXPECT_EQ(s, Severity::kWarning);
  EXPECT_EQ(SeverityName(s), "warning");
  EXPECT_FALSE(ParseSeverity("fatal", &s));
}

// docs/messages.md lists the catalog exactly: operators key dashboards on it.
TEST(MessagesTest, TheDocumentedTableIsTheCatalog) {
  std::ifstream f(std::string(DEPOT_SOURCE_DIR) + "/docs/messages.md");
  ASSERT_TRUE(f) << "docs/messages.md";
  std::string line, documented;
  while (std::getline(f, line)) {
    if (line.size() > 2 && line[0] == '|' && line[2] >= '1' && line[2] <= '9')
      documented += line + "\n";
  }
  std::size_t n = 0;
  const MessageSpec* all = AllMessages(&n);
  std::string expected;
  for (std::size_t i = 0; i < n; ++i) {
    expected += "| " + std::to_string(all[i].id) + " | " +
                std::string(SeverityName(all[i].severity)) + " | " + std::string(all[i].component) +
                " | `" + std::string(all[i].name) + "` | " + std::string(all[i].text) + " |\n";
  }
  EXPECT_EQ(documented, expected) << "update the table in docs/messages.md to:\n" << expected;
}

}  // namespace
}  // namespace depot::core
