#include "store/manifest.h"

#include <algorithm>

namespace depot::store {

using core::Status;

std::string_view EntryTypeName(EntryType t) {
  switch (t) {
    case EntryType::kFile:
      return "file";
    case EntryType::kDirectory:
      return "dir";
    case EntryType::kSymlink:
      return "symlink";
  }
  return "?";
}

std::uint64_t Manifest::TotalFileBytes() const {
  std::uint64_t n = 0;
  for (const auto& e : entries) n += e.type == EntryType::kFile ? e.size : 0;
  return n;
}

std::uint64_t Manifest::FileCount() const {
  return static_cast<std::uint64_t>(std::count_if(
      entries.begin(), entries.end(), [](const Entry& e) { return e.type == EntryType::kFile; }));
}

std::vector<ChunkRef> Manifest::UniqueChunks() const {
  std::vector<ChunkRef> out;
  ChunkIdSet seen;
  for (const auto& e : entries) {
    for (const auto& c : e.chunks) {
      if (seen.insert(c.id).second) out.push_back(c);
    }
  }
  return out;
}

const Program* FindProgram(const std::vector<Program>& programs, std::string_view name) {
  for (const auto& p : programs) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

const Program* Manifest::FindProgram(std::string_view name) const {
  return store::FindProgram(programs, name);
}

Status ValidatePackageName(std::string_view name) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("package name '" + std::string(name.substr(0, 80)) + "' " +
                                   std::string(why));
  };
  if (name.empty() || name.size() > 64) return bad("must be 1 to 64 characters long");
  if (name[0] == '.' || name[0] == '-') return bad("must not start with '.' or '-'");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return bad("may only contain letters, digits, '.', '_' and '-'");
  }
  return Status::Ok();
}

Status ValidateProgramName(std::string_view name) {
  if (name.empty() || name.size() > 32 || !std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
      })) {
    return Status::InvalidArgument("program name '" + std::string(name.substr(0, 40)) +
                                   "' must be 1 to 32 characters of a-z, 0-9, '_' and '-'");
  }
  return Status::Ok();
}

}  // namespace depot::store
