#include "store/chunk_store.h"

#include <optional>
#include <string_view>

#include "core/hex.h"
#include "store/chunker.h"
#include "store/compress.h"

namespace depot::store {

namespace {

// The chunk a file in fan-out directory `sub` holds, if its name is a chunk id that
// belongs there (temp files, strays and misplaced files are not chunks).
std::optional<ChunkId> ChunkIdOfFile(std::string_view name, std::string_view sub) {
  if (name.size() != 64 || name.compare(0, 2, sub) != 0) return std::nullopt;
  auto id = core::ParseDigestHex(name);
  if (!id.ok()) return std::nullopt;
  return *id;
}

}  // namespace

std::string ChunkRelPath(const ChunkId& id) {
  std::string hex = core::DigestHex(id);
  std::string out = hex.substr(0, 2);
  out.push_back('/');
  out.append(hex);
  return out;
}

ChunkStore::ChunkStore(core::Env* env, std::string root, int compression_level)
    : env_(env), root_(std::move(root)), level_(compression_level) {}

core::Status ChunkStore::Create() {
  DEPOT_RETURN_IF_ERROR(env_->CreateDirs(root_));
  static const char kDigits[] = "0123456789abcdef";
  for (int i = 0; i < 256; ++i) {
    char sub[3] = {kDigits[i >> 4], kDigits[i & 15], 0};
    DEPOT_RETURN_IF_ERROR(env_->CreateDir(core::JoinPath(root_, sub)));
  }
  return env_->SyncDir(root_);
}

std::string ChunkStore::PathOf(const ChunkId& id) const {
  return core::JoinPath(root_, ChunkRelPath(id));
}

core::Result<bool> ChunkStore::Has(const ChunkId& id) { return env_->Exists(PathOf(id)); }

core::Status ChunkStore::WriteFrame(const ChunkId& id, std::string_view frame,
                                    core::AtomicBatch* batch) {
  std::string path = PathOf(id);
  if (batch != nullptr) return batch->Add(path, frame, 0644);
  return env_->WriteFileAtomic(path, frame, 0644);
}

core::Status ChunkStore::Put(const ChunkId& id, std::string_view data, core::AtomicBatch* batch) {
  if (core::Sha256::Hash(data) != id) {
    return core::Status::Corruption("chunk " + core::DigestHex(id) +
                                    ": bytes do not hash to the id (got " +
                                    core::Sha256::HashHex(data) + ")");
  }
  DEPOT_ASSIGN_OR_RETURN(bool present, Has(id));
  if (present) return core::Status::Ok();
  DEPOT_ASSIGN_OR_RETURN(std::string frame, CompressFrame(data, level_));
  return WriteFrame(id, frame, batch);
}

core::Result<std::string_view> VerifyFrameInto(const ChunkId& id, std::uint64_t size,
                                               std::string_view frame, std::string* buffer) {
  auto data = DecompressFrameInto(frame, size, buffer);
  if (!data.ok()) return std::move(data).status().WithContext("chunk " + core::DigestHex(id));
  if (core::Sha256::Hash(*data) != id) {
    return core::Status::Corruption("chunk " + core::DigestHex(id) +
                                    ": bytes do not hash to the id");
  }
  return data;
}

core::Result<std::string> ChunkStore::PutFrame(const ChunkId& id, std::uint64_t size,
                                               std::string_view frame, core::AtomicBatch* batch) {
  std::string data;
  DEPOT_RETURN_IF_ERROR(VerifyFrameInto(id, size, frame, &data).status());
  data.resize(size);  // the buffer may have grown past the chunk
  DEPOT_ASSIGN_OR_RETURN(bool present, Has(id));
  if (!present) DEPOT_RETURN_IF_ERROR(WriteFrame(id, frame, batch));
  return data;
}

core::Status ChunkStore::PutFrameTrusted(const ChunkId& id, std::string_view frame,
                                         core::AtomicBatch* batch) {
  return WriteFrame(id, frame, batch);
}

core::Result<std::uint64_t> ChunkStore::StoredSize(const ChunkId& id) {
  DEPOT_ASSIGN_OR_RETURN(auto file, env_->OpenForRead(PathOf(id), /*no_follow=*/true));
  char header[32];
  std::size_t have = 0;
  while (have < sizeof(header)) {
    DEPOT_ASSIGN_OR_RETURN(std::size_t n, file->Read(header + have, sizeof(header) - have));
    if (n == 0) break;
    have += n;
  }
  return FrameContentSize(std::string_view(header, have))
      .WithContext("chunk " + core::DigestHex(id));
}

core::Result<std::string> ChunkStore::GetFrame(const ChunkId& id) {
  return env_->ReadFile(PathOf(id), MaxFrameSize(kMaxChunkSizeLimit));
}

core::Result<std::string> ChunkStore::Get(const ChunkId& id, std::uint64_t expected_size,
                                          bool verify) {
  auto frame = GetFrame(id);
  if (!frame.ok()) {
    if (frame.status().IsInvalidArgument()) {  // longer than any chunk can be
      return core::Status::Corruption(frame.status().message());
    }
    return std::move(frame).status();
  }
  core::Result<std::string> data = expected_size == UINT64_MAX
                                       ? DecompressFrameBounded(*frame, kMaxChunkSizeLimit)
                                       : DecompressFrame(*frame, expected_size);
  if (!data.ok()) return std::move(data).status().WithContext("chunk " + PathOf(id));
  if (verify && core::Sha256::Hash(*data) != id) {
    return core::Status::Corruption("chunk " + PathOf(id) + ": content does not match its id");
  }
  return data;
}

core::Status ChunkStore::Remove(const ChunkId& id) { return env_->Remove(PathOf(id)); }

core::Status ChunkStore::ListIds(ChunkIdSet* out) {
  static const char kDigits[] = "0123456789abcdef";
  for (int i = 0; i < 256; ++i) {
    char sub[3] = {kDigits[i >> 4], kDigits[i & 15], 0};
    auto files = env_->ListDir(core::JoinPath(root_, sub));
    if (!files.ok()) {
      if (files.status().IsNotFound()) continue;  // nothing stored there
      return files.status();
    }
    for (const auto& f : *files) {
      if (auto id = ChunkIdOfFile(f.name, sub)) out->insert(*id);
    }
  }
  return core::Status::Ok();
}

core::Result<std::uint64_t> ChunkStore::EstimateEntries() {
  // An ext4/xfs entry for a 64-character name takes about 72-80 bytes of directory.
  constexpr std::uint64_t kBytesPerEntry = 72;
  static const char kDigits[] = "0123456789abcdef";
  std::uint64_t bytes = 0;
  for (int i = 0; i < 256; ++i) {
    char sub[3] = {kDigits[i >> 4], kDigits[i & 15], 0};
    auto info = env_->Stat(core::JoinPath(root_, sub));
    if (!info.ok()) {
      if (info.status().IsNotFound()) continue;
      return info.status();
    }
    bytes += info->size;
  }
  return bytes / kBytesPerEntry;
}

core::Status ChunkStore::ForEach(const std::function<bool(const ChunkId&, std::uint64_t)>& fn,
                                 const std::function<void(const std::string&)>& on_stray) {
  DEPOT_ASSIGN_OR_RETURN(auto subdirs, env_->ListDir(root_));
  std::sort(subdirs.begin(), subdirs.end(),
            [](const core::DirEntry& a, const core::DirEntry& b) { return a.name < b.name; });
  for (const auto& sub : subdirs) {
    if (sub.name.empty() || sub.name[0] == '.') continue;
    std::string dir = core::JoinPath(root_, sub.name);
    if (sub.name.size() != 2 || !core::IsLowerHex(sub.name, 2)) {
      if (on_stray) on_stray(dir);
      continue;
    }
    DEPOT_ASSIGN_OR_RETURN(auto files, env_->ListDir(dir));
    for (const auto& f : files) {
      if (f.name.empty() || f.name[0] == '.') continue;
      std::string path = core::JoinPath(dir, f.name);
      auto id = ChunkIdOfFile(f.name, sub.name);
      if (!id) {
        if (on_stray) on_stray(path);
        continue;
      }
      auto info = env_->Lstat(path);
      if (!info.ok()) {
        if (info.status().IsNotFound()) continue;  // removed meanwhile
        return info.status();
      }
      if (!fn(*id, info->size)) return core::Status::Ok();
    }
  }
  return core::Status::Ok();
}

core::Result<GcStats> ChunkStore::CollectGarbage(const ChunkIdSet& live,
                                                 std::int64_t keep_modified_after_ns) {
  GcStats stats;
  DEPOT_ASSIGN_OR_RETURN(auto subdirs, env_->ListDir(root_));
  for (const auto& sub : subdirs) {
    if (sub.name.size() != 2 || !core::IsLowerHex(sub.name, 2)) continue;
    std::string dir = core::JoinPath(root_, sub.name);
    DEPOT_ASSIGN_OR_RETURN(auto files, env_->ListDir(dir));
    for (const auto& f : files) {
      std::string path = core::JoinPath(dir, f.name);
      if (!f.name.empty() && f.name[0] == '.') {
        // Only a crashed writer's temp files: a live one may be about to rename.
        if (core::IsAbandonedTemp(f.name) && env_->Remove(path).ok()) ++stats.temp_removed;
        continue;
      }
      auto id = core::ParseDigestHex(f.name);
      if (!id.ok()) continue;  // not ours: leave it
      if (live.count(*id)) {
        ++stats.kept;
        continue;
      }
      auto info = env_->Lstat(path);
      if (info.ok() && keep_modified_after_ns != INT64_MIN &&
          info->mtime_ns > keep_modified_after_ns) {
        ++stats.kept;  // too young: may belong to an upload whose version is not signed yet
        continue;
      }
      core::Status s = env_->Remove(path);
      if (!s.ok() && !s.IsNotFound()) return s;
      ++stats.removed;
      if (info.ok()) stats.removed_bytes += info->size;
    }
  }
  return stats;
}

core::Result<std::uint64_t> ChunkStore::SweepAbandonedTemps(
    const std::function<void(const ChunkId&)>& on_chunk) {
  std::uint64_t removed = 0;
  DEPOT_ASSIGN_OR_RETURN(auto subdirs, env_->ListDir(root_));
  for (const auto& sub : subdirs) {
    if (sub.name.size() != 2 || !core::IsLowerHex(sub.name, 2)) continue;
    std::string dir = core::JoinPath(root_, sub.name);
    DEPOT_ASSIGN_OR_RETURN(auto files, env_->ListDir(dir));
    for (const auto& f : files) {
      if (core::IsAbandonedTemp(f.name) && env_->Remove(core::JoinPath(dir, f.name)).ok()) {
        ++removed;
      } else if (on_chunk) {
        if (auto id = ChunkIdOfFile(f.name, sub.name)) on_chunk(*id);
      }
    }
  }
  return removed;
}

}  // namespace depot::store
