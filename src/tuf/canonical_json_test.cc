#include "tuf/canonical_json.h"

#include <gtest/gtest.h>

#include <string>

#include "tuf/json_internal.h"

namespace depot::tuf {
namespace {

std::string Canon(std::string_view text) {
  auto r = CanonicalizeJson(text);
  EXPECT_TRUE(r.ok()) << text << ": " << r.status().ToString();
  return r.ok() ? *r : std::string("<error>");
}

core::Status CanonStatus(std::string_view text) { return CanonicalizeJson(text).status(); }

TEST(CanonicalJsonTest, SortsKeysAndDropsWhitespace) {
  EXPECT_EQ(Canon(R"( { "b" : 1 , "a" : [ 3 , 2 , { "z" : null , "y" : true } ] , "c":false } )"),
            R"({"a":[3,2,{"y":true,"z":null}],"b":1,"c":false})");
  EXPECT_EQ(Canon("{}"), "{}");
  EXPECT_EQ(Canon("[]"), "[]");
  EXPECT_EQ(Canon("\"x\""), "\"x\"");
  EXPECT_EQ(Canon("0"), "0");
}

TEST(CanonicalJsonTest, SortsKeysByByteValueNotLocale) {
  // 'B' (0x42) < '_' (0x5f) < 'a' (0x61) < 'é' (0xc3 0xa9): byte order, UTF-8 after ASCII.
  EXPECT_EQ(Canon(R"({"é":1,"a":2,"_":3,"B":4,"aa":5,"":6})"),
            R"({"":6,"B":4,"_":3,"a":2,"aa":5,"é":1})");
}

TEST(CanonicalJsonTest, EscapesOnlyQuoteAndBackslash) {
  // Input escapes are decoded; output escapes only '"' and '\'; everything else is raw.
  EXPECT_EQ(Canon(R"("a\"b\\c\/d")"), "\"a\\\"b\\\\c/d\"");
  EXPECT_EQ(Canon(R"("\u00e9\u20ac")"), "\"\xc3\xa9\xe2\x82\xac\"");
  EXPECT_EQ(Canon("\"\xf0\x9f\x93\xa6\""), "\"\xf0\x9f\x93\xa6\"");  // raw UTF-8 stays raw
  EXPECT_EQ(Canon(R"({"k\"ey":"v"})"), R"({"k\"ey":"v"})");
}

// Found by fuzz_canonical_json: a control character went out raw, and the result was
// not JSON any parser (ValidateCanonicalJson, tuf-js) reads back. Refused instead.
TEST(CanonicalJsonTest, ControlCharactersAreRefusedNotWrittenRaw) {
  for (std::string_view text :
       {R"("line\nbreak")", R"("tab\t")", R"("\u0000")", R"({"a\bkey":1})", R"(["\u001f"])"}) {
    core::Status s = CanonStatus(text);
    EXPECT_TRUE(s.IsInvalidArgument()) << text;
    EXPECT_NE(s.message().find("control character"), std::string::npos) << s.ToString();
  }
  EXPECT_EQ(Canon(R"("\u0020~\u007f")"), "\" ~\x7f\"");  // from space on, all is fine
}

TEST(CanonicalJsonTest, IntegersOnly) {
  EXPECT_EQ(Canon("9007199254740992"), "9007199254740992");  // 2^53 is the largest
  for (const char* bad : {"1.0", "1e3", "0.5", "-1", "-0", "9007199254740993",
                          "18446744073709551616", "[1,2.5]", R"({"a":-3})"}) {
    core::Status s = CanonStatus(bad);
    EXPECT_TRUE(s.IsInvalidArgument()) << bad << " -> " << s.ToString();
  }
  EXPECT_NE(CanonStatus("1.5").message().find("floating-point"), std::string::npos);
  EXPECT_NE(CanonStatus("-7").message().find("negative"), std::string::npos);
}

TEST(CanonicalJsonTest, RejectsMalformedInput) {
  for (const char* bad :
       {"", "{", "{\"a\":1,}", "[1,]", "{'a':1}", "{\"a\":1} x", "nul", "{\"a\":1,\"a\":2}",
        "\"\xff\"", "\"\xc3\"", "\"\\ud800\"", "\"raw\ncontrol\""}) {
    core::Status s = CanonStatus(bad);
    EXPECT_TRUE(s.IsInvalidArgument()) << "'" << bad << "' -> " << s.ToString();
  }
  EXPECT_NE(CanonStatus(R"({"a":1,"a":2})").message().find("duplicate"), std::string::npos);
}

TEST(CanonicalJsonTest, BoundsNesting) {
  std::string ok = std::string(64, '[') + std::string(64, ']');
  EXPECT_TRUE(CanonicalizeJson(ok).ok());
  std::string deep = std::string(65, '[') + std::string(65, ']');
  core::Status s = CanonStatus(deep);
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("nested deeper"), std::string::npos) << s.ToString();
  // Hostile depth does not overflow the stack.
  std::string hostile = std::string(1000000, '[');
  EXPECT_TRUE(CanonStatus(hostile).IsInvalidArgument());
}

TEST(CanonicalJsonTest, ErrorsNameTheInput) {
  auto r = CanonicalizeJson("{", "timestamp.json");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("timestamp.json: ", 0), 0u) << r.status().ToString();
}

TEST(CanonicalJsonTest, ValidateCanonical) {
  EXPECT_TRUE(ValidateCanonicalJson(R"({"a":1,"b":[true,null]})").ok());
  EXPECT_TRUE(ValidateCanonicalJson(R"({"b":1,"a":1})").IsInvalidArgument());
  EXPECT_TRUE(ValidateCanonicalJson(R"({"a": 1})").IsInvalidArgument());
  EXPECT_TRUE(ValidateCanonicalJson(R"("\u00e9")").IsInvalidArgument());  // must be raw
  EXPECT_TRUE(ValidateCanonicalJson(R"({"a":1.0})").IsInvalidArgument());
}

TEST(CanonicalJsonTest, EncodeRejectsValuesWithoutCanonicalForm) {
  using internal::Json;
  EXPECT_TRUE(internal::EncodeCanonical(Json(1.5), "x").status().IsInvalidArgument());
  EXPECT_TRUE(internal::EncodeCanonical(Json(-1), "x").status().IsInvalidArgument());
  EXPECT_TRUE(
      internal::EncodeCanonical(Json(std::uint64_t{1} << 54), "x").status().IsInvalidArgument());
  auto ok = internal::EncodeCanonical(Json{{"v", 5}, {"s", "q\"\\"}}, "x");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, R"({"s":"q\"\\","v":5})");
}

// The key object form whose SHA-256 is a TUF keyid.
TEST(CanonicalJsonTest, KeyObjectForm) {
  EXPECT_EQ(Canon(R"({"keytype": "ed25519", "scheme": "ed25519",
                      "keyval": {"public": "abc"}})"),
            R"({"keytype":"ed25519","keyval":{"public":"abc"},"scheme":"ed25519"})");
}

}  // namespace
}  // namespace depot::tuf
