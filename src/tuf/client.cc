#include "tuf/client.h"

#include <algorithm>
#include <set>
#include <utility>

#include "core/log.h"
#include "core/sha256.h"

namespace depot::tuf {

namespace {

using core::Result;
using core::Status;

constexpr std::string_view kMetadataPrefix = "metadata/";
constexpr std::string_view kTargetsPrefix = "targets/";

std::string MetadataPath(const std::string& name) { return std::string(kMetadataPrefix) + name; }

// "3h 5m", "8d 0h", "42s": how far apart two clocks are, for people.
std::string HumanSpan(core::Duration d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 0) s = -s;
  // Rounded to the smaller unit shown: clocks compared through a Date header agree to
  // a second at best, and "7d 23h" for eight days reads wrong.
  if (s >= 86400)
    s = (s + 1800) / 3600 * 3600;
  else if (s >= 3600)
    s = (s + 30) / 60 * 60;
  if (s >= 86400) return std::to_string(s / 86400) + "d " + std::to_string(s % 86400 / 3600) + "h";
  if (s >= 3600) return std::to_string(s / 3600) + "h " + std::to_string(s % 3600 / 60) + "m";
  if (s >= 60) return std::to_string(s / 60) + "m " + std::to_string(s % 60) + "s";
  return std::to_string(s) + "s";
}

bool SameKeyIds(const RoleKeys& a, const RoleKeys& b) {
  return std::set<std::string>(a.keyids.begin(), a.keyids.end()) ==
         std::set<std::string>(b.keyids.begin(), b.keyids.end());
}

bool MatchesMeta(const std::string& bytes, const MetaFile& meta) {
  return (!meta.length || bytes.size() == *meta.length) &&
         (meta.sha256.empty() || core::Sha256::HashHex(bytes) == meta.sha256);
}

// Mix-and-match protection: the file must be exactly what its referrer signed.
Status CheckAgainstMeta(const std::string& bytes, const MetaFile& meta, const std::string& file,
                        std::string_view referrer) {
  if (meta.length && bytes.size() != *meta.length) {
    return Status::Corruption(file + ": " + std::to_string(bytes.size()) + " bytes, but " +
                              std::string(referrer) + " says " + std::to_string(*meta.length) +
                              " (mix-and-match attack, or a broken mirror)");
  }
  if (!meta.sha256.empty()) {
    const std::string got = core::Sha256::HashHex(bytes);
    if (got != meta.sha256) {
      return Status::Corruption(file + ": sha256 " + got + " does not match " +
                                std::string(referrer) + " (" + meta.sha256 +
                                "); (mix-and-match attack, or a broken mirror)");
    }
  }
  return Status::Ok();
}

Status RequireConsistentSnapshots(const RootMetadata& root, std::string_view file) {
  if (!root.consistent_snapshot) {
    return Status::InvalidArgument(std::string(file) +
                                   ": consistent_snapshot is false; depot repositories always "
                                   "use consistent snapshots");
  }
  return Status::Ok();
}

}  // namespace

Client::Client(core::Env* env, core::Clock* clock, core::RepoSource* source,
               std::string trusted_dir)
    : env_(env), clock_(clock), source_(source), trusted_dir_(std::move(trusted_dir)) {}

std::int64_t Client::root_version() const { return root_ ? root_->meta.body.version : 0; }
std::int64_t Client::timestamp_version() const {
  return timestamp_ ? timestamp_->meta.body.version : 0;
}
std::int64_t Client::snapshot_version() const {
  return snapshot_ ? snapshot_->meta.body.version : 0;
}
std::int64_t Client::targets_version() const { return targets_ ? targets_->meta.body.version : 0; }

Status Client::Persist(Role role, const std::string& bytes) {
  if (trusted_dir_.empty()) return Status::Ok();
  return env_->WriteFileAtomic(core::JoinPath(trusted_dir_, RoleFileName(role)), bytes, 0644)
      .WithContext("persisting trusted " + RoleFileName(role));
}

