#include "store/json_scanner.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/testing.h"

namespace depot::store {
namespace {

// Reads {"a": [1, -2], "s": "...", "o": {...}} the way a caller would.
bool ReadSample(std::string_view text, std::vector<std::int64_t>* ints, std::string* s,
                std::string* other) {
  JsonScanner sc(text);
  if (!sc.BeginObject()) return false;
  std::string key;
  bool done = false;
  while (sc.NextKey(&key, &done)) {
    if (key == "a") {
      if (!sc.BeginArray()) return false;
      bool adone = false;
      while (sc.NextElement(&adone)) {
        std::int64_t v;
        if (!sc.Int(&v, -1000, 1000)) return false;
        ints->push_back(v);
      }
      if (!adone) return false;
    } else if (key == "s") {
      if (!sc.String(s, 100)) return false;
    } else {
      std::string_view raw;
      if (!sc.SkipValue(&raw)) return false;
      *other = std::string(raw);
    }
  }
  return done && sc.AtEnd();
}

TEST(JsonScannerTest, ReadsWhatTheCallerExpects) {
  std::vector<std::int64_t> ints;
  std::string s, other;
  ASSERT_TRUE(ReadSample(R"( { "a" : [ 1 , -2, 0 ] , "s":"x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00y",
                            "o": {"k": [true, false, null, 1.5e3, -0.25, "z"], "e": {}} } )",
                         &ints, &s, &other));
  EXPECT_EQ(ints, (std::vector<std::int64_t>{1, -2, 0}));
  EXPECT_EQ(s, "x\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80y");
  EXPECT_EQ(other, R"({"k": [true, false, null, 1.5e3, -0.25, "z"], "e": {}})");
  ints.clear();
  ASSERT_TRUE(ReadSample(R"({"a":[]})", &ints, &s, &other));
  EXPECT_TRUE(ints.empty());
  ASSERT_TRUE(ReadSample(R"({})", &ints, &s, &other));
}

TEST(JsonScannerTest, RejectsWhatIsNotStrictJson) {
  for (
      std::string_view bad : {
          R"({"a":[1,]})",
          R"({"a":[1 2]})",
          R"({"a":[01]})",
          R"({"a":[1.0]})",
          R"({"a":[1e2]})",
          R"({"a":[2000]})",
          R"({"a":[99999999999999999999999]})",
          R"({"a":["1"]})",
          R"({"a":[-]})",
          R"({"s":"tab	here"})",
          R"({"s":"\x"})",
          R"({"s":"\u12"})",
          R"({"s":"\ud800"})",
          R"({"s":"\udc00"})",
          R"({"s":"\ud800\u0041"})",
          "{\"s\":\"\xff\"}",
          "{\"s\":\"\xc0\xaf\"}",
          "{\"s\":\"\xed\xa0\x80\"}",
          "{\"s\":\"\xf4\x90\x80\x80\"}",
          R"({"s":"01234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"})",
          R"({"o":tru})",
          R"({"o":[1.]})",
          R"({"o":[.5]})",
          R"({"o":[1e]})",
          R"({"o":[+1]})",
          R"({"o":{"k" 1}})",
          R"({"o":{1:2}})",
          R"({,"s":"x"})",
          R"({"s":"x",})",
          R"({"s":"x"} x)",
          R"({"s":"x")",
          R"([])",
          "",
          R"({"o":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})",
      }) {
    std::vector<std::int64_t> ints;
    std::string s, other;
    EXPECT_FALSE(ReadSample(bad, &ints, &s, &other)) << bad;
  }
  JsonScanner sc("[1,x]");
  bool done;
  ASSERT_TRUE(sc.BeginArray());
  std::string_view v;
  ASSERT_TRUE(sc.NextElement(&done) && sc.SkipValue(&v));
  ASSERT_TRUE(sc.NextElement(&done));
  EXPECT_FALSE(sc.SkipValue(&v));
  EXPECT_EQ(sc.error(), "expected a value at byte 3");
}

TEST(JsonScannerTest, EveryPrefixAndEveryByteFlipFailsCleanlyOrAgreesWithNlohmann) {
  const std::string doc =
      R"({"a":[1,-2,300],"s":"p\u00e9/\ud83d\ude00","o":{"k":[true,null,"x",{"y":[1e3,2.5]}]}})";
  // Every strict prefix is incomplete JSON (run under ASan in CI: no read past the end).
  for (std::size_t n = 0; n < doc.size(); ++n) {
    std::vector<std::int64_t> ints;
    std::string s, other;
    std::string prefix = doc.substr(0, n);  // its own allocation, so ASan sees its end
    EXPECT_FALSE(ReadSample(prefix, &ints, &s, &other)) << prefix;
  }
  // Any single-byte change: if the scanner accepts the text, so does nlohmann.
  std::string bytes = testing::RandomData(doc.size() * 8, 7);
  for (std::size_t i = 0; i < doc.size(); ++i) {
    for (int k = 0; k < 8; ++k) {
      std::string mutated = doc;
      mutated[i] = bytes[i * 8 + k];
      std::vector<std::int64_t> ints;
      std::string s, other;
      if (ReadSample(mutated, &ints, &s, &other)) {
        EXPECT_FALSE(nlohmann::json::parse(mutated, nullptr, false).is_discarded()) << mutated;
      }
    }
  }
}

}  // namespace
}  // namespace depot::store
