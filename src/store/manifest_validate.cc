// The manifest rules on an in-memory manifest: header fields, programs, the entry
// tree (order, parents, per-type fields, sizes) and symlinks that must stay inside.
#include <algorithm>
#include <string>
#include <unordered_map>

#include "core/clock.h"
#include "core/path.h"
#include "core/sha256.h"
#include "store/manifest.h"
#include "store/manifest_internal.h"

namespace depot::store {

using core::Status;

namespace {

using EntryIndex = std::unordered_map<std::string_view, const Entry*>;

// Resolves symlink `link` (a path in the tree) physically against the tree's own
// entries, and fails if the resolution ever climbs above the root. Links to paths
// the tree does not contain are allowed as long as they stay inside.
class LinkResolver {
 public:
  LinkResolver(const EntryIndex& index, std::uint32_t depth) : index_(index), max_depth_(depth) {}

  Status Check(const Entry& link) {
    std::vector<std::string> stack = Split(std::string(core::Dirname(link.path)));
    return Walk(link, link.target, stack, 0);
  }

 private:
  static std::vector<std::string> Split(const std::string& p) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < p.size()) {
      std::size_t end = p.find('/', start);
      if (end == std::string::npos) end = p.size();
      if (end > start) out.push_back(p.substr(start, end - start));
      start = end + 1;
    }
    return out;
  }
  static std::string Join(const std::vector<std::string>& parts) {
    std::string out;
    for (const auto& p : parts) {
      if (!out.empty()) out.push_back('/');
      out += p;
    }
    return out;
  }

  Status Walk(const Entry& origin, const std::string& target, std::vector<std::string>& stack,
              std::uint32_t depth) {
    if (depth > max_depth_) {
      return Status::InvalidArgument("symlink '" + origin.path + "': too many levels of symlinks");
    }
    if (target.empty()) return Status::InvalidArgument("symlink '" + origin.path + "' is empty");
    if (target[0] == '/') {
      return Status::InvalidArgument("symlink '" + origin.path + "' -> '" + origin.target +
                                     "' is absolute; links must stay inside the package");
    }
    for (const auto& comp : Split(target)) {
      if (comp == ".") continue;
      if (comp == "..") {
        if (stack.empty()) {
          return Status::InvalidArgument("symlink '" + origin.path + "' -> '" + origin.target +
                                         "' escapes the package tree");
        }
        stack.pop_back();
        continue;
      }
      stack.push_back(comp);
      auto it = index_.find(Join(stack));
      if (it != index_.end() && it->second->type == EntryType::kSymlink) {
        stack.pop_back();
        DEPOT_RETURN_IF_ERROR(Walk(origin, it->second->target, stack, depth + 1));
      }
    }
    return Status::Ok();
  }

  const EntryIndex& index_;
  std::uint32_t max_depth_;
};

// The header fields: package name and id, version, created, description, programs,
// chunker parameters and the entry count.
Status ValidateHeader(const Manifest& m, const ManifestLimits& limits) {
  DEPOT_RETURN_IF_ERROR(ValidatePackageName(m.package_name));
  if (m.package_id.empty() || m.package_id.size() > 64 ||
      !std::all_of(m.package_id.begin(), m.package_id.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '-' || c == '_';
      })) {
    return Status::InvalidArgument("package id '" + m.package_id.substr(0, 80) +
                                   "' must be 1 to 64 characters of letters, digits, '-', '_'");
  }
  if (m.version < 1 || m.version > (1ll << 53)) {
    return Status::InvalidArgument("version " + std::to_string(m.version) + " is not in 1..2^53");
  }
  DEPOT_RETURN_IF_ERROR(core::ParseUtc(m.created).status().WithContext("created"));
  if (!core::IsValidUtf8(m.description)) {
    return Status::InvalidArgument("description is not valid UTF-8");
  }
  if (m.description.size() > limits.max_description_length) {
    return Status::InvalidArgument("description is longer than 4096 bytes");
  }
  if (m.programs.size() > limits.max_programs) {
    return Status::InvalidArgument("more than " + std::to_string(limits.max_programs) +
                                   " programs");
  }
  DEPOT_RETURN_IF_ERROR(internal::ValidateProgramList(m.programs, limits));
  DEPOT_RETURN_IF_ERROR(Chunker::Create(m.chunker).status().WithContext("chunker"));
  if (m.entries.size() > limits.max_entries) {
    return Status::InvalidArgument("more than " + std::to_string(limits.max_entries) + " entries");
  }
  return Status::Ok();
}

// An entry's rule broken: "<type> '<path>' <why>".
Status EntryError(const Entry& e, std::string_view why) {
  return Status::InvalidArgument(std::string(EntryTypeName(e.type)) + " '" + e.path + "' " +
                                 std::string(why));
}

// The entry's place in the tree: after `prev` in path order, under a directory
// already listed.
Status CheckEntryPlace(const Entry& e, const std::string* prev, const EntryIndex& index) {
  auto bad = [&](std::string_view why) { return EntryError(e, why); };
  if (prev != nullptr && !(*prev < e.path)) {
    if (*prev == e.path) return bad("is listed twice (duplicate path)");
    return bad("is out of order (entries must be sorted by path)");
  }
  std::string_view parent = core::Dirname(e.path);
  if (!parent.empty()) {
    auto it = index.find(parent);
    if (it == index.end())
      return bad("has no directory entry for its parent '" + std::string(parent) + "'");
    if (it->second->type != EntryType::kDirectory) {
      return bad("lies under '" + std::string(parent) + "', which is a " +
                 std::string(EntryTypeName(it->second->type)) + ", not a directory");
    }
  }
  return Status::Ok();
}

