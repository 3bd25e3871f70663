// The on-disk layout of a depot repository directory (docs/formats.md):
//
//   DIR/depot-repo.json       repository settings (chunker, compression, expiry)
//   DIR/keys/                 private TUF keys, 0700; root.pem may be moved offline
//   DIR/repo/                 the public tree: serve exactly this directory
//   DIR/repo/metadata/        TUF metadata (N.root.json, N.targets.json, ...)
//   DIR/repo/targets/<pkg>/<sha256>.<version>.json   manifests (TUF targets)
//   DIR/repo/chunks/<2 hex>/<64 hex>                  chunks (zstd frames)
//   DIR/.lock                 serialises writers
//
// The public tree's layout is the URL layout under /repo/ on a site or DP.
#pragma once

#include <cstdint>
#include <string>

#include "core/env.h"

namespace depot::repo {

inline constexpr char kMetadataDir[] = "metadata";
inline constexpr char kTargetsDir[] = "targets";
inline constexpr char kChunksDir[] = "chunks";

struct RepoLayout {
  explicit RepoLayout(std::string dir) : root(std::move(dir)) {}
  std::string root;
  std::string config() const { return core::JoinPath(root, "depot-repo.json"); }
  std::string keys() const { return core::JoinPath(root, "keys"); }
  std::string lock() const { return core::JoinPath(root, ".lock"); }
  std::string public_root() const { return core::JoinPath(root, "repo"); }
  std::string metadata() const { return core::JoinPath(public_root(), kMetadataDir); }
  std::string targets() const { return core::JoinPath(public_root(), kTargetsDir); }
  std::string chunks() const { return core::JoinPath(public_root(), kChunksDir); }
};

// "tools/3.json": the TUF target path of a package version's manifest.
std::string ManifestTargetPath(const std::string& package, std::int64_t version);

}  // namespace depot::repo
