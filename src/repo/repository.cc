#include "repo/repository.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "core/hex.h"
#include "core/log.h"
#include "core/parallel.h"
#include "core/random.h"
#include "core/source.h"
#include "store/compress.h"
#include "tuf/client.h"

namespace depot::repo {

using core::Status;
using Json = nlohmann::json;

std::string ManifestTargetPath(const std::string& package, std::int64_t version) {
  return package + "/" + std::to_string(version) + ".json";
}

namespace {

constexpr int kSettingsFormat = 1;

std::int64_t Seconds(core::Duration d) {
  return std::chrono::duration_cast<std::chrono::seconds>(d).count();
}

std::string EncodeSettings(const RepoSettings& s) {
  Json j = {
      {"format", kSettingsFormat},
      {"chunker",
       {{"min", s.chunker.min_size}, {"avg", s.chunker.avg_size}, {"max", s.chunker.max_size}}},
      {"compression_level", s.compression_level},
      {"expiry_seconds",
       {{"root", Seconds(s.expiry.root)},
        {"targets", Seconds(s.expiry.targets)},
        {"snapshot", Seconds(s.expiry.snapshot)},
        {"timestamp", Seconds(s.expiry.timestamp)}}}};
  return j.dump(2) + "\n";
}

core::Result<RepoSettings> DecodeSettings(std::string_view text, const std::string& path) {
  auto bad = [&](std::string_view why) {
    return Status::InvalidArgument(path + ": " + std::string(why) +
                                   " (restore it from a backup, or re-create the repository)");
  };
  Json j = Json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return bad("is not valid JSON");
  RepoSettings s;
  auto get_int = [&](const Json& obj, const char* key, std::int64_t lo, std::int64_t hi,
                     std::int64_t* out) -> bool {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_number_integer()) return false;
    std::int64_t v = it->get<std::int64_t>();
    if (v < lo || v > hi) return false;
    *out = v;
    return true;
  };
  std::int64_t format = 0, level = 0, mn = 0, avg = 0, mx = 0;
  if (!get_int(j, "format", 1, 1000, &format) || format != kSettingsFormat) {
    return bad("has an unsupported format (upgrade depot)");
  }
  if (!get_int(j, "compression_level", store::kMinCompressionLevel, store::kMaxCompressionLevel,
               &level)) {
    return bad("has no valid compression_level");
  }
  s.compression_level = static_cast<int>(level);
  const Json& ch = j.value("chunker", Json::object());
  if (!ch.is_object() || !get_int(ch, "min", 1, store::kMaxChunkSizeLimit, &mn) ||
      !get_int(ch, "avg", 1, store::kMaxChunkSizeLimit, &avg) ||
      !get_int(ch, "max", 1, store::kMaxChunkSizeLimit, &mx)) {
    return bad("has no valid chunker sizes");
  }
  s.chunker = {static_cast<std::uint32_t>(mn), static_cast<std::uint32_t>(avg),
               static_cast<std::uint32_t>(mx)};
  DEPOT_RETURN_IF_ERROR(store::Chunker::Create(s.chunker).status().WithContext(path));
  const Json& ex = j.value("expiry_seconds", Json::object());
  std::int64_t r = 0, t = 0, sn = 0, ts = 0;
  constexpr std::int64_t kTenYears = 10ll * 366 * 86400;
  if (!ex.is_object() || !get_int(ex, "root", 60, kTenYears, &r) ||
      !get_int(ex, "targets", 60, kTenYears, &t) || !get_int(ex, "snapshot", 60, kTenYears, &sn) ||
      !get_int(ex, "timestamp", 60, kTenYears, &ts)) {
    return bad("has no valid expiry_seconds");
  }
  s.expiry.root = std::chrono::seconds(r);
  s.expiry.targets = std::chrono::seconds(t);
  s.expiry.snapshot = std::chrono::seconds(sn);
  s.expiry.timestamp = std::chrono::seconds(ts);
  return s;
}

std::string VersionCustom(const std::string& package, const std::string& package_id,
                          std::int64_t version) {
  // Canonical JSON by construction: sorted keys, no spaces, only integers, and the
  // strings are validated names (no characters that would need escaping).
  return "{\"package\":\"" + package + "\",\"package_id\":\"" + package_id +
         "\",\"version\":" + std::to_string(version) + "}";
}

}  // namespace

