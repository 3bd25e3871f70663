#include "dp/scrubber.h"

#include "core/log.h"
#include "core/messages.h"
#include "core/path.h"
#include "core/sha256.h"

namespace depot::dp {

using core::Status;

void Scrubber::Run() {
  VersionBook& book = ctx_->book;
  if (book.Sleep(std::min(ctx_->cfg.scrub_every, ctx_->cfg.scrub_start))) return;
  for (;;) {
    auto r = Scrub(/*repair=*/true, ctx_->cfg.scrub_rate);
    if (r.ok() && !book.Stopping()) {
      std::uint64_t repaired_now = 0;
      for (const auto& f : r->findings) repaired_now += f.repaired ? 1 : 0;
      core::Log(
          core::LogLevel::kInfo, "dp.scrubbed",
          {{"chunks", std::to_string(r->chunks)}, {"damaged", std::to_string(r->findings.size())}});
      ctx_->Post(core::msg::kDpScrubPass, "", 0,
                 {{"chunks", std::to_string(r->chunks)},
                  {"bytes", std::to_string(r->bytes)},
                  {"manifests", std::to_string(r->manifests)},
                  {"damaged", std::to_string(r->findings.size())},
                  {"repaired", std::to_string(repaired_now)}});
      ctx_->metrics.scrub_passes->Inc();
    }
    if (book.Sleep(ctx_->cfg.scrub_every)) return;
  }
}

core::Result<VerifyReport> Scrubber::Scrub(bool repair, std::uint64_t rate) {
  VerifyReport report;
  DEPOT_RETURN_IF_ERROR(ScrubChunks(repair, rate, &report));
  ScrubManifests(repair, &report);
  if (!report.findings.empty()) {
    // Removed files stay open in the server's cache until it looks at them again.
    if (ctx_->tree) ctx_->tree->CloseKeptFiles();
    // Chunks were removed: versions that used them must be checked again.
    ctx_->book.Damaged();
  }
  return report;
}

Status Scrubber::ScrubChunks(bool repair, std::uint64_t rate, VerifyReport* report) {
  std::vector<std::pair<store::ChunkId, std::uint64_t>> all;
  DEPOT_RETURN_IF_ERROR(ctx_->chunks.ForEach([&](const store::ChunkId& id, std::uint64_t size) {
    all.emplace_back(id, size);
    return true;
  }));
  const core::MonoTime start = ctx_->clock->Monotonic();
  std::uint64_t read = 0;
  for (const auto& [id, stored] : all) {
    if (ctx_->book.Stopping()) break;
    auto data = ctx_->chunks.Get(id, UINT64_MAX, /*verify=*/true);
    ++report->chunks;
    read += stored;
    report->bytes += stored;
    ctx_->metrics.scrubbed_bytes->Inc(stored);
    if (!data.ok() && !data.status().IsNotFound()) {
      std::string object = "chunks/" + store::ChunkRelPath(id);
      VerifyFinding f{object, data.status().message(), false};
      ctx_->metrics.scrub_damage->Inc();
      ctx_->chunks.Remove(id).IgnoreError();
      ctx_->Post(core::msg::kDpScrubDamage, "", 0,
                 {{"object", object}, {"error", data.status().message()}});
      if (repair) {
        const std::uint32_t size = ctx_->book.WantedSize(id);
        Status rs = size == 0 ? Status::NotFound("no assigned version uses it; not refetched")
                              : ctx_->Refetch(id, size);
        f.repaired = rs.ok();
        if (rs.ok()) {
          ctx_->metrics.repaired->Inc();
          ctx_->Post(core::msg::kDpRepaired, "", 0,
                     {{"object", object}, {"upstream", ctx_->upstream->Describe()}});
        } else {
          f.problem += "; not repaired: " + rs.message();
        }
      }
      report->findings.push_back(std::move(f));
    }
    if (rate > 0) {
      const auto should = std::chrono::duration_cast<core::Duration>(
          std::chrono::duration<double>(static_cast<double>(read) / static_cast<double>(rate)));
      const auto spent = ctx_->clock->Monotonic() - start;
      if (should > spent && ctx_->book.Sleep(should - spent)) break;
    }
  }
  return Status::Ok();
}

// Published manifests: their name carries their hash.
void Scrubber::ScrubManifests(bool repair, VerifyReport* report) {
  const std::string root = ctx_->layout.targets();
  auto packages = ctx_->env->ListDir(root);
  if (!packages.ok()) return;
  for (const auto& p : *packages) {
    if (p.type != core::FileType::kDirectory) continue;
    std::string pdir = core::JoinPath(root, p.name);
    auto files = ctx_->env->ListDir(pdir);
    if (!files.ok()) continue;
    for (const auto& f : *files) {
      if (f.name.empty() || f.name[0] == '.') continue;
      ++report->manifests;
      std::string path = core::JoinPath(pdir, f.name);
      auto bytes = ctx_->env->ReadFile(path, 256ull << 20);
      if (bytes.ok() && f.name.size() > 64 && core::Sha256::HashHex(*bytes) == f.name.substr(0, 64))
        continue;
      std::string object = "targets/" + p.name + "/" + f.name;
      ctx_->metrics.scrub_damage->Inc();
      ctx_->env->Remove(path).IgnoreError();
      ctx_->Post(core::msg::kDpScrubDamage, p.name, 0,
                 {{"object", object}, {"error", "manifest does not match its hash"}});
      report->findings.push_back(
          {object, "manifest does not match its hash; removed (the syncer re-publishes it)",
           repair});
      // The version is no longer complete here: the syncer redoes it.
      ctx_->book.Damaged(p.name);
    }
  }
}

}  // namespace depot::dp