void Client::Forget(Role role) {
  switch (role) {
    case Role::kTimestamp:
      timestamp_.reset();
      break;
    case Role::kSnapshot:
      snapshot_.reset();
      break;
    case Role::kTargets:
      targets_.reset();
      break;
    case Role::kRoot:
      return;  // the trusted root is only ever replaced
  }
  if (trusted_dir_.empty()) return;
  const std::string path = core::JoinPath(trusted_dir_, RoleFileName(role));
  Status s = env_->Remove(path);
  if (!s.ok() && !s.IsNotFound()) {
    // Harmless: a stale file fails verification against the new root when loaded.
    core::Log(core::LogLevel::kWarn, "tuf.trusted_remove_failed",
              {{"file", path}, {"error", s.ToString()}});
  }
}

void Client::LoadTrustedRoles() {
  if (trusted_dir_.empty()) return;
  auto load = [&]<typename T>(Role role, std::uint64_t cap,
                              Result<Signed<T>> (*parse)(std::string_view, std::string_view),
                              std::optional<Trusted<T>>* out) {
    const std::string path = core::JoinPath(trusted_dir_, RoleFileName(role));
    auto bytes = env_->ReadFile(path, cap);
    if (!bytes.ok()) {
      if (!bytes.status().IsNotFound()) {
        core::Log(core::LogLevel::kWarn, "tuf.trusted_discarded",
                  {{"file", path}, {"error", bytes.status().ToString()}});
      }
      return;
    }
    auto parsed = parse(*bytes, path);
    Status s = parsed.ok() ? VerifyThreshold(root_->meta.body, role, parsed->canonical,
                                             parsed->signatures, path)
                           : parsed.status();
    if (!s.ok()) {
      // It protects nothing if it does not verify; the next update replaces it.
      core::Log(core::LogLevel::kWarn, "tuf.trusted_discarded",
                {{"file", path}, {"error", s.ToString()}});
      return;
    }
    *out = Trusted<T>{std::move(parsed).value(), std::move(*bytes)};
  };
  load(Role::kTimestamp, kMaxTimestampBytes, &ParseTimestamp, &timestamp_);
  load(Role::kSnapshot, kMaxSnapshotBytes, &ParseSnapshot, &snapshot_);
  load(Role::kTargets, kMaxTargetsBytes, &ParseTargets, &targets_);
}

Status Client::Initialize(std::string_view bootstrap_root_json) {
  refreshed_ = false;
  root_.reset();
  timestamp_.reset();
  snapshot_.reset();
  targets_.reset();

  std::string bytes;
  std::string what = "bootstrap root.json";
  bool from_disk = false;
  const std::string stored =
      trusted_dir_.empty() ? std::string() : core::JoinPath(trusted_dir_, "root.json");
  if (!stored.empty()) {
    auto r = env_->ReadFile(stored, kMaxRootBytes);
    if (r.ok()) {
      bytes = std::move(*r);
      what = stored;
      from_disk = true;
    } else if (!r.status().IsNotFound()) {
      return r.status();
    }
  }
  if (!from_disk) {
    if (bootstrap_root_json.empty()) {
      return Status::InvalidArgument(
          "tuf client: no trusted root: " +
          (stored.empty() ? "" : stored + " does not exist and ") +
          "no bootstrap root.json was given; pin the repository's root.json on this machine");
    }
    bytes = std::string(bootstrap_root_json);
  }
  auto root = ParseRoot(bytes, what);
  Status s = root.ok()
                 ? VerifyThreshold(root->body, Role::kRoot, root->canonical, root->signatures, what)
                 : root.status();
  if (!s.ok()) {
    if (from_disk) {
      return Status(s.code(), s.message() + "; delete " + stored +
                                  " to start over from the pinned bootstrap root");
    }
    return s;
  }
  DEPOT_RETURN_IF_ERROR(RequireConsistentSnapshots(root->body, what));
  if (!from_disk && !trusted_dir_.empty()) {
    DEPOT_RETURN_IF_ERROR(env_->CreateDirs(trusted_dir_, 0755));
    DEPOT_RETURN_IF_ERROR(Persist(Role::kRoot, bytes));
  }
  root_ = Trusted<RootMetadata>{std::move(root).value(), std::move(bytes)};
  LoadTrustedRoles();
  return Status::Ok();
}

