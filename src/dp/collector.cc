#include "dp/collector.h"

#include "core/log.h"
#include "core/messages.h"
#include "core/path.h"
#include "store/manifest.h"

namespace depot::dp {

void CollectGarbage(DpContext* ctx) {
  const std::int64_t cutoff =
      core::UnixMillis(ctx->clock->Now()) - core::ToMillis(ctx->cfg.gc_grace);
  auto due = ctx->db->Query(
      "SELECT target, package, version, manifest_id FROM versions WHERE removed_at IS NOT NULL AND "
      "removed_at <= ?",
      {cutoff});
  if (!due.ok() || due->empty()) return;
  // Live: every chunk of every assigned version.
  store::ChunkIdSet live;
  for (const auto& a : ctx->book.AssignedVersions()) {
    auto bytes = ctx->ManifestBytesLocal(a);
    if (!bytes.ok()) return;
    auto m = store::ParseManifest(*bytes);
    if (!m.ok()) return;
    for (const auto& c : m->UniqueChunks()) live.insert(c.id);
  }
  for (const auto& r : *due) {
    std::string target = r.Text(0), package = r.Text(1), manifest_id = r.Text(3);
    std::int64_t version = r.Int(2);
    std::string published = ctx->PublishedPath(package, version, manifest_id);
    ctx->env->Remove(published).IgnoreError();
    // The package's directory goes with its last version (fails, harmlessly, while
    // others remain).
    ctx->env->Remove(std::string(core::Dirname(published))).IgnoreError();
    ctx->env->Remove(ctx->StagedPath(manifest_id)).IgnoreError();
    ctx->db
        ->Transaction([&](catalog::Tx& tx) {
          return tx.Exec("DELETE FROM versions WHERE target = ?", {target}).status();
        })
        .IgnoreError();
    ctx->Post(core::msg::kDpContentPurged, package, version, {});
  }
  // Chunk files written (by a sync or pull-through) within the grace are kept.
  const std::int64_t keep_after_ns = cutoff * 1'000'000;
  auto stats = ctx->chunks.CollectGarbage(live, keep_after_ns);
  // Files the server keeps open would hold the deleted ones' disk space.
  if (ctx->tree) ctx->tree->CloseKeptFiles();
  if (stats.ok()) {
    core::Log(core::LogLevel::kInfo, "dp.gc",
              {{"removed", std::to_string(stats->removed)},
               {"bytes", std::to_string(stats->removed_bytes)}});
  }
}

}  // namespace depot::dp