core::Result<VersionInfo> ParseVersionTarget(const tuf::TargetInfo& target) {
  Json j = Json::parse(target.custom_json, nullptr, false);
  auto bad = [&] {
    return Status::InvalidArgument("target " + target.path +
                                   " is not a depot package version (custom data missing)");
  };
  if (j.is_discarded() || !j.is_object()) return bad();
  auto p = j.find("package"), id = j.find("package_id"), v = j.find("version");
  if (p == j.end() || !p->is_string() || id == j.end() || !id->is_string() || v == j.end() ||
      !v->is_number_integer()) {
    return bad();
  }
  VersionInfo info;
  info.package = p->get<std::string>();
  info.package_id = id->get<std::string>();
  info.version = v->get<std::int64_t>();
  info.manifest_id = target.sha256;
  info.manifest_bytes = target.length;
  if (target.path != ManifestTargetPath(info.package, info.version)) return bad();
  return info;
}

Repository::Repository(core::Env* env, core::Clock* clock, std::string dir, RepoSettings settings)
    : env_(env),
      clock_(clock),
      layout_(std::move(dir)),
      settings_(settings),
      chunks_(env, layout_.chunks(), settings.compression_level) {}

namespace {

// The part of a new repository every kind shares: checked settings, an empty
// directory, the public tree and an empty chunk store.
Status CreateLayout(core::Env* env, const std::string& dir, const RepoSettings& settings) {
  DEPOT_RETURN_IF_ERROR(store::Chunker::Create(settings.chunker).status());
  RepoLayout layout(dir);
  auto listing = env->ListDir(dir);
  if (listing.ok() && !listing->empty()) {
    return Status::InvalidArgument(dir +
                                   " already exists and is not empty; choose a new directory");
  }
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(dir));
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(layout.metadata()));
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(layout.targets()));
  store::ChunkStore chunks(env, layout.chunks(), settings.compression_level);
  return chunks.Create();
}

}  // namespace

Status Repository::Init(core::Env* env, core::Clock* clock, const std::string& dir,
                        const RepoSettings& settings) {
  DEPOT_RETURN_IF_ERROR(CreateLayout(env, dir, settings));
  RepoLayout layout(dir);
  DEPOT_RETURN_IF_ERROR(
      tuf::RepositoryWriter::Init(env, clock, layout.keys(), layout.metadata(), settings.expiry));
  // The settings file is written last: its presence marks a complete repository.
  return env->WriteFileAtomic(layout.config(), EncodeSettings(settings), 0644);
}

Status Repository::InitReplica(core::Env* env, const std::string& dir, const RepoSettings& settings,
                               const std::string& root_json) {
  DEPOT_RETURN_IF_ERROR(CreateLayout(env, dir, settings));
  RepoLayout layout(dir);
  DEPOT_ASSIGN_OR_RETURN(auto root, tuf::ParseRoot(root_json, "the parent's root.json"));
  DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(
      core::JoinPath(layout.metadata(), std::to_string(root.body.version) + ".root.json"),
      root_json, 0644));
  DEPOT_RETURN_IF_ERROR(
      env->WriteFileAtomic(core::JoinPath(layout.metadata(), "root.json"), root_json, 0644));
  return env->WriteFileAtomic(layout.config(), EncodeSettings(settings), 0644);
}

core::Result<std::unique_ptr<Repository>> Repository::Open(core::Env* env, core::Clock* clock,
                                                           const std::string& dir) {
  RepoLayout layout(dir);
  auto text = env->ReadFile(layout.config(), 64 * 1024);
  if (!text.ok()) {
    if (text.status().IsNotFound()) {
      return Status::NotFound(dir +
                              " is not a depot repository (no depot-repo.json); create one "
                              "with `depot repo init " +
                              dir + "`");
    }
    return text.status();
  }
  DEPOT_ASSIGN_OR_RETURN(RepoSettings settings, DecodeSettings(*text, layout.config()));
  return std::unique_ptr<Repository>(new Repository(env, clock, dir, settings));
}