Result<std::string> Client::FetchCapped(const std::string& path, std::uint64_t max_bytes) {
  auto r = source_->Fetch(path, max_bytes);
  if (!r.ok()) return std::move(r).status();
  // The source enforces the cap; this catches one that does not.
  if (r->size() > max_bytes) {
    return Status::Corruption(path + ": " + source_->Describe() + " returned " +
                              std::to_string(r->size()) + " bytes, more than the " +
                              std::to_string(max_bytes) + " allowed (endless data attack?)");
  }
  return r;
}

Status Client::RefuseOlder(std::string what) {
  refused_older_ = true;
  return Status::Corruption(std::move(what) + " (rollback attack?)");
}

Status Client::Refresh() {
  refreshed_ = false;
  refused_older_ = false;
  if (!root_) {
    return Status::InvalidArgument("tuf client: Refresh() called before Initialize() succeeded");
  }
  // 5.1: one reference time for every expiry check of this update.
  const core::TimePoint now = clock_->Now();
  DEPOT_RETURN_IF_ERROR(UpdateRoot(now));
  DEPOT_RETURN_IF_ERROR(UpdateTimestamp(now));
  DEPOT_RETURN_IF_ERROR(UpdateSnapshot(now));
  DEPOT_RETURN_IF_ERROR(UpdateTargets(now));
  refreshed_ = true;
  return Status::Ok();
}

void Client::OnRootReplaced(const RootMetadata& previous) {
  const RootMetadata& root = root_->meta.body;
  // 5.3.11: new timestamp or snapshot keys -> forget both, so versions an attacker
  // fast-forwarded with the old keys no longer block the real ones.
  if (!SameKeyIds(previous.roles.at(Role::kTimestamp), root.roles.at(Role::kTimestamp)) ||
      !SameKeyIds(previous.roles.at(Role::kSnapshot), root.roles.at(Role::kSnapshot))) {
    Forget(Role::kTimestamp);
    Forget(Role::kSnapshot);
  }
  // Whatever else the new root changed (thresholds, the targets key): keep only what
  // it still vouches for.
  auto still_signed = [&](Role role, const auto& t) {
    return VerifyThreshold(root, role, t->meta.canonical, t->meta.signatures, RoleFileName(role))
        .ok();
  };
  if (timestamp_ && !still_signed(Role::kTimestamp, timestamp_)) Forget(Role::kTimestamp);
  if (snapshot_ && !still_signed(Role::kSnapshot, snapshot_)) Forget(Role::kSnapshot);
  if (targets_ && !still_signed(Role::kTargets, targets_)) Forget(Role::kTargets);
}

Status Client::UpdateRoot(core::TimePoint now) {
  for (int i = 0; i < kMaxRootRotations; ++i) {
    const RootMetadata& trusted = root_->meta.body;
    const std::int64_t next_version = trusted.version + 1;
    const std::string name = VersionedFileName(Role::kRoot, next_version);
    auto bytes = FetchCapped(MetadataPath(name), kMaxRootBytes);
    if (!bytes.ok()) {
      if (bytes.status().IsNotFound()) break;  // N is the newest root
      return std::move(bytes).status();
    }
    DEPOT_ASSIGN_OR_RETURN(Signed<RootMetadata> next, ParseRoot(*bytes, name));
    // 5.3.4: signed by a threshold of the trusted root's root keys, and of its own.
    DEPOT_RETURN_IF_ERROR(
        VerifyThreshold(trusted, Role::kRoot, next.canonical, next.signatures, name)
            .WithContext("checking against the trusted root (version " +
                         std::to_string(trusted.version) + ")"));
    DEPOT_RETURN_IF_ERROR(
        VerifyThreshold(next.body, Role::kRoot, next.canonical, next.signatures, name)
            .WithContext("checking against its own root keys"));
    // 5.3.5: exactly N+1. An older root under the next name is a replay (or a source
    // that is behind); a newer one is a broken chain.
    if (next.body.version < next_version) {
      return RefuseOlder(name + ": holds root version " + std::to_string(next.body.version) +
                         ", expected exactly " + std::to_string(next_version));
    }
    if (next.body.version != next_version) {
      return Status::Corruption(name + ": holds root version " + std::to_string(next.body.version) +
                                ", expected exactly " + std::to_string(next_version) +
                                " (a broken root chain)");
    }
    DEPOT_RETURN_IF_ERROR(RequireConsistentSnapshots(next.body, name));
    // 5.3.7-8: trust it and persist it. The rest of the trusted state is reconciled at
    // once, so a failure further down the chain cannot leave it stale.
    DEPOT_RETURN_IF_ERROR(Persist(Role::kRoot, *bytes));
    RootMetadata previous = std::move(root_->meta.body);
    root_ = Trusted<RootMetadata>{std::move(next), std::move(*bytes)};
    OnRootReplaced(previous);
  }
  // 5.3.10: the final root must be fresh.
  const RootMetadata& root = root_->meta.body;
  if (IsExpired(root.expires, now)) {
    return Expired("root.json", root.version, root.expires, now, Role::kRoot);
  }
  return Status::Ok();
}

