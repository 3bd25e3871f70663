// The manifest: one immutable package version (docs/formats.md). It lists
// every entry of the file tree with its type, mode, size, SHA-256 and chunk list,
// plus the programs that install the package. Its id is the SHA-256 of its exact
// bytes, and the bytes are signed through TUF, so nothing in it can change unnoticed.
//
// The parser is strict: unknown fields, wrong types, unsafe paths, duplicates,
// symlinks that leave the tree, sizes that do not add up are all rejected with an
// error naming the entry and the rule.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/sha256.h"
#include "core/status.h"
#include "store/chunk_store.h"
#include "store/chunker.h"

namespace depot::store {

inline constexpr int kManifestFormat = 1;

enum class EntryType { kFile, kDirectory, kSymlink };
std::string_view EntryTypeName(EntryType t);  // "file", "dir", "symlink"

struct ChunkRef {
  ChunkId id{};
  std::uint32_t size = 0;  // uncompressed bytes
};

struct Entry {
  std::string path;  // relative, '/'-separated, validated by core::ValidateRelativePath
  EntryType type = EntryType::kFile;
  std::uint32_t mode = 0;  // permission bits (0777 mask); ignored for symlinks
  // Files only:
  std::uint64_t size = 0;
  core::Digest sha256{};
  std::vector<ChunkRef> chunks;
  // Symlinks only:
  std::string target;
};

// An install program. Exit codes not listed anywhere mean failure.
struct Program {
  std::string name;     // [a-z0-9_-]{1,32}, e.g. "install"
  std::string command;  // run with /bin/sh -c in the version's directory
  std::uint32_t timeout_s = 3600;
  std::vector<int> success_codes{0};
  std::vector<int> reboot_codes;  // success, reboot required
  std::vector<int> retry_codes;   // try again later
};

struct Manifest {
  std::string package_id;    // stable across versions of one package
  std::string package_name;  // see ValidatePackageName
  std::int64_t version = 0;  // 1, 2, 3...
  std::string created;       // UTC, core::FormatUtc
  std::string description;
  std::vector<Program> programs;
  ChunkerParams chunker;
  std::vector<Entry> entries;  // sorted by path (bytewise); parents before children

  std::uint64_t TotalFileBytes() const;
  std::uint64_t FileCount() const;
  // Every distinct chunk id referenced, in first-use order.
  std::vector<ChunkRef> UniqueChunks() const;
  const Program* FindProgram(std::string_view name) const;
};

struct ManifestLimits {
  std::uint64_t max_bytes = 256ull << 20;  // serialized size
  std::uint64_t max_entries = 2'000'000;
  std::uint64_t max_file_size = 1ull << 40;    // 1 TiB
  std::uint64_t max_total_size = 16ull << 40;  // 16 TiB
  std::uint32_t max_programs = 32;
  std::uint32_t max_command_length = 8192;
  std::uint32_t max_description_length = 4096;
  std::uint32_t max_symlink_depth = 40;
};

// The program called `name` in `programs`, or nullptr (Manifest::FindProgram for a
// list kept apart from its manifest).
const Program* FindProgram(const std::vector<Program>& programs, std::string_view name);

// Package names: 1-64 characters of [A-Za-z0-9._-], not starting with '.' or '-'.
// They appear in URLs and paths, hence the narrow alphabet.
core::Status ValidatePackageName(std::string_view name);
// Program names: 1-32 characters of [a-z0-9_-].
core::Status ValidateProgramName(std::string_view name);

// Checks every rule above on an in-memory manifest (the writer side calls it too,
// so depot never signs a manifest its own parser would refuse).
core::Status ValidateManifest(const Manifest& m, const ManifestLimits& limits = {});

// Serializes deterministically (compact JSON, keys sorted). The bytes are what gets
// hashed and signed.
core::Result<std::string> SerializeManifest(const Manifest& m);

// Parses and validates. InvalidArgument for malformed or rule-breaking input; the
// message names the entry or field at fault.
core::Result<Manifest> ParseManifest(std::string_view bytes, const ManifestLimits& limits = {});

// The programs of a manifest on their own, in the manifest's JSON form (the API
// hands a version's programs to `package update` this way). Serialize validates
// first; Parse is as strict as ParseManifest, duplicates included.
core::Result<std::string> SerializePrograms(const std::vector<Program>& programs);
core::Result<std::vector<Program>> ParsePrograms(std::string_view json);

}  // namespace depot::store
