#include "dp/versions.h"

#include <array>
#include <utility>

#include "core/hex.h"
#include "core/log.h"
#include "core/path.h"
#include "tuf/metadata.h"

namespace depot::dp {

using core::Status;
using Json = nlohmann::json;

std::map<std::string, Assigned> ParseAssignment(const Json& j) {
  std::map<std::string, Assigned> out;
  if (!j.is_object() || !j.contains("versions") || !j["versions"].is_array()) return out;
  for (const auto& v : j["versions"]) {
    Assigned a;
    try {
      a.target = v.at("target").get<std::string>();
      a.package = v.at("package").get<std::string>();
      a.package_id = v.at("package_id").get<std::string>();
      a.version = v.at("version").get<std::int64_t>();
      a.manifest_id = v.at("manifest_id").get<std::string>();
      a.manifest_bytes = v.at("manifest_bytes").get<std::uint64_t>();
      a.bytes = v.value("bytes", std::uint64_t{0});
      a.retry_at_ms = v.value("retry_at_ms", std::int64_t{0});
      if (v.contains("verify") && v["verify"].is_object()) {
        a.verify_seq = v["verify"].value("seq", std::int64_t{0});
        for (const auto& c : v["verify"].value("chunks", Json::array())) {
          if (!c.is_string() || a.verify_chunks.size() >= 64) continue;
          auto id = core::ParseDigestHex(c.get<std::string>());
          if (id.ok()) a.verify_chunks.push_back(*id);
        }
      }
    } catch (const std::exception&) {
      core::Log(core::LogLevel::kWarn, "dp.assignment_entry_malformed", {});
      continue;
    }
    if (!core::ValidateRelativePath(a.target).ok() || !core::IsLowerHex(a.manifest_id, 64))
      continue;
    out[a.target] = a;
  }
  return out;
}

std::string_view VersionStateName(VersionState s) {
  switch (s) {
    case VersionState::kPending:
      return "pending";
    case VersionState::kSyncing:
      return "syncing";
    case VersionState::kReady:
      return "ready";
    case VersionState::kFailed:
      return "failed";
  }
  return "pending";
}

namespace {

struct Transition {
  VersionState from;
  VersionEvent event;
  VersionState to;
};

// Every move a version's local state can make; anything else is refused.
constexpr std::array kTransitions = {
    Transition{VersionState::kPending, VersionEvent::kStart, VersionState::kSyncing},
    Transition{VersionState::kPending, VersionEvent::kFoundPublished, VersionState::kReady},
    Transition{VersionState::kPending, VersionEvent::kFailed, VersionState::kFailed},
    // A re-check (verify request) runs before the sync proper: start twice.
    Transition{VersionState::kSyncing, VersionEvent::kStart, VersionState::kSyncing},
    Transition{VersionState::kSyncing, VersionEvent::kSynced, VersionState::kReady},
    Transition{VersionState::kSyncing, VersionEvent::kFailed, VersionState::kFailed},
    Transition{VersionState::kFailed, VersionEvent::kStart, VersionState::kSyncing},
    Transition{VersionState::kFailed, VersionEvent::kFailed, VersionState::kFailed},
    // A verify request re-checks a ready version.
    Transition{VersionState::kReady, VersionEvent::kStart, VersionState::kSyncing},
    Transition{VersionState::kReady, VersionEvent::kDamaged, VersionState::kPending},
};

}  // namespace

std::optional<VersionState> NextVersionState(VersionState from, VersionEvent event) {
  for (const Transition& t : kTransitions) {
    if (t.from == from && t.event == event) return t.to;
  }
  return std::nullopt;
}

VersionBook::VersionBook(core::Clock* clock, core::BackoffPolicy retry)
    : clock_(clock), retry_(retry) {}

Local& VersionBook::LocalOf(const std::string& target) {
  return local_.try_emplace(target, clock_, retry_).first->second;
}

AssignmentDelta VersionBook::Apply(std::map<std::string, Assigned> next) {
  AssignmentDelta delta;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [t, a] : assigned_) {
      if (!next.count(t)) delta.removed.push_back(t);
    }
    for (const auto& [t, a] : next) {
      if (!assigned_.count(t)) delta.added.push_back(t);
      Local& l = LocalOf(t);
      // The site's retry time for a failed version is authoritative.
      l.site_retry_ms = std::max(l.site_retry_ms, a.retry_at_ms);
      auto prev = assigned_.find(t);
      if (a.verify_seq > l.verified_seq &&
          (prev == assigned_.end() || prev->second.verify_seq < a.verify_seq)) {
        delta.to_verify.push_back(a);
        l.urgent = true;
      }
    }
    for (const auto& t : delta.removed) local_.erase(t);
    assigned_ = std::move(next);
    have_assignment_ = true;
    woken_ = true;
  }
  cv_.notify_all();
  return delta;
}

bool VersionBook::HaveAssignment() {
  std::lock_guard<std::mutex> lock(mu_);
  return have_assignment_;
}

std::vector<Assigned> VersionBook::AssignedVersions() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Assigned> out;
  for (const auto& [t, a] : assigned_) out.push_back(a);
  return out;
}

std::optional<Assigned> VersionBook::Find(const std::string& target) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = assigned_.find(target);
  if (it == assigned_.end()) return std::nullopt;
  return it->second;
}