Status Client::UpdateTimestamp(core::TimePoint now) {
  const std::string name = RoleFileName(Role::kTimestamp);
  DEPOT_ASSIGN_OR_RETURN(std::string bytes, FetchCapped(MetadataPath(name), kMaxTimestampBytes));
  DEPOT_ASSIGN_OR_RETURN(Signed<TimestampMetadata> ts, ParseTimestamp(bytes, name));
  // 5.4.2
  DEPOT_RETURN_IF_ERROR(
      VerifyThreshold(root_->meta.body, Role::kTimestamp, ts.canonical, ts.signatures, name));
  // 5.4.3
  if (timestamp_) {
    const TimestampMetadata& old = timestamp_->meta.body;
    if (ts.body.version < old.version) {
      return RefuseOlder(name + ": version " + std::to_string(ts.body.version) +
                         " is older than the trusted version " + std::to_string(old.version) +
                         "; refusing it");
    }
    if (ts.body.version == old.version) {
      // Nothing changed upstream: keep the trusted timestamp, which must still be fresh.
      if (IsExpired(old.expires, now)) {
        return Expired(name, old.version, old.expires, now, Role::kTimestamp);
      }
      return Status::Ok();
    }
    if (ts.body.snapshot.version < old.snapshot.version) {
      return RefuseOlder(name + ": names snapshot version " +
                         std::to_string(ts.body.snapshot.version) + ", older than version " +
                         std::to_string(old.snapshot.version) + " named by the trusted timestamp");
    }
  }
  // 5.4.4
  if (IsExpired(ts.body.expires, now)) {
    return Expired(name, ts.body.version, ts.body.expires, now, Role::kTimestamp);
  }
  // 5.4.5
  DEPOT_RETURN_IF_ERROR(Persist(Role::kTimestamp, bytes));
  timestamp_ = Trusted<TimestampMetadata>{std::move(ts), std::move(bytes)};
  return Status::Ok();
}

