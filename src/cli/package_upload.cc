#include "cli/package_upload.h"

#include <cstring>
#include <mutex>
#include <set>
#include <thread>

#include "cli/output.h"
#include "core/env.h"
#include "core/hex.h"
#include "core/parallel.h"
#include "store/snapshot.h"

namespace depot::cli {

using core::Status;

namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void AppendLe32(std::string* out, std::uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);  // little-endian hosts (x86-64, aarch64)
  out->append(b, 4);
}

// Receives the snapshot's chunks and uploads the ones the site lacks: each uploader
// thread takes a batch of up to `max_body` bytes from a bounded queue, asks the site
// which of its chunks are missing, and sends those in one request.
class UploadSink final : public store::ChunkSink {
 public:
  UploadSink(std::vector<std::unique_ptr<ApiClient>> clients, std::uint64_t max_body)
      : clients_(std::move(clients)), max_body_(max_body), queue_(256) {
    for (std::size_t i = 0; i < clients_.size(); ++i) {
      threads_.emplace_back([this, i] { Upload(clients_[i].get()); });
    }
  }
  ~UploadSink() override { Finish().IgnoreError(); }

  Status Put(const store::ChunkId& id, std::uint32_t size, std::string_view frame) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_.ok()) return error_;
    }
    if (!queue_.Push(Item{id, size, std::string(frame)})) return Error();
    return Status::Ok();
  }

  // Waits for every queued chunk to be uploaded; the first upload error, if any.
  Status Finish() {
    queue_.Close();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
    return Error();
  }

  std::atomic<std::uint64_t> offered{0}, uploaded_chunks{0}, uploaded_bytes{0};

 private:
  struct Item {
    store::ChunkId id;
    std::uint32_t size;
    std::string frame;
  };

  Status Error() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

  void Fail(Status s) {
    std::lock_guard<std::mutex> lock(mu_);
    if (error_.ok()) error_ = std::move(s);
  }

  void Upload(ApiClient* api) {
    std::vector<Item> batch;
    std::uint64_t bytes = 0;
    bool closed = false;
    while (!closed) {
      auto item = queue_.Pop();
      if (item) {
        bytes += 40 + item->frame.size();
        batch.push_back(std::move(*item));
        offered += batch.back().size;
      } else {
        closed = true;
      }
      if (batch.empty() || (!closed && bytes < max_body_ - (256u << 10) && batch.size() < 4096)) continue;
      Status s = SendBatch(api, &batch);
      if (!s.ok()) {
        Fail(s);
        queue_.Close();  // the snapshot's next Put sees the error
        while (queue_.Pop()) {
        }
        return;
      }
      batch.clear();
      bytes = 0;
    }
  }

  Status SendBatch(ApiClient* api, std::vector<Item>* batch) {
    Json ids = Json::array();
    for (const auto& it : *batch) ids.push_back(core::DigestHex(it.id));
    DEPOT_ASSIGN_OR_RETURN(Json answer, api->Send("POST", "/api/v1/chunks/missing", {{"chunks", ids}}, "upload"));
    if (!answer.contains("missing") || !answer["missing"].is_array()) {
      return Status::Unavailable("upload: the site's answer lacks the missing-chunk list");
    }
    std::set<std::string> missing;
    for (const auto& m : answer["missing"]) {
      if (m.is_string()) missing.insert(m.get<std::string>());
    }
    if (missing.empty()) return Status::Ok();
    std::string body;
    std::uint64_t chunks = 0, frame_bytes = 0;
    for (const auto& it : *batch) {
      if (!missing.count(core::DigestHex(it.id))) continue;
      body.append(reinterpret_cast<const char*>(it.id.data()), 32);
      AppendLe32(&body, it.size);
      AppendLe32(&body, static_cast<std::uint32_t>(it.frame.size()));
      body.append(it.frame);
      ++chunks;
      frame_bytes += it.frame.size();
    }
    DEPOT_RETURN_IF_ERROR(
        api->SendRaw("POST", "/api/v1/chunks", body, "application/vnd.depot.chunks", "upload").status());
    uploaded_chunks += chunks;
    uploaded_bytes += frame_bytes;
    return Status::Ok();
  }

  std::vector<std::unique_ptr<ApiClient>> clients_;
  std::uint64_t max_body_;
  core::BlockingQueue<Item> queue_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  Status error_;
};

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
  max_body = std::max<std::uint64_t>(max_body, chunker.max_size + (512u << 10));

  std::vector<std::unique_ptr<ApiClient>> clients;
  unsigned workers = std::max(1u, std::min<unsigned>(req.parallel, 8));
  for (unsigned w = 0; w < workers; ++w) {
    DEPOT_ASSIGN_OR_RETURN(auto c, api->Clone());
    clients.push_back(std::move(c));
  }
  UploadSink sink(std::move(clients), max_body);

  // 1. Snapshot, streaming chunks to the uploaders as they are made.
  auto t0 = std::chrono::steady_clock::now();
  std::atomic<std::uint64_t> snap_bytes{0}, snap_files{0}, snap_total{0};
  store::SnapshotOptions opts;
  opts.chunker = chunker;
  opts.compression_level = level;
  opts.sink = &sink;
  opts.progress_bytes = &snap_bytes;
  opts.progress_files = &snap_files;
  opts.progress_total = &snap_total;
  core::Result<store::SnapshotResult> snap = Status::Unavailable("not run");
  {
    ProgressBar bar("snapshot+upload " + req.package, &snap_bytes, &snap_total);
    snap = store::Snapshot(env, req.source_dir, nullptr, opts);
  }
  result.snapshot_s = Since(t0);
  // 2. The uploads still queued.
  auto t1 = std::chrono::steady_clock::now();
  Status uploaded = sink.Finish();
  result.upload_s = Since(t1);
  if (!snap.ok()) return std::move(snap).status().WithContext("snapshot of " + req.source_dir);
  DEPOT_RETURN_IF_ERROR(uploaded.WithContext("upload"));
  result.missing_chunks = sink.uploaded_chunks;
  result.uploaded_bytes = sink.uploaded_bytes;

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
  result.files = m.FileCount();
  result.bytes = m.TotalFileBytes();
  result.chunks = m.UniqueChunks().size();

  // 3. Commit: the site verifies, numbers, signs.
  auto t2 = std::chrono::steady_clock::now();
  std::string target = "/api/v1/packages/" + Escape(req.package) + "/versions" + (req.create ? "?create=1" : "");
  DEPOT_ASSIGN_OR_RETURN(result.version, api->SendRaw("POST", target, manifest, "application/json", "commit"));
  result.commit_s = Since(t2);
  return result;
}

}  // namespace depot::cli