core::Result<std::vector<VersionInfo>> Repository::ListVersions() {
  DEPOT_ASSIGN_OR_RETURN(
      auto writer, tuf::RepositoryWriter::Open(env_, clock_, layout_.keys(), layout_.metadata(),
                                               settings_.expiry));
  std::vector<VersionInfo> out;
  for (const auto& [path, target] : writer.targets()) {
    auto info = ParseVersionTarget(target);
    if (info.ok()) out.push_back(std::move(*info));
  }
  std::sort(out.begin(), out.end(), [](const VersionInfo& a, const VersionInfo& b) {
    return a.package != b.package ? a.package < b.package : a.version < b.version;
  });
  return out;
}

core::Result<AddResult> Repository::AddVersion(const AddRequest& req) {
  DEPOT_RETURN_IF_ERROR(store::ValidatePackageName(req.package));
  DEPOT_ASSIGN_OR_RETURN(auto lock, env_->LockFile(layout_.lock()));
  DEPOT_ASSIGN_OR_RETURN(
      auto writer, tuf::RepositoryWriter::Open(env_, clock_, layout_.keys(), layout_.metadata(),
                                               settings_.expiry));
  // Next version and the package's stable id, from what is signed.
  std::int64_t latest = 0;
  std::string package_id;
  for (const auto& [path, target] : writer.targets()) {
    auto info = ParseVersionTarget(target);
    if (!info.ok() || info->package != req.package) continue;
    if (info->version > latest) {
      latest = info->version;
      package_id = info->package_id;
    }
  }
  if (package_id.empty()) package_id = core::RandomHex(8);

  store::SnapshotOptions opts;
  opts.chunker = settings_.chunker;
  opts.threads = req.threads;
  opts.compression_level = settings_.compression_level;
  opts.clock = clock_;
  opts.progress_bytes = req.progress_bytes;
  opts.progress_files = req.progress_files;
  opts.progress_total = req.progress_total;
  opts.max_attempts = req.max_attempts;
  opts.first_backoff = req.first_backoff;
  auto snap = store::Snapshot(env_, req.source_dir, &chunks_, opts);
  if (!snap.ok()) return std::move(snap).status().WithContext("snapshot of " + req.source_dir);

  store::Manifest m;
  m.package_id = package_id;
  m.package_name = req.package;
  m.version = latest + 1;
  m.created = core::FormatUtc(clock_->Now());
  m.description = req.description;
  m.programs = req.programs;
  m.chunker = settings_.chunker;
  m.entries = std::move(snap->entries);
  DEPOT_ASSIGN_OR_RETURN(AddResult result, SignManifest(writer, m, snap->stats));
  core::Log(core::LogLevel::kInfo, "repo.version_added",
            {{"package", req.package},
             {"version", std::to_string(m.version)},
             {"manifest", result.manifest_id},
             {"new_bytes", std::to_string(result.stats.new_bytes)}});
  return result;
}

core::Result<AddResult> Repository::SignManifest(tuf::RepositoryWriter& writer,
                                                 const store::Manifest& m,
                                                 const store::SnapshotStats& stats) {
  DEPOT_ASSIGN_OR_RETURN(std::string bytes, store::SerializeManifest(m));
  AddResult result;
  result.package = m.package_name;
  result.package_id = m.package_id;
  result.version = m.version;
  result.manifest_id = core::Sha256::HashHex(bytes);
  result.target_path = ManifestTargetPath(m.package_name, m.version);
  result.manifest_bytes = bytes.size();
  result.stats = stats;
  // The manifest file first (content-addressed, invisible until signed), then the
  // signed metadata, whose timestamp write makes the version visible.
  std::string rel = tuf::ConsistentTargetPath(result.target_path, result.manifest_id);
  std::string file = core::JoinPath(layout_.targets(), rel);
  DEPOT_RETURN_IF_ERROR(env_->CreateDirs(std::string(core::Dirname(file))));
  DEPOT_RETURN_IF_ERROR(env_->WriteFileAtomic(file, bytes, 0644));
  tuf::TargetInfo target;
  target.path = result.target_path;
  target.length = bytes.size();
  target.sha256 = result.manifest_id;
  target.custom_json = VersionCustom(m.package_name, m.package_id, m.version);
  DEPOT_RETURN_IF_ERROR(writer.Publish({target}, {}).WithContext("signing " + result.target_path));
  return result;
}

