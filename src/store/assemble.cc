#include "store/assemble.h"

#include <algorithm>
#include <mutex>
#include <unordered_map>

#include "core/parallel.h"

namespace depot::store {

using core::Status;

Assembler::Assembler(core::Env* env, const Manifest* manifest, std::string staging)
    : env_(env), manifest_(manifest), staging_(std::move(staging)) {
  // Group every (file, offset) use of a chunk under that chunk.
  std::unordered_map<ChunkId, std::uint32_t, ChunkIdHash> index;
  std::vector<std::vector<Placement>> uses;
  for (std::uint32_t e = 0; e < manifest_->entries.size(); ++e) {
    const Entry& entry = manifest_->entries[e];
    std::uint64_t offset = 0;
    for (const auto& c : entry.chunks) {
      auto [it, inserted] = index.emplace(c.id, static_cast<std::uint32_t>(chunks_.size()));
      if (inserted) {
        chunks_.push_back(c);
        uses.emplace_back();
      }
      uses[it->second].push_back(Placement{e, offset});
      offset += c.size;
    }
  }
  first_placement_.reserve(chunks_.size() + 1);
  for (auto& u : uses) {
    first_placement_.push_back(static_cast<std::uint32_t>(placements_.size()));
    placements_.insert(placements_.end(), u.begin(), u.end());
  }
  first_placement_.push_back(static_cast<std::uint32_t>(placements_.size()));
  placed_ = std::make_unique<std::atomic<bool>[]>(chunks_.size());
  next_offset_.assign(manifest_->entries.size(), 0);
  hash_state_.assign(manifest_->entries.size(), HashState::kInOrder);
  stripes_ = std::make_unique<Stripe[]>(kStripes);
}

Assembler::~Assembler() {
  if (!committed_) Discard();
}

std::string Assembler::FilePath(std::uint32_t entry) const {
  return core::JoinPath(staging_, manifest_->entries[entry].path);
}

Status Assembler::Prepare() {
  DEPOT_ASSIGN_OR_RETURN(bool exists, env_->Exists(staging_));
  if (exists) return Status::InvalidArgument("staging directory " + staging_ + " already exists");
  DEPOT_RETURN_IF_ERROR(env_->CreateDir(staging_, 0700));
  prepared_ = true;
  for (const auto& e : manifest_->entries) {
    std::string path = core::JoinPath(staging_, e.path);
    switch (e.type) {
      case EntryType::kDirectory:
        // Owner-writable while assembling; the manifest's mode is applied in Finish().
        DEPOT_RETURN_IF_ERROR(env_->CreateDir(path, 0700));
        break;
      case EntryType::kSymlink:
        DEPOT_RETURN_IF_ERROR(env_->CreateSymlink(e.target, path));
        break;
      case EntryType::kFile:
        if (e.size == 0) {
          DEPOT_ASSIGN_OR_RETURN(auto f,
                                 env_->OpenForWrite(path, 0600, core::Env::WriteMode::kCreateNew));
          DEPOT_RETURN_IF_ERROR(f->Close());
        }
        break;
    }
  }
  return Status::Ok();
}

Status Assembler::Place(std::size_t chunk_index, std::string_view data) {
  if (chunk_index >= chunks_.size()) return Status::InvalidArgument("chunk index out of range");
  const ChunkRef& ref = chunks_[chunk_index];
  if (data.size() != ref.size) {
    return Status::Corruption("chunk " + core::DigestHex(ref.id) + " has " +
                              std::to_string(data.size()) + " bytes, the manifest says " +
                              std::to_string(ref.size));
  }
  for (std::uint32_t p = first_placement_[chunk_index]; p < first_placement_[chunk_index + 1];
       ++p) {
    const Placement& pl = placements_[p];
    // Files are created by whichever chunk arrives first; kUpdate never truncates, so
    // concurrent writers of different chunks of one file do not clobber each other.
    DEPOT_ASSIGN_OR_RETURN(
        auto f, env_->OpenForWrite(FilePath(pl.entry), 0600, core::Env::WriteMode::kUpdate));
    DEPOT_RETURN_IF_ERROR(f->WriteAt(pl.offset, data));
    const Entry& entry = manifest_->entries[pl.entry];
    // A one-chunk file is complete now: give it its mode while it is open, sparing
    // Finish() a path lookup per file.
    if (entry.chunks.size() == 1) DEPOT_RETURN_IF_ERROR(f->SetMode(entry.mode));
    DEPOT_RETURN_IF_ERROR(f->Close());
    if (entry.chunks.size() > 1) DEPOT_RETURN_IF_ERROR(HashInOrder(pl.entry, pl.offset, data));
  }
  placed_[chunk_index] = true;
  bytes_placed_ +=
      data.size() * (first_placement_[chunk_index + 1] - first_placement_[chunk_index]);
  return Status::Ok();
}

// Hashing the bytes as they are written spares reading the file back in Finish. The
// hash covers what was written, at the offsets written, so it checks the same thing
// a read-back would: that the chunks, laid out as the manifest says, make the file
// the manifest describes. A file whose chunks come too far out of order, or that is
// written twice at one place, is left to Finish.
Status Assembler::HashInOrder(std::uint32_t e, std::uint64_t offset, std::string_view data) {
  const Entry& entry = manifest_->entries[e];
  Stripe& stripe = stripes_[e % kStripes];
  std::lock_guard<std::mutex> lock(stripe.mu);
  if (hash_state_[e] == HashState::kReadBack || hash_state_[e] == HashState::kMismatch) {
    return Status::Ok();
  }
  // Written again after it was verified, or over bytes already hashed (a repeated
  // Place): only reading the file back tells what it holds now.
  if (hash_state_[e] == HashState::kVerified || offset < next_offset_[e]) {
    GiveUpHashing(stripe, e);
    return Status::Ok();
  }
  auto& partial = stripe.active[e];
  if (!partial) partial = std::make_unique<Partial>();
  if (offset > next_offset_[e]) {
    if (partial->early.count(offset) != 0) {  // the same place written twice
      GiveUpHashing(stripe, e);
      return Status::Ok();
    }
    if (early_bytes_.fetch_add(data.size()) + data.size() > kMaxEarlyBytes) {
      early_bytes_ -= data.size();
      GiveUpHashing(stripe, e);
      return Status::Ok();
    }
    partial->early.emplace(offset, std::string(data));
    return Status::Ok();
  }
  partial->hasher.Update(data);
  next_offset_[e] += data.size();
  // The chunks that were waiting for these bytes.
  while (!partial->early.empty() && partial->early.begin()->first <= next_offset_[e]) {
    auto node = partial->early.extract(partial->early.begin());
    early_bytes_ -= node.mapped().size();
    if (node.key() < next_offset_[e]) {  // overlaps bytes already hashed
      GiveUpHashing(stripe, e);
      return Status::Ok();
    }
    partial->hasher.Update(node.mapped());
    next_offset_[e] += node.mapped().size();
  }
  if (next_offset_[e] < entry.size) return Status::Ok();
  core::Digest d = partial->hasher.Finish();
  const bool extra = !partial->early.empty();
  DropPartial(stripe, e);
  if (next_offset_[e] != entry.size || extra || d != entry.sha256) {
    hash_state_[e] = HashState::kMismatch;
    return Status::Corruption(entry.path + ": assembled file does not match the manifest (" +
                              std::to_string(next_offset_[e]) + " bytes, sha256 " +
                              core::DigestHex(d) + ")");
  }
  hash_state_[e] = HashState::kVerified;
  ++hashed_in_order_;
  return Status::Ok();
}

void Assembler::GiveUpHashing(Stripe& stripe, std::uint32_t e) {
  hash_state_[e] = HashState::kReadBack;
  DropPartial(stripe, e);
}

void Assembler::DropPartial(Stripe& stripe, std::uint32_t e) {
  auto it = stripe.active.find(e);
  if (it == stripe.active.end()) return;
  for (const auto& [offset, bytes] : it->second->early) early_bytes_ -= bytes.size();
  stripe.active.erase(it);
}

Status Assembler::Finish(unsigned threads) {
  for (std::size_t i = 0; i < chunks_.size(); ++i) {
    if (!placed_[i]) {
      return Status::Corruption("chunk " + core::DigestHex(chunks_[i].id) + " was never placed");
    }
  }
  // Verify the multi-chunk files Place could not hash in order by reading them back;
  // largest first across threads.
  std::vector<std::uint32_t> to_verify;
  for (std::uint32_t e = 0; e < manifest_->entries.size(); ++e) {
    const Entry& entry = manifest_->entries[e];
    if (entry.type == EntryType::kFile && entry.chunks.size() > 1 &&
        hash_state_[e] != HashState::kVerified) {
      to_verify.push_back(e);
    }
  }
  read_back_ += to_verify.size();
  std::sort(to_verify.begin(), to_verify.end(), [&](std::uint32_t a, std::uint32_t b) {
    return manifest_->entries[a].size > manifest_->entries[b].size;
  });
  std::atomic<std::size_t> next{0};
  std::mutex mu;
  Status first_error;
  core::RunParallel(std::max(1u, threads), [&](unsigned) {
    std::string buf(1 << 20, '\0');
    core::Sha256 hasher;
    for (;;) {
      std::size_t i = next++;
      if (i >= to_verify.size()) return;
      const Entry& entry = manifest_->entries[to_verify[i]];
      Status s = [&]() -> Status {
        DEPOT_ASSIGN_OR_RETURN(auto f, env_->OpenForRead(FilePath(to_verify[i]), true));
        std::uint64_t total = 0;
        for (;;) {
          DEPOT_ASSIGN_OR_RETURN(std::size_t n, f->Read(buf.data(), buf.size()));
          if (n == 0) break;
          hasher.Update(buf.data(), n);
          total += n;
        }
        core::Digest d = hasher.Finish();
        if (total != entry.size || d != entry.sha256) {
          return Status::Corruption(entry.path + ": assembled file does not match the manifest (" +
                                    std::to_string(total) + " bytes, sha256 " + core::DigestHex(d) +
                                    ")");
        }
        return Status::Ok();
      }();
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = std::move(s);
        next = to_verify.size();
      }
    }
  });
  DEPOT_RETURN_IF_ERROR(first_error);

