#include "dp/version_check.h"

#include <unordered_set>

namespace depot::dp {

ChunkHealth CheckChunk(store::ChunkStore* chunks, const store::ChunkId& id, std::string* error) {
  auto data = chunks->Get(id, UINT64_MAX, /*verify=*/true);
  if (data.ok()) return ChunkHealth::kGood;
  if (data.status().IsNotFound()) return ChunkHealth::kMissing;
  *error = data.status().message();
  chunks->Remove(id).IgnoreError();
  return ChunkHealth::kDamaged;
}

VersionCheck CheckVersionChunks(store::ChunkStore* chunks, const std::vector<store::ChunkRef>& refs,
                                const std::vector<store::ChunkId>& first,
                                const std::function<bool()>& stop) {
  VersionCheck out;
  std::unordered_set<store::ChunkId, store::ChunkIdHash> in_version;
  for (const auto& r : refs) in_version.insert(r.id);
  std::vector<store::ChunkId> order;
  std::unordered_set<store::ChunkId, store::ChunkIdHash> queued;
  for (const auto& id : first) {
    // Only chunks of this version: a report cannot make a DP drop other content.
    if (in_version.count(id) && queued.insert(id).second) order.push_back(id);
  }
  for (const auto& r : refs) {
    if (queued.insert(r.id).second) order.push_back(r.id);
  }
  for (const auto& id : order) {
    if (stop && stop()) break;
    std::string why;
    ++out.checked;
    switch (CheckChunk(chunks, id, &why)) {
      case ChunkHealth::kGood:
        break;
      case ChunkHealth::kMissing:
        ++out.missing;
        break;
      case ChunkHealth::kDamaged:
        ++out.damaged;
        if (out.damaged_objects.size() < 32) {
          out.damaged_objects.push_back("chunks/" + store::ChunkRelPath(id) + ": " + why);
        }
        break;
    }
  }
  return out;
}

}  // namespace depot::dp