core::Result<AddResult> Repository::PublishManifest(
    const store::Manifest& manifest,
    const std::function<bool(const store::ChunkId&, std::uint64_t)>& known) {
  DEPOT_RETURN_IF_ERROR(store::ValidatePackageName(manifest.package_name));
  DEPOT_RETURN_IF_ERROR(store::ValidateManifest(manifest));
  DEPOT_ASSIGN_OR_RETURN(auto lock, env_->LockFile(layout_.lock()));
  DEPOT_ASSIGN_OR_RETURN(
      auto writer, tuf::RepositoryWriter::Open(env_, clock_, layout_.keys(), layout_.metadata(),
                                               settings_.expiry));
  for (const auto& [path, target] : writer.targets()) {
    auto info = ParseVersionTarget(target);
    if (!info.ok() || info->package != manifest.package_name) continue;
    if (info->version >= manifest.version) {
      return Status::InvalidArgument("package " + manifest.package_name +
                                     " already has signed version " +
                                     std::to_string(info->version) + "; cannot publish version " +
                                     std::to_string(manifest.version));
    }
    if (info->package_id != manifest.package_id) {
      return Status::InvalidArgument("package " + manifest.package_name + " has id " +
                                     info->package_id + ", not " + manifest.package_id);
    }
  }
  // Presence is checked under the lock that garbage collection also takes, so no
  // chunk can vanish between this check and the signature.
  store::SnapshotStats stats;
  std::uint64_t missing = 0;
  std::string first_missing;
  for (const store::ChunkRef& ref : manifest.UniqueChunks()) {
    if (known && known(ref.id, ref.size)) continue;
    DEPOT_ASSIGN_OR_RETURN(bool has, chunks_.Has(ref.id));
    if (!has) {
      if (missing++ == 0) first_missing = core::DigestHex(ref.id);
    }
  }
  if (missing > 0) {
    return Status::NotFound(std::to_string(missing) + " chunks of " + manifest.package_name +
                            " version " + std::to_string(manifest.version) +
                            " are not in the content library (first: " + first_missing +
                            "); upload them first");
  }
  for (const auto& e : manifest.entries) {
    if (e.type == store::EntryType::kFile) {
      ++stats.files;
      stats.bytes += e.size;
      stats.chunk_refs += e.chunks.size();
    } else if (e.type == store::EntryType::kDirectory) {
      ++stats.dirs;
    } else {
      ++stats.symlinks;
    }
  }
  DEPOT_ASSIGN_OR_RETURN(AddResult result, SignManifest(writer, manifest, stats));
  core::Log(core::LogLevel::kInfo, "repo.version_published",
            {{"package", manifest.package_name},
             {"version", std::to_string(manifest.version)},
             {"manifest", result.manifest_id}});
  return result;
}

