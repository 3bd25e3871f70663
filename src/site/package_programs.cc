#include "site/package_programs.h"

#include "core/path.h"
#include "core/sha256.h"
#include "repo/layout.h"
#include "tuf/metadata.h"

namespace depot::site {

using core::Status;

core::Result<store::Manifest> LoadStoredManifest(SiteContext& ctx, const std::string& name,
                                                 std::int64_t version,
                                                 const std::string& manifest_id,
                                                 std::int64_t manifest_bytes) {
  std::string path = core::JoinPath(
      ctx.repo->layout().targets(),
      tuf::ConsistentTargetPath(repo::ManifestTargetPath(name, version), manifest_id));
  DEPOT_ASSIGN_OR_RETURN(std::string bytes,
                         ctx.env->ReadFile(path, static_cast<std::uint64_t>(manifest_bytes)));
  if (core::Sha256::HashHex(bytes) != manifest_id) {
    return Status::Corruption(
        "the stored manifest of " + name + " version " + std::to_string(version) +
        " does not match its id; run `depot repo verify` on the site's library");
  }
  return store::ParseManifest(bytes);
}

core::Result<Json> LatestPrograms(SiteContext& ctx, const std::string& name) {
  DEPOT_RETURN_IF_ERROR(store::ValidatePackageName(name));
  auto row = ctx.db->QueryRow(
      "SELECT v.version, v.manifest_id, v.manifest_bytes FROM versions v JOIN packages p ON p.id = "
      "v.package_id "
      "WHERE p.name = ? AND p.deleted_at IS NULL AND v.state = 'active' ORDER BY v.version DESC "
      "LIMIT 1",
      {name});
  if (!row.ok()) {
    if (row.status().IsNotFound()) {
      return Status::NotFound("package " + name + " has no version (see `depot package list`)");
    }
    return row.status();
  }
  std::int64_t version = row->Int(0);
  DEPOT_ASSIGN_OR_RETURN(store::Manifest m,
                         LoadStoredManifest(ctx, name, version, row->Text(1), row->Int(2)));
  DEPOT_ASSIGN_OR_RETURN(std::string programs, store::SerializePrograms(m.programs));
  return Json{{"package", name}, {"version", version}, {"programs", Json::parse(programs)}};
}

core::Result<Json> OrphanedDeployments(SiteContext& ctx, const std::string& name,
                                       const std::vector<store::Program>& programs) {
  DEPOT_ASSIGN_OR_RETURN(
      catalog::Rows rows,
      ctx.db->Query("SELECT d.id, d.program, c.name FROM deployments d JOIN packages p ON p.id = "
                    "d.package_id "
                    "JOIN collections c ON c.id = d.collection_id WHERE p.name = ? AND "
                    "p.deleted_at IS NULL AND "
                    "d.cancelled_at IS NULL AND d.pinned_version IS NULL ORDER BY d.id",
                    {name}));
  Json out = Json::array();
  for (const auto& r : rows) {
    if (store::FindProgram(programs, r.Text(1)) != nullptr) continue;
    out.push_back({{"deployment", r.Int(0)}, {"program", r.Text(1)}, {"collection", r.Text(2)}});
  }
  return out;
}

}  // namespace depot::site
