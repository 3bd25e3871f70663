// INTERNAL to src/tuf: RepositoryWriter's Pending (the files of one write, signed in
// memory and written in order by Commit()), shared by repository.cc and
// repository_rotation.cc.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tuf/metadata.h"
#include "tuf/repository.h"

namespace depot::tuf {

// Files signed in memory for one write, written in order by Commit().
struct RepositoryWriter::Pending {
  struct File {
    std::string name;  // inside the metadata directory
    std::string bytes;
  };
  std::optional<TargetsMetadata> targets;
  std::vector<std::string> targets_signers;
  std::optional<File> targets_file;
  SnapshotMetadata snapshot;
  File snapshot_file;
  std::optional<RootMetadata> root;
  std::optional<File> root_file;
  std::vector<std::pair<std::string, std::string>> key_renames;  // from -> to
  TimestampMetadata timestamp;
  File timestamp_file;
};

}  // namespace depot::tuf