// A file's fields: no target, its size within limits and equal to its chunks' sum,
// its sha256 consistent with them. Adds its size to *total, within the package limit.
Status CheckFileEntry(const Entry& e, const Manifest& m, const ManifestLimits& limits,
                      std::uint64_t* total) {
  auto bad = [&](std::string_view why) { return EntryError(e, why); };
  if (!e.target.empty()) return bad("must not have a target");
  if (e.size > limits.max_file_size) return bad("is larger than the 1 TiB limit");
  std::uint64_t sum = 0;
  for (const auto& c : e.chunks) {
    if (c.size == 0 || c.size > m.chunker.max_size) {
      return bad("has a chunk of " + std::to_string(c.size) + " bytes, outside 1.." +
                 std::to_string(m.chunker.max_size));
    }
    sum += c.size;
  }
  if (sum != e.size) {
    return bad("has chunks adding up to " + std::to_string(sum) + " bytes, not its size " +
               std::to_string(e.size));
  }
  if (e.size == 0 && e.sha256 != core::Sha256::Hash("")) {
    return bad("is empty but its sha256 is not the hash of nothing");
  }
  if (e.chunks.size() == 1 && e.chunks[0].id != e.sha256) {
    return bad("has one chunk whose id differs from the file's sha256");
  }
  *total += e.size;
  if (*total > limits.max_total_size) return bad("pushes the package over 16 TiB");
  return Status::Ok();
}

// An entry's own fields, by its type.
Status CheckEntryFields(const Entry& e, const Manifest& m, const ManifestLimits& limits,
                        std::uint64_t* total) {
  auto bad = [&](std::string_view why) { return EntryError(e, why); };
  if (e.mode & ~0777u) return bad("has mode bits outside 0777");
  switch (e.type) {
    case EntryType::kDirectory:
    case EntryType::kSymlink:
      if (e.size != 0 || !e.chunks.empty()) return bad("must not have a size or chunks");
      if (e.type == EntryType::kDirectory && !e.target.empty())
        return bad("must not have a target");
      if (e.type == EntryType::kSymlink) {
        if (e.target.empty() || e.target.size() > core::kMaxPathLength ||
            e.target.find('\0') != std::string::npos || !core::IsValidUtf8(e.target)) {
          return bad("has an empty, over-long, NUL-containing or non-UTF-8 target");
        }
      }
      break;
    case EntryType::kFile:
      return CheckFileEntry(e, m, limits, total);
  }
  return Status::Ok();
}

}  // namespace

namespace internal {

Status ValidateProgram(const Program& p, const ManifestLimits& limits) {
  DEPOT_RETURN_IF_ERROR(ValidateProgramName(p.name));
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument("program '" + p.name + "' " + std::string(why));
  };
  if (p.command.empty()) return bad("has an empty command");
  if (p.command.size() > limits.max_command_length) return bad("has a command over 8192 bytes");
  if (p.command.find('\0') != std::string::npos) return bad("has a NUL byte in its command");
  if (!core::IsValidUtf8(p.command)) return bad("has a command that is not valid UTF-8");
  if (p.timeout_s == 0 || p.timeout_s > 7 * 86400) {
    return bad("timeout must be between 1 second and 7 days");
  }
  std::vector<int> all;
  for (const auto* list : {&p.success_codes, &p.reboot_codes, &p.retry_codes}) {
    if (list->size() > 64) return bad("lists more than 64 exit codes");
    for (int c : *list) {
      if (c < 0 || c > 255) return bad("exit code " + std::to_string(c) + " is not in 0..255");
      all.push_back(c);
    }
  }
  std::sort(all.begin(), all.end());
  if (std::adjacent_find(all.begin(), all.end()) != all.end()) {
    return bad("lists an exit code in more than one category");
  }
  if (p.success_codes.empty()) return bad("has no success exit code");
  return Status::Ok();
}

Status ValidateProgramList(const std::vector<Program>& programs, const ManifestLimits& limits) {
  for (std::size_t i = 0; i < programs.size(); ++i) {
    DEPOT_RETURN_IF_ERROR(ValidateProgram(programs[i], limits));
    for (std::size_t j = 0; j < i; ++j) {
      if (programs[j].name == programs[i].name) {
        return Status::InvalidArgument("program '" + programs[i].name + "' is listed twice");
      }
    }
  }
  return Status::Ok();
}

}  // namespace internal

Status ValidateManifest(const Manifest& m, const ManifestLimits& limits) {
  DEPOT_RETURN_IF_ERROR(ValidateHeader(m, limits));

  EntryIndex index;
  index.reserve(m.entries.size());
  std::uint64_t total = 0;
  const std::string* prev = nullptr;
  for (const auto& e : m.entries) {
    DEPOT_RETURN_IF_ERROR(core::ValidateRelativePath(e.path));
    DEPOT_RETURN_IF_ERROR(CheckEntryPlace(e, prev, index));
    prev = &e.path;
    DEPOT_RETURN_IF_ERROR(CheckEntryFields(e, m, limits, &total));
    index.emplace(e.path, &e);
  }
  LinkResolver resolver(index, limits.max_symlink_depth);
  for (const auto& e : m.entries) {
    if (e.type == EntryType::kSymlink) DEPOT_RETURN_IF_ERROR(resolver.Check(e));
  }
  return Status::Ok();
}

}  // namespace depot::store
