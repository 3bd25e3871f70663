#include "cli/package_upload.h"

#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "cli/output.h"
#include "core/env.h"
#include "core/hex.h"
#include "core/parallel.h"
#include "core/random.h"
#include "store/chunk_store.h"
#include "store/snapshot.h"

namespace depot::cli {

using core::Status;

namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// A temp directory removed on destruction (unless adopted).
struct Staging {
  core::Env* env;
  std::string dir;
  bool temporary = false;
  ~Staging() {
    if (temporary && !dir.empty()) env->RemoveAll(dir).IgnoreError();
  }
};

void AppendLe32(std::string* out, std::uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);  // little-endian hosts (x86-64, aarch64)
  out->append(b, 4);
}

}  // namespace

core::Result<UploadResult> UploadPackage(ApiClient* api, const UploadRequest& req) {
  core::Env* env = core::Env::Default();
  UploadResult result;
  DEPOT_RETURN_IF_ERROR(store::ValidatePackageName(req.package));
  DEPOT_ASSIGN_OR_RETURN(Json settings, api->Get("/api/v1/settings", "read site settings"));
  store::ChunkerParams chunker;
  int level = 1;
  std::uint64_t max_body = 8u << 20;
  try {
    chunker.min_size = settings.at("chunker").at("min").get<std::uint32_t>();
    chunker.avg_size = settings.at("chunker").at("avg").get<std::uint32_t>();
    chunker.max_size = settings.at("chunker").at("max").get<std::uint32_t>();
    level = settings.at("compression_level").get<int>();
    max_body = std::min<std::uint64_t>(max_body, settings.at("max_upload_body").get<std::uint64_t>());
  } catch (const std::exception&) {
    return Status::Unavailable("the site's settings are incomplete; is it a depot site of this version?");
  }
  // A batch must hold at least one whole chunk record.
  max_body = std::max<std::uint64_t>(max_body, chunker.max_size + 4096);

  Staging staging{env, req.staging_dir};
  if (staging.dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    staging.dir = core::JoinPath(tmp != nullptr && *tmp ? tmp : "/tmp", "depot-upload-" + core::RandomHex(8));
    staging.temporary = true;
  }
  store::ChunkStore chunks(env, staging.dir, level);
  DEPOT_RETURN_IF_ERROR(chunks.Create().WithContext("staging directory " + staging.dir));

  // 1. Snapshot.
  auto t0 = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> snap_bytes{0}, snap_files{0}, snap_total{0};
  store::SnapshotOptions opts;
  opts.chunker = chunker;
  opts.compression_level = level;
  opts.progress_bytes = &snap_bytes;
  opts.progress_files = &snap_files;
  opts.progress_total = &snap_total;
  core::Result<store::SnapshotResult> snap = Status::Unavailable("not run");
  {
    ProgressBar bar("snapshot " + req.package, &snap_bytes, &snap_total);
    snap = store::Snapshot(env, req.source_dir, &chunks, opts);
  }
  if (!snap.ok()) return std::move(snap).status().WithContext("snapshot of " + req.source_dir);
  result.snapshot_s = Since(t0);
  store::Manifest m;
  m.package_id = "0000000000000000";  // the site assigns the real id, version and time
  m.package_name = req.package;
  m.version = 1;
  m.created = core::FormatUtc(core::Clock::Real()->Now());
  m.description = req.description;
  m.programs = req.programs;
  m.chunker = chunker;
  m.entries = std::move(snap->entries);
  DEPOT_ASSIGN_OR_RETURN(std::string manifest, store::SerializeManifest(m));
  std::vector<store::ChunkRef> unique = m.UniqueChunks();
  result.files = m.FileCount();
  result.bytes = m.TotalFileBytes();
  result.chunks = unique.size();

  // 2. Which chunks does the site lack?
  auto t1 = std::chrono::steady_clock::now();
  std::vector<core::Digest> missing;
  constexpr std::size_t kQueryBatch = 20000;
  for (std::size_t i = 0; i < unique.size(); i += kQueryBatch) {
    Json ids = Json::array();
    for (std::size_t k = i; k < std::min(unique.size(), i + kQueryBatch); ++k) ids.push_back(core::DigestHex(unique[k].id));
    DEPOT_ASSIGN_OR_RETURN(Json answer, api->Send("POST", "/api/v1/chunks/missing", {{"chunks", ids}}, "upload"));
    if (!answer.contains("missing") || !answer["missing"].is_array()) {
      return Status::Unavailable("upload: the site's answer lacks the missing-chunk list");
    }
    for (const auto& hex : answer["missing"]) {
      if (!hex.is_string()) continue;
      DEPOT_ASSIGN_OR_RETURN(core::Digest id, core::ParseDigestHex(hex.get<std::string>()));
      missing.push_back(id);
    }
  }
  result.missing_chunks = missing.size();

  // 3. Upload them in batches over a few connections.
  std::unordered_map<core::Digest, std::uint32_t, store::ChunkIdHash> sizes;
  for (const auto& c : unique) sizes[c.id] = c.size;
  std::atomic<std::size_t> next{0};
  std::atomic<std::uint64_t> sent{0}, total_missing_bytes{0};
  for (const auto& id : missing) total_missing_bytes += sizes[id];
  std::mutex mu;
  Status first_error;
  std::atomic<bool> failed{false};
  unsigned workers = std::max(1u, std::min<unsigned>(req.parallel, 8));
  std::vector<std::unique_ptr<ApiClient>> clients;
  for (unsigned w = 0; w < workers; ++w) {
    DEPOT_ASSIGN_OR_RETURN(auto c, api->Clone());
    clients.push_back(std::move(c));
  }
  {
    ProgressBar bar("upload " + req.package, &sent, &total_missing_bytes);
    core::RunParallel(workers, [&](unsigned w) {
      std::string body;
      auto flush = [&]() -> Status {
        if (body.empty()) return Status::Ok();
        auto r = clients[w]->SendRaw("POST", "/api/v1/chunks", body, "application/vnd.depot.chunks", "upload");
        body.clear();
        return r.status();
      };
      std::uint64_t uploaded = 0;
      for (;;) {
        std::size_t i = next++;
        Status s;
        if (i < missing.size() && !failed) {
          auto frame = chunks.GetFrame(missing[i]);
          if (!frame.ok()) {
            s = frame.status();
          } else {
            if (body.size() + 40 + frame->size() > max_body) s = flush();
            body.append(reinterpret_cast<const char*>(missing[i].data()), 32);
            AppendLe32(&body, sizes[missing[i]]);
            AppendLe32(&body, static_cast<std::uint32_t>(frame->size()));
            body.append(*frame);
            uploaded += frame->size();
            sent += sizes[missing[i]];
          }
        } else {
          s = failed ? Status::Ok() : flush();
        }
        if (!s.ok()) {
          std::lock_guard<std::mutex> lock(mu);
          if (first_error.ok()) first_error = s;
          failed = true;
        }
        if (i >= missing.size() || failed) break;
      }
      std::lock_guard<std::mutex> lock(mu);
      result.uploaded_bytes += uploaded;
    });
  }
  if (!first_error.ok()) return first_error.WithContext("upload");
  result.upload_s = Since(t1);

  // 4. Commit: the site verifies, numbers, signs.
  auto t2 = std::chrono::steady_clock::now();
  std::string target = "/api/v1/packages/" + Escape(req.package) + "/versions" + (req.create ? "?create=1" : "");
  DEPOT_ASSIGN_OR_RETURN(result.version, api->SendRaw("POST", target, manifest, "application/json", "commit"));
  result.commit_s = Since(t2);
  return result;
}

}  // namespace depot::cli