std::optional<Assigned> VersionBook::FindByManifestPath(std::string_view rel) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [t, a] : assigned_) {
    if ("targets/" + tuf::ConsistentTargetPath(t, a.manifest_id) == rel) return a;
  }
  return std::nullopt;
}

bool VersionBook::StillAssigned(const std::string& target) {
  std::lock_guard<std::mutex> lock(mu_);
  return !stopping_ && assigned_.count(target) > 0;
}

bool VersionBook::Move(const std::string& target, VersionEvent event,
                       const std::function<void(Local&)>& fn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!assigned_.count(target)) return false;
    Local& l = LocalOf(target);
    auto to = NextVersionState(l.state, event);
    if (!to) return false;
    l.state = *to;
    if (fn) fn(l);
    ++l.changes;
  }
  cv_.notify_all();
  return true;
}

void VersionBook::Update(const std::string& target, const std::function<void(Local&)>& fn) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = local_.find(target);
  if (it != local_.end()) fn(it->second);
}

std::string VersionBook::Failed(const std::string& target, const std::string& error) {
  std::string before;
  Move(target, VersionEvent::kFailed, [&](Local& l) {
    before = std::exchange(l.error, error);
    l.urgent = false;
    l.retry.Failed();
  });
  return before;
}

void VersionBook::Damaged(const std::string& package) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [t, l] : local_) {
      auto it = assigned_.find(t);
      if (it == assigned_.end() || (!package.empty() && it->second.package != package)) continue;
      auto to = NextVersionState(l.state, VersionEvent::kDamaged);
      if (!to) continue;
      l.state = *to;
      ++l.changes;
    }
    woken_ = true;
  }
  cv_.notify_all();
}

std::optional<Pick> VersionBook::NextWork() {
  std::lock_guard<std::mutex> lock(mu_);
  const std::int64_t now_ms = core::UnixMillis(clock_->Now());
  for (const auto& [t, a] : assigned_) {
    Local& l = LocalOf(t);
    const bool check = a.verify_seq > l.verified_seq;
    if (l.state == VersionState::kReady && !check) continue;
    if (!l.urgent && (!l.retry.Due() || l.site_retry_ms > now_ms)) continue;
    return Pick{a, check};
  }
  return std::nullopt;
}

std::vector<Assigned> VersionBook::Pending() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<Assigned> out;
  for (const auto& [t, a] : assigned_) {
    if (LocalOf(t).state == VersionState::kPending) out.push_back(a);
  }
  return out;
}

void VersionBook::Want(const std::vector<std::pair<store::ChunkId, std::uint32_t>>& chunks) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, size] : chunks) wanted_[id] = size;
}

std::uint32_t VersionBook::WantedSize(const store::ChunkId& id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = wanted_.find(id);
  return it == wanted_.end() ? 0 : it->second;
}

void VersionBook::SetSyncing(const std::string& target) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!syncing_.empty() && target.empty()) {
    auto it = local_.find(syncing_);
    if (it != local_.end()) {
      it->second.bytes_done = sync_bytes_;
      it->second.chunks_done = sync_chunks_;
    }
  }
  if (!target.empty()) {
    sync_bytes_ = 0;
    sync_chunks_ = 0;
  }
  syncing_ = target;
}

std::vector<ReportRow> VersionBook::DueReports() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ReportRow> out;
  for (auto& [t, l] : local_) {
    auto it = assigned_.find(t);
    if (it == assigned_.end()) continue;
    const bool live = t == syncing_;
    if (l.changes == l.reported && !live) continue;
    if (l.state == VersionState::kPending) continue;
    Json v = {{"package", it->second.package},
              {"version", it->second.version},
              {"state", std::string(VersionStateName(l.state))},
              {"bytes_total", l.bytes_total},
              {"chunks_total", l.chunks_total},
              {"verified", l.verified_seq}};
    v["bytes_done"] = live ? sync_bytes_.load() : l.bytes_done;
    v["chunks_done"] = live ? sync_chunks_.load() : l.chunks_done;
    if (!l.error.empty()) v["error"] = l.error.substr(0, 2000);
    out.push_back({t, std::move(v), l.changes});
  }
  return out;
}

void VersionBook::Reported(const std::vector<ReportRow>& rows) {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& r : rows) {
    auto it = local_.find(r.target);
    if (it != local_.end()) it->second.reported = std::max(it->second.reported, r.changes);
  }
}

std::map<std::string, int> VersionBook::CountByState() {
  std::map<std::string, int> counts;
  for (VersionState s : {VersionState::kPending, VersionState::kSyncing, VersionState::kReady,
                         VersionState::kFailed}) {
    counts[std::string(VersionStateName(s))] = 0;
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [t, l] : local_) counts[std::string(VersionStateName(l.state))]++;
  return counts;
}

void VersionBook::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

bool VersionBook::Stopping() {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

bool VersionBook::Sleep(core::Duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  clock_->WaitFor(lock, cv_, d, [&] { return stopping_; });
  return stopping_;
}

bool VersionBook::WaitForWork(core::Duration d) {
  std::unique_lock<std::mutex> lock(mu_);
  clock_->WaitFor(lock, cv_, d, [&] { return stopping_ || woken_; });
  woken_ = false;
  return stopping_;
}

void VersionBook::Wake() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

}  // namespace depot::dp