Status Repository::VerifyManifestContent(
    const store::Manifest& manifest, unsigned threads, bool full,
    const std::function<bool(const store::ChunkId&, std::uint64_t)>& known) {
  std::vector<const store::Entry*> files;
  for (const auto& e : manifest.entries) {
    if (e.type == store::EntryType::kFile) files.push_back(&e);
  }
  std::vector<store::ChunkRef> unique = manifest.UniqueChunks();
  std::atomic<std::size_t> next{0};
  std::mutex mu;
  Status first_error;
  std::atomic<bool> failed{false};
  auto fail = [&](Status s) {
    std::lock_guard<std::mutex> lock(mu);
    if (first_error.ok()) first_error = s.WithContext("verify " + manifest.package_name);
    failed = true;
  };
  if (threads == 0) threads = core::DefaultConcurrency();
  // Every chunk: present, and its frame header declares the listed size.
  core::RunParallel(threads, [&](unsigned) {
    for (;;) {
      std::size_t i = next++;
      if (i >= unique.size() || failed) return;
      if (known && known(unique[i].id, unique[i].size)) continue;
      auto size = chunks_.StoredSize(unique[i].id);
      if (!size.ok()) {
        // Named by id, not by where it would be stored: the caller may be remote.
        fail(size.status().IsNotFound()
                 ? Status::NotFound(
                       "chunk " + core::DigestHex(unique[i].id) +
                       " is not in the content library; upload it first (the upload protocol asks "
                       "which chunks are missing)")
                 : size.status());
        return;
      }
      if (*size != unique[i].size) {
        fail(Status::Corruption("chunk " + core::DigestHex(unique[i].id) + " holds " +
                                std::to_string(*size) + " bytes, the manifest says " +
                                std::to_string(unique[i].size)));
        return;
      }
    }
  });
  if (!first_error.ok()) return first_error;
  next = 0;
  core::RunParallel(threads, [&](unsigned) {
    core::Sha256 hasher;
    for (;;) {
      std::size_t i = next++;
      if (i >= files.size() || failed) return;
      const store::Entry& e = *files[i];
      if (e.chunks.size() == 1) {
        if (e.chunks[0].id != e.sha256)
          fail(Status::Corruption(e.path + ": file hash differs from its only chunk's id"));
        continue;
      }
      if (!full) continue;
      std::uint64_t total = 0;
      Status s;
      for (const auto& c : e.chunks) {
        auto data = chunks_.Get(c.id, c.size, /*verify=*/false);
        if (!data.ok()) {
          s = data.status();
          break;
        }
        hasher.Update(*data);
        total += data->size();
      }
      core::Digest d = hasher.Finish();
      if (s.ok() && (total != e.size || d != e.sha256)) {
        s = Status::Corruption(e.path + ": the chunks listed for it do not hash to its SHA-256");
      }
      if (!s.ok()) fail(s);
    }
  });
  return first_error;
}

Status Repository::RemoveVersions(
    const std::vector<std::pair<std::string, std::int64_t>>& versions) {
  if (versions.empty()) return Status::Ok();
  DEPOT_ASSIGN_OR_RETURN(auto lock, env_->LockFile(layout_.lock()));
  DEPOT_ASSIGN_OR_RETURN(
      auto writer, tuf::RepositoryWriter::Open(env_, clock_, layout_.keys(), layout_.metadata(),
                                               settings_.expiry));
  std::vector<std::string> remove;
  for (const auto& [package, version] : versions) {
    std::string path = ManifestTargetPath(package, version);
    if (writer.targets().count(path) &&
        std::find(remove.begin(), remove.end(), path) == remove.end()) {
      remove.push_back(path);
    }
  }
  if (remove.empty()) return Status::Ok();
  return writer.Publish({}, remove).WithContext("removing versions from the signed targets");
}

Status Repository::Refresh(bool root) {
  DEPOT_ASSIGN_OR_RETURN(auto lock, env_->LockFile(layout_.lock()));
  DEPOT_ASSIGN_OR_RETURN(
      auto writer, tuf::RepositoryWriter::Open(env_, clock_, layout_.keys(), layout_.metadata(),
                                               settings_.expiry));
  if (root) DEPOT_RETURN_IF_ERROR(writer.ResignRoot());
  return writer.Refresh();
}

Status Repository::RotateKeys(const std::vector<std::string>& roles) {
  DEPOT_ASSIGN_OR_RETURN(auto lock, env_->LockFile(layout_.lock()));
  DEPOT_ASSIGN_OR_RETURN(
      auto writer, tuf::RepositoryWriter::Open(env_, clock_, layout_.keys(), layout_.metadata(),
                                               settings_.expiry));
  return writer.RotateKeys(roles);
}