Status Client::UpdateSnapshot(core::TimePoint now) {
  const MetaFile meta = timestamp_->meta.body.snapshot;
  const std::string name = VersionedFileName(Role::kSnapshot, meta.version);
  if (snapshot_ && snapshot_->meta.body.version == meta.version &&
      MatchesMeta(snapshot_->bytes, meta)) {
    // The trusted snapshot is the one timestamp names: no download needed.
    const SnapshotMetadata& s = snapshot_->meta.body;
    if (IsExpired(s.expires, now)) return Expired(name, s.version, s.expires, now, Role::kSnapshot);
    return Status::Ok();
  }
  if (meta.length && *meta.length > kMaxSnapshotBytes) {
    return Status::Corruption("timestamp.json: says snapshot is " + std::to_string(*meta.length) +
                              " bytes, more than the " + std::to_string(kMaxSnapshotBytes) +
                              " a client accepts");
  }
  // 5.5.1
  DEPOT_ASSIGN_OR_RETURN(std::string bytes,
                         FetchCapped(MetadataPath(name), meta.length.value_or(kMaxSnapshotBytes)));
  // 5.5.2
  DEPOT_RETURN_IF_ERROR(CheckAgainstMeta(bytes, meta, name, "timestamp.json"));
  DEPOT_ASSIGN_OR_RETURN(Signed<SnapshotMetadata> snap, ParseSnapshot(bytes, name));
  // 5.5.3
  DEPOT_RETURN_IF_ERROR(
      VerifyThreshold(root_->meta.body, Role::kSnapshot, snap.canonical, snap.signatures, name));
  // 5.5.4
  if (snap.body.version != meta.version) {
    return Status::Corruption(name + ": holds snapshot version " +
                              std::to_string(snap.body.version) + ", but timestamp.json names " +
                              std::to_string(meta.version) + " (mix-and-match attack?)");
  }
  // 5.5.5
  if (snapshot_) {
    for (const auto& [file, old] : snapshot_->meta.body.meta) {
      auto it = snap.body.meta.find(file);
      if (it == snap.body.meta.end()) {
        return RefuseOlder(name + ": no longer lists " + file +
                           ", which trusted snapshot version " +
                           std::to_string(snapshot_->meta.body.version) + " listed");
      }
      if (it->second.version < old.version) {
        return RefuseOlder(name + ": names " + file + " version " +
                           std::to_string(it->second.version) + ", older than version " +
                           std::to_string(old.version) + " in the trusted snapshot");
      }
    }
  }
  // 5.5.6
  if (IsExpired(snap.body.expires, now)) {
    return Expired(name, snap.body.version, snap.body.expires, now, Role::kSnapshot);
  }
  // 5.5.7
  DEPOT_RETURN_IF_ERROR(Persist(Role::kSnapshot, bytes));
  snapshot_ = Trusted<SnapshotMetadata>{std::move(snap), std::move(bytes)};
  return Status::Ok();
}

Status Client::UpdateTargets(core::TimePoint now) {
  const MetaFile meta = snapshot_->meta.body.meta.at(RoleFileName(Role::kTargets));
  const std::string name = VersionedFileName(Role::kTargets, meta.version);
  if (targets_ && targets_->meta.body.version == meta.version &&
      MatchesMeta(targets_->bytes, meta)) {
    const TargetsMetadata& t = targets_->meta.body;
    if (IsExpired(t.expires, now)) return Expired(name, t.version, t.expires, now, Role::kTargets);
    return Status::Ok();
  }
  const std::string referrer = VersionedFileName(Role::kSnapshot, snapshot_->meta.body.version);
  if (meta.length && *meta.length > kMaxTargetsBytes) {
    return Status::Corruption(referrer + ": says targets.json is " + std::to_string(*meta.length) +
                              " bytes, more than the " + std::to_string(kMaxTargetsBytes) +
                              " a client accepts");
  }
  // 5.6.1
  DEPOT_ASSIGN_OR_RETURN(std::string bytes,
                         FetchCapped(MetadataPath(name), meta.length.value_or(kMaxTargetsBytes)));
  // 5.6.2
  DEPOT_RETURN_IF_ERROR(CheckAgainstMeta(bytes, meta, name, referrer));
  DEPOT_ASSIGN_OR_RETURN(Signed<TargetsMetadata> targets, ParseTargets(bytes, name));
  // 5.6.3
  DEPOT_RETURN_IF_ERROR(VerifyThreshold(root_->meta.body, Role::kTargets, targets.canonical,
                                        targets.signatures, name));
  // 5.6.4
  if (targets.body.version != meta.version) {
    return Status::Corruption(
        name + ": holds targets version " + std::to_string(targets.body.version) + ", but " +
        referrer + " names " + std::to_string(meta.version) + " (mix-and-match attack?)");
  }
  // Belt and braces: never go below the targets this client already trusted (the
  // snapshot check covers it unless the trusted snapshot was discarded).
  if (targets_ && targets.body.version < targets_->meta.body.version) {
    return RefuseOlder(name + ": version " + std::to_string(targets.body.version) +
                       " is older than the trusted version " +
                       std::to_string(targets_->meta.body.version));
  }
  // 5.6.5
  if (IsExpired(targets.body.expires, now)) {
    return Expired(name, targets.body.version, targets.body.expires, now, Role::kTargets);
  }
  // 5.6.6
  DEPOT_RETURN_IF_ERROR(Persist(Role::kTargets, bytes));
  targets_ = Trusted<TargetsMetadata>{std::move(targets), std::move(bytes)};
  return Status::Ok();
}

