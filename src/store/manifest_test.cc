#include "store/manifest.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace depot::store {
namespace {

using core::Status;

Entry Dir(std::string p, std::uint32_t mode = 0755) {
  Entry e;
  e.path = std::move(p);
  e.type = EntryType::kDirectory;
  e.mode = mode;
  return e;
}
Entry File(std::string p, std::string_view content) {
  Entry e;
  e.path = std::move(p);
  e.type = EntryType::kFile;
  e.mode = 0644;
  e.size = content.size();
  e.sha256 = core::Sha256::Hash(content);
  if (!content.empty())
    e.chunks.push_back(ChunkRef{e.sha256, static_cast<std::uint32_t>(content.size())});
  return e;
}
Entry Link(std::string p, std::string target) {
  Entry e;
  e.path = std::move(p);
  e.type = EntryType::kSymlink;
  e.target = std::move(target);
  return e;
}

Manifest Sample() {
  Manifest m;
  m.package_id = "pkg-0001";
  m.package_name = "tools";
  m.version = 3;
  m.created = "2026-11-22T03:04:05Z";
  m.description = "sample";
  Program p;
  p.name = "install";
  p.command = "./install.sh --quiet";
  p.timeout_s = 600;
  p.success_codes = {0};
  p.reboot_codes = {194};
  p.retry_codes = {75};
  m.programs.push_back(p);
  m.entries = {Dir("bin"),
               File("bin/tool", "#!/bin/sh\necho hi\n"),
               Dir("empty", 0700),
               File("empty.txt", ""),
               Link("links", "bin/tool"),
               Dir("share"),
               Link("share/up", "../bin")};
  return m;
}

// The serializer depot used before it wrote JSON directly: a nlohmann document,
// dumped compact (std::map objects: keys in byte order). Its bytes are the format.
std::string ReferenceSerialize(const Manifest& m) {
  using Json = nlohmann::json;
  Json programs = Json::array();
  for (const auto& p : m.programs) {
    programs.push_back(
        {{"name", p.name},
         {"command", p.command},
         {"timeout_s", p.timeout_s},
         {"exit_codes",
          {{"success", p.success_codes}, {"reboot", p.reboot_codes}, {"retry", p.retry_codes}}}});
  }
  Json entries = Json::array();
  for (const auto& e : m.entries) {
    Json j = {{"path", e.path}, {"type", EntryTypeName(e.type)}};
    switch (e.type) {
      case EntryType::kDirectory:
        j["mode"] = e.mode;
        break;
      case EntryType::kSymlink:
        j["target"] = e.target;
        break;
      case EntryType::kFile: {
        j["mode"] = e.mode;
        j["size"] = e.size;
        j["sha256"] = core::DigestHex(e.sha256);
        Json chunks = Json::array();
        for (const auto& c : e.chunks)
          chunks.push_back(Json::array({core::DigestHex(c.id), c.size}));
        j["chunks"] = std::move(chunks);
        break;
      }
    }
    entries.push_back(std::move(j));
  }
  Json doc = {{"format", kManifestFormat},
              {"package", {{"id", m.package_id}, {"name", m.package_name}}},
              {"version", m.version},
              {"created", m.created},
              {"description", m.description},
              {"programs", std::move(programs)},
              {"chunker",
               {{"algorithm", "fastcdc-gear64-nc2"},
                {"min", m.chunker.min_size},
                {"avg", m.chunker.avg_size},
                {"max", m.chunker.max_size}}},
              {"entries", std::move(entries)}};
  return doc.dump(-1, ' ', false, Json::error_handler_t::strict);
}

TEST(ManifestTest, SerializesExactlyLikeTheNlohmannDocument) {
  Manifest m = Sample();
  EXPECT_EQ(*SerializeManifest(m), ReferenceSerialize(m));
  // Strings that need escaping, and multi-byte UTF-8 that must not be.
  std::string tricky =
      "q\"uote\\back/slash \t\n\r\b\f \x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x93\xa6";
  m.description = tricky;
  m.programs[0].command = "sh -c \"" + tricky + "\"";
  m.programs[0].reboot_codes = {};
  m.programs[0].retry_codes = {1, 2, 255};
  Program second = m.programs[0];
  second.name = "uninstall";
  second.timeout_s = 7 * 86400;
  m.programs.push_back(second);
  m.entries.push_back(Dir("sp ace \xc3\xa9", 0));
  m.entries.push_back(Link("sp ace \xc3\xa9/l\"nk", "../bin/tool"));
  Entry big = File("zz", "");
  big.size = 0;
  for (int i = 0; i < 50; ++i) {
    std::string part = "part " + std::to_string(i);
    big.chunks.push_back(
        ChunkRef{core::Sha256::Hash(part), 4096u * 64u + static_cast<std::uint32_t>(i)});
    big.size += big.chunks.back().size;
  }
  big.sha256 = core::Sha256::Hash("whole");
  big.mode = 0777;
  m.entries.push_back(big);
  m.version = (1ll << 53);
  m.chunker = {64, 128, 4u << 20};
  ASSERT_TRUE(ValidateManifest(m).ok()) << ValidateManifest(m).ToString();
  auto bytes = SerializeManifest(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  EXPECT_EQ(*bytes, ReferenceSerialize(m));
  // And it parses back to the same manifest.
  auto back = ParseManifest(*bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*SerializeManifest(*back), *bytes);
}

TEST(ManifestTest, RoundTripIsExact) {
  Manifest m = Sample();
  auto bytes = SerializeManifest(m);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  auto parsed = ParseManifest(*bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  EXPECT_EQ(*SerializeManifest(*parsed), *bytes);
  EXPECT_EQ(parsed->version, 3);
  EXPECT_EQ(parsed->programs[0].reboot_codes, std::vector<int>{194});
  EXPECT_EQ(parsed->FileCount(), 2u);
  EXPECT_EQ(parsed->UniqueChunks().size(), 1u);
}

// Builds the JSON of Sample(), lets the test edit it, and parses the result.
Status ParseEdited(const std::function<void(nlohmann::json&)>& edit) {
  auto doc = nlohmann::json::parse(*SerializeManifest(Sample()));
  edit(doc);
  return ParseManifest(doc.dump()).status();
}

void ExpectRejected(const std::function<void(nlohmann::json&)>& edit, std::string_view needle) {
  Status s = ParseEdited(edit);
  EXPECT_TRUE(s.IsInvalidArgument()) << s.ToString();
  EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
}

TEST(ManifestTest, RejectsUnsafePaths) {
  ExpectRejected([](auto& d) { d["entries"][1]["path"] = "../x"; }, "'..'");
  ExpectRejected([](auto& d) { d["entries"][1]["path"] = "bin/../../x"; }, "'..'");
  ExpectRejected([](auto& d) { d["entries"][1]["path"] = "/etc/passwd"; }, "absolute");
  ExpectRejected([](auto& d) { d["entries"][1]["path"] = std::string("bin/a\0b", 7); }, "NUL");
  ExpectRejected([](auto& d) { d["entries"][2] = d["entries"][1]; }, "duplicate");
  ExpectRejected([](auto& d) { d["entries"][1]["path"] = "nodir/tool"; }, "no directory entry");
}

TEST(ManifestTest, RejectsEscapingSymlinks) {
  ExpectRejected([](auto& d) { d["entries"][4]["target"] = "/etc/passwd"; }, "absolute");
  ExpectRejected([](auto& d) { d["entries"][4]["target"] = "../outside"; }, "escapes");
  ExpectRejected([](auto& d) { d["entries"][6]["target"] = "../../x"; }, "escapes");
  // Escape through another symlink: share/up -> ../bin is fine, but links -> share/up/../..
  // resolves share/up to bin, then bin/../.. is above the root.
  ExpectRejected([](auto& d) { d["entries"][4]["target"] = "share/up/../.."; }, "escapes");
  // A loop is caught by the depth limit.
  ExpectRejected(
      [](auto& d) {
        d["entries"][4]["target"] = "share/up2";
        d["entries"][6]["path"] = "share/up2";
        d["entries"][6]["target"] = "../links";
      },
      "too many levels");
}

TEST(ManifestTest, RejectsEntriesUnderSymlinks) {
  Manifest m = Sample();
  m.entries.push_back(File("share/up/evil", "x"));
  EXPECT_TRUE(ValidateManifest(m).IsInvalidArgument());
}

TEST(ManifestTest, RejectsInconsistentSizesAndHashes) {
  ExpectRejected([](auto& d) { d["entries"][1]["size"] = 5; }, "adding up");
  ExpectRejected([](auto& d) { d["entries"][1]["sha256"] = std::string(64, '0'); }, "one chunk");
  ExpectRejected([](auto& d) { d["entries"][1]["sha256"] = "abc"; }, "sha256");
  ExpectRejected([](auto& d) { d["entries"][1]["chunks"][0][1] = 0; }, "out of range");
}

TEST(ManifestTest, RejectsUnknownAndMistypedFields) {
  ExpectRejected([](auto& d) { d["extra"] = 1; }, "unknown field 'extra'");
  ExpectRejected([](auto& d) { d["entries"][0]["size"] = 1; }, "unknown field 'size'");
  ExpectRejected([](auto& d) { d["version"] = "3"; }, "not an integer");
  ExpectRejected([](auto& d) { d["version"] = 0; }, "out of range");
  ExpectRejected([](auto& d) { d["format"] = 2; }, "not supported");
  ExpectRejected([](auto& d) { d["entries"][0]["type"] = "fifo"; }, "unknown type");
  ExpectRejected([](auto& d) { d["package"]["name"] = "bad name"; }, "package name");
  ExpectRejected([](auto& d) { d["programs"][0]["exit_codes"]["retry"] = {0}; },
                 "more than one category");
  ExpectRejected([](auto& d) { d.erase("entries"); }, "lacks the field 'entries'");
  EXPECT_TRUE(ParseManifest("{not json").status().IsInvalidArgument());
  EXPECT_TRUE(ParseManifest("[]").status().IsInvalidArgument());
}

// The entries are read by a scanner, not through a document: the same rules hold.
TEST(ManifestTest, EntriesAreAsStrictAsTheRestOfTheDocument) {
  ExpectRejected([](auto& d) { d["entries"][1].erase("chunks"); }, "lacks the field 'chunks'");
  ExpectRejected([](auto& d) { d["entries"][1].erase("type"); }, "lacks the field 'type'");
  ExpectRejected([](auto& d) { d["entries"][0].erase("mode"); }, "lacks the field 'mode'");
  ExpectRejected([](auto& d) { d["entries"][4].erase("target"); }, "lacks the field 'target'");
  ExpectRejected([](auto& d) { d["entries"][4]["mode"] = 0755; }, "unknown field 'mode'");
  ExpectRejected([](auto& d) { d["entries"][1]["owner"] = "root"; }, "unknown field 'owner'");
  ExpectRejected([](auto& d) { d["entries"][1]["mode"] = "0755"; }, "'mode'");
  // Rule breaks name the entry by its path, even when the path comes later.
  ExpectRejected([](auto& d) { d["entries"][1]["mode"] = 04755; },
                 "entry 'bin/tool' mode is out of range");
  ExpectRejected([](auto& d) { d["entries"][1]["size"] = -1; },
                 "entry 'bin/tool' size is out of range");
  ExpectRejected([](auto& d) { d["entries"][1]["chunks"][0][1] = 0; },
                 "entry 'bin/tool' chunk size");
  ExpectRejected([](auto& d) { d["entries"][1]["size"] = 1.5; }, "not an integer");
  ExpectRejected([](auto& d) { d["entries"][1]["path"] = 7; }, "'path'");
  ExpectRejected([](auto& d) { d["entries"][1]["chunks"] = "x"; }, "'chunks'");
  ExpectRejected([](auto& d) { d["entries"][1]["chunks"][0] = {d["entries"][1]["chunks"][0][0]}; },
                 "'chunks'");
  ExpectRejected([](auto& d) { d["entries"][1]["chunks"][0].push_back(1); }, "'chunks'");
  ExpectRejected([](auto& d) { d["entries"][1]["chunks"][0][0] = "zz"; },
                 "entry 'bin/tool' chunk id");
  ExpectRejected([](auto& d) { d["entries"][1]["chunks"][0][1] = 1ll << 40; }, "out of range");
  ExpectRejected([](auto& d) { d["entries"][1]["chunks"].push_back(d["entries"][1]["chunks"][0]); },
                 "");
  ExpectRejected([](auto& d) { d["entries"][2] = "file"; }, "entry #3 is not a JSON object");
  ExpectRejected([](auto& d) { d["entries"] = {{"a", 1}}; }, "entries is not an array");
  // A key given twice (a document would silently keep the last one).
  std::string bytes = *SerializeManifest(Sample());
  auto at = bytes.find("\"mode\":");
  ASSERT_NE(at, std::string::npos);
  std::string twice = bytes.substr(0, at) + "\"mode\":493," + bytes.substr(at);
  Status s = ParseManifest(twice).status();
  EXPECT_TRUE(s.IsInvalidArgument());
  EXPECT_NE(s.message().find("twice"), std::string::npos) << s.message();
  std::string entries_twice = bytes.substr(0, bytes.size() - 1) + ",\"entries\":[]}";
  EXPECT_NE(ParseManifest(entries_twice).status().message().find("twice"), std::string::npos);
  // Whitespace anywhere JSON allows it is fine; trailing text is not.
  EXPECT_TRUE(ParseManifest(nlohmann::json::parse(bytes).dump(2)).ok());
  EXPECT_TRUE(ParseManifest(bytes + " x").status().IsInvalidArgument());
  // Every prefix fails cleanly.
  for (std::size_t n = 0; n < bytes.size(); n += 7) {
    std::string prefix = bytes.substr(0, n);
    EXPECT_TRUE(ParseManifest(prefix).status().IsInvalidArgument()) << n;
  }
}

TEST(ManifestTest, EnforcesLimits) {
  ManifestLimits small;
  small.max_bytes = 100;
  EXPECT_TRUE(ParseManifest(*SerializeManifest(Sample()), small).status().IsInvalidArgument());
  ManifestLimits few;
  few.max_entries = 3;
  EXPECT_TRUE(ParseManifest(*SerializeManifest(Sample()), few).status().IsInvalidArgument());
  Manifest m = Sample();
  m.programs[0].command = std::string(9000, 'x');
  EXPECT_TRUE(SerializeManifest(m).status().IsInvalidArgument());
}

TEST(ManifestTest, PackageNames) {
  EXPECT_TRUE(ValidatePackageName("Tools_2.0-beta").ok());
  for (const char* bad : {"", ".hidden", "-x", "a/b", "a b", "ä"}) {
    EXPECT_TRUE(ValidatePackageName(bad).IsInvalidArgument()) << bad;
  }
  EXPECT_TRUE(ValidatePackageName(std::string(65, 'a')).IsInvalidArgument());
}

}  // namespace
}  // namespace depot::store

namespace depot::store {
namespace {

TEST(ProgramsCodecTest, RoundTripsAndIsStrict) {
  Program install;
  install.name = "install";
  install.command = "sh ./install.sh --quiet \"x\"";
  install.timeout_s = 1800;
  install.success_codes = {0, 3};
  install.reboot_codes = {3010};
  Program remove;
  remove.name = "remove";
  remove.command = "rm -rf /opt/x";
  remove.retry_codes = {75};
  remove.reboot_codes = {};
  install.reboot_codes = {10};
  auto json = SerializePrograms({install, remove});
  ASSERT_TRUE(json.ok()) << json.status().ToString();
  auto back = ParsePrograms(*json);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  ASSERT_EQ(back->size(), 2u);
  EXPECT_EQ((*back)[0].command, install.command);
  EXPECT_EQ((*back)[0].timeout_s, 1800u);
  EXPECT_EQ((*back)[0].success_codes, (std::vector<int>{0, 3}));
  EXPECT_EQ((*back)[0].reboot_codes, (std::vector<int>{10}));
  EXPECT_EQ((*back)[1].retry_codes, (std::vector<int>{75}));
  EXPECT_TRUE(ParsePrograms("[]").ok());
  EXPECT_FALSE(ParsePrograms("{}").ok());
  EXPECT_FALSE(ParsePrograms("[{\"name\":\"x\"}]").ok());
  auto twice = SerializePrograms({install});
  ASSERT_TRUE(twice.ok());
  std::string dup = "[" + twice->substr(1, twice->size() - 2) + "," + twice->substr(1);
  EXPECT_FALSE(ParsePrograms(dup).ok());
  install.success_codes = {};
  EXPECT_FALSE(SerializePrograms({install}).ok()) << "a program without a success code is refused";
}

}  // namespace
}  // namespace depot::store