core::Result<GcReport> Repository::CollectGarbage(core::Duration min_age) {
  std::map<std::string, std::string> live;
  {
    DEPOT_ASSIGN_OR_RETURN(
        auto writer, tuf::RepositoryWriter::Open(env_, clock_, layout_.keys(), layout_.metadata(),
                                                 settings_.expiry));
    for (const auto& [path, target] : writer.targets())
      live[tuf::ConsistentTargetPath(path, target.sha256)] = target.sha256;
  }
  return CollectGarbageKeeping(live, min_age);
}

core::Result<GcReport> Repository::CollectGarbageKeeping(
    const std::map<std::string, std::string>& live_paths, core::Duration min_age) {
  DEPOT_ASSIGN_OR_RETURN(auto lock, env_->LockFile(layout_.lock()));
  GcReport report;
  store::ChunkIdSet live;
  std::set<std::string> live_manifests;  // paths relative to targets/
  for (const auto& [rel, sha256] : live_paths) {
    live_manifests.insert(rel);
    auto bytes = env_->ReadFile(core::JoinPath(layout_.targets(), rel), 256ull << 20);
    if (!bytes.ok() || core::Sha256::HashHex(*bytes) != sha256) {
      return Status::Corruption("gc: manifest " + rel +
                                " is missing or damaged; nothing was removed (run depot repo "
                                "verify)");
    }
    auto m = store::ParseManifest(*bytes);
    if (!m.ok()) return m.status().WithContext("gc: " + rel + "; nothing was removed");
    for (const auto& e : m->entries) {
      for (const auto& c : e.chunks) live.insert(c.id);
    }
  }
  report.live_chunks = live.size();
  std::int64_t keep_after = INT64_MIN;
  if (min_age > core::Duration::zero()) {
    keep_after = std::chrono::duration_cast<std::chrono::nanoseconds>(
                     (clock_->Now() - min_age).time_since_epoch())
                     .count();
  }
  DEPOT_ASSIGN_OR_RETURN(store::GcStats stats, chunks_.CollectGarbage(live, keep_after));
  report.chunks_removed = stats.removed;
  report.bytes_removed = stats.removed_bytes;
  report.temp_removed = stats.temp_removed;

  // Manifests of adds that crashed before their signature, and temp files.
  DEPOT_ASSIGN_OR_RETURN(auto packages, env_->ListDir(layout_.targets()));
  for (const auto& pkg : packages) {
    std::string dir = core::JoinPath(layout_.targets(), pkg.name);
    if (pkg.type != core::FileType::kDirectory) {
      if (!pkg.name.empty() && pkg.name[0] == '.' && env_->Remove(dir).ok()) ++report.temp_removed;
      continue;
    }
    DEPOT_ASSIGN_OR_RETURN(auto files, env_->ListDir(dir));
    for (const auto& f : files) {
      std::string rel = pkg.name + "/" + f.name;
      if (live_manifests.count(rel)) continue;
      bool temp = !f.name.empty() && f.name[0] == '.';
      if (env_->Remove(core::JoinPath(dir, f.name)).ok())
        ++(temp ? report.temp_removed : report.manifests_removed);
    }
  }
  DEPOT_ASSIGN_OR_RETURN(auto meta, env_->ListDir(layout_.metadata()));
  for (const auto& f : meta) {
    if (!f.name.empty() && f.name[0] == '.' &&
        env_->Remove(core::JoinPath(layout_.metadata(), f.name)).ok()) {
      ++report.temp_removed;
    }
  }
  core::Log(core::LogLevel::kInfo, "repo.gc",
            {{"chunks_removed", std::to_string(report.chunks_removed)},
             {"bytes_removed", std::to_string(report.bytes_removed)},
             {"manifests_removed", std::to_string(report.manifests_removed)},
             {"temp_removed", std::to_string(report.temp_removed)}});
  return report;
}

core::Result<std::string> Repository::TrustedRoot() {
  return tuf::ReadTrustedRoot(env_, layout_.metadata());
}

}  // namespace depot::repo