  // Modes: files first, then directories from the deepest up, so a read-only
  // directory does not block anything still to be done inside it.
  for (const auto& e : manifest_->entries) {
    if (e.type == EntryType::kFile && e.chunks.size() != 1) {
      DEPOT_RETURN_IF_ERROR(env_->Chmod(core::JoinPath(staging_, e.path), e.mode));
    }
  }
  for (auto it = manifest_->entries.rbegin(); it != manifest_->entries.rend(); ++it) {
    if (it->type == EntryType::kDirectory) {
      DEPOT_RETURN_IF_ERROR(env_->Chmod(core::JoinPath(staging_, it->path), it->mode));
    }
  }
  DEPOT_RETURN_IF_ERROR(env_->Chmod(staging_, 0755));
  return env_->SyncFilesystem(staging_);
}

Status Assembler::CommitTo(const std::string& dest) {
  DEPOT_ASSIGN_OR_RETURN(bool exists, env_->Exists(dest));
  if (exists) {
    return Status::InvalidArgument("destination " + dest +
                                   " already exists; remove it or choose another path");
  }
  DEPOT_RETURN_IF_ERROR(env_->Rename(staging_, dest));
  committed_ = true;
  std::string parent(core::Dirname(dest));
  return env_->SyncDir(parent.empty() ? "." : parent);
}

Status Assembler::KeepUnfinished(const std::string& path) {
  if (!prepared_ || committed_) return Status::Ok();
  DEPOT_RETURN_IF_ERROR(env_->Rename(staging_, path));
  committed_ = true;
  return Status::Ok();
}

void Assembler::Discard() {
  if (!prepared_ || committed_) return;
  env_->RemoveAll(staging_).IgnoreError();  // copes with read-only directories
  prepared_ = false;
}

}  // namespace depot::store