Result<TargetInfo> Client::GetTarget(std::string_view path) const {
  if (!refreshed_ || !targets_) {
    return Status::InvalidArgument(
        "tuf client: no trusted targets; Refresh() must succeed before "
        "targets can be looked up");
  }
  const auto& map = targets_->meta.body.targets;
  auto it = map.find(std::string(path));
  if (it == map.end()) {
    return Status::NotFound("'" + std::string(path.substr(0, 200)) +
                            "' is not a target in targets.json version " +
                            std::to_string(targets_->meta.body.version));
  }
  return it->second;
}

std::vector<TargetInfo> Client::Targets() const {
  std::vector<TargetInfo> out;
  if (!refreshed_ || !targets_) return out;
  out.reserve(targets_->meta.body.targets.size());
  for (const auto& [path, info] : targets_->meta.body.targets) out.push_back(info);
  return out;
}

Result<std::string> Client::FetchTarget(const TargetInfo& info) {
  DEPOT_ASSIGN_OR_RETURN(TargetInfo trusted, GetTarget(info.path));
  if (trusted.length != info.length || trusted.sha256 != info.sha256) {
    return Status::InvalidArgument("target '" + info.path.substr(0, 200) +
                                   "': the info given differs from trusted targets.json version " +
                                   std::to_string(targets_->meta.body.version) +
                                   "; look it up again with GetTarget()");
  }
  const std::string path =
      std::string(kTargetsPrefix) + ConsistentTargetPath(trusted.path, trusted.sha256);
  DEPOT_ASSIGN_OR_RETURN(std::string bytes, FetchCapped(path, trusted.length));
  if (bytes.size() != trusted.length) {
    return Status::Corruption(path + ": " + std::to_string(bytes.size()) + " bytes from " +
                              source_->Describe() + ", but targets.json says " +
                              std::to_string(trusted.length));
  }
  const std::string got = core::Sha256::HashHex(bytes);
  if (got != trusted.sha256) {
    return Status::Corruption(path + ": sha256 " + got + " from " + source_->Describe() +
                              " does not match targets.json (" + trusted.sha256 +
                              "); the source served altered or wrong bytes");
  }
  return bytes;
}

void Client::SetReferenceClock(std::string name, core::Duration offset) {
  reference_ = Reference{std::move(name), offset};
}

// Refusal of expired metadata: a freeze attack, a repository nobody re-signed, or a
// clock that is wrong -- the reference clock, when known, says which.
Status Client::Expired(std::string_view file, std::int64_t version, core::TimePoint expires,
                       core::TimePoint now, Role role) const {
  const std::string fix = role == Role::kRoot
                              ? "the repository's root must be re-signed with the offline root key "
                                "(depot repo resign --root)"
                              : "the repository must be re-signed (depot repo resign)";
  std::string head = std::string(file) + " (version " + std::to_string(version) + "): expired at " +
                     core::FormatUtc(expires) + " (now " + core::FormatUtc(now) +
                     " by this machine's clock)";
  if (!reference_) {
    return Status::PermissionDenied(head + "; refusing it (possible freeze attack); " + fix +
                                    ", unless this machine's clock is wrong");
  }
  const core::TimePoint theirs = now + reference_->offset;
  const core::Duration ahead = now - theirs;
  if (!IsExpired(expires, theirs)) {
    return Status::PermissionDenied(
        head + "; refusing it, but by " + reference_->name + "'s clock (" +
        core::FormatUtc(theirs) + ") it is still valid: this machine's clock is " +
        HumanSpan(ahead) + " ahead; correct it (NTP), nothing needs re-signing");
  }
  std::string skew = ahead > std::chrono::minutes(2) || ahead < -std::chrono::minutes(2)
                         ? " (this machine's clock is " + HumanSpan(ahead) +
                               (ahead.count() > 0 ? " ahead of " : " behind ") + reference_->name +
                               "'s, which also says expired)"
                         : " (" + reference_->name + "'s clock agrees)";
  return Status::PermissionDenied(head + skew + "; refusing it (possible freeze attack); " + fix);
}

}  // namespace depot::tuf
