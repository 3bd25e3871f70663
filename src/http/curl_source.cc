#include "http/curl_source.h"

#include <curl/curl.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <deque>

#include "core/log.h"
#include "core/path.h"
#include "http/curl_errors.h"
#include "http/pipeline.h"
#include "http/static_files.h"

namespace depot::http {

using core::Status;

namespace {

// Chunks per batch request, and the sum of their length caps: a batch of small
// chunks (tens per MiB) saves most of the per-request cost, while what is in flight
// -- and fetched again after a kill -- stays near parallel x 1 MiB.
constexpr std::size_t kBatchChunks = 128;
constexpr std::uint64_t kBatchCapBytes = 1u << 20;
constexpr std::uint64_t kBatchLineBytes = 64 + 1 + 20 + 1;  // "<id> <n>\n" at most

// "chunks/ab/ab12...": the objects a batch can carry.
bool IsChunkPath(const std::string& p) {
  return p.size() == 7 + 3 + 64 && p.compare(0, 7, "chunks/") == 0 && p[9] == '/' &&
         p.compare(7, 2, p, 10, 2) == 0;
}

}  // namespace

// One easy handle with its per-transfer state; reused for keep-alive.
struct CurlSource::Handle {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;        // for GETs: authorization, if any
  curl_slist* batch_headers = nullptr;  // for batches: the same, no Expect, a type
  std::string body;
  std::vector<std::size_t> batch;  // request indices a batch carries; empty for a GET
  std::string post_body;
  std::uint64_t max_bytes = 0;
  bool too_big = false;
  std::string url;
  char errbuf[CURL_ERROR_SIZE] = {};
  std::size_t index = 0;  // request index during FetchMany

  ~Handle() {
    if (easy) curl_easy_cleanup(easy);
    if (headers) curl_slist_free_all(headers);
    if (batch_headers) curl_slist_free_all(batch_headers);
  }

  static std::size_t OnData(char* ptr, std::size_t size, std::size_t nmemb, void* user) {
    auto* h = static_cast<Handle*>(user);
    std::size_t n = size * nmemb;
    if (h->body.size() + n > h->max_bytes) {
      h->too_big = true;
      return 0;  // aborts the transfer: an endless response stops here
    }
    if (h->body.empty()) {
      // Room for the whole announced body at once (within the cap), instead of
      // growing by doubling and copying every chunk two or three times.
      curl_off_t announced = -1;
      if (curl_easy_getinfo(h->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) == CURLE_OK &&
          announced > 0) {
        h->body.reserve(static_cast<std::size_t>(
            std::min<std::uint64_t>(static_cast<std::uint64_t>(announced), h->max_bytes)));
      }
    }
    h->body.append(ptr, n);
    return n;
  }

  void Prepare(const std::string& full_url, std::uint64_t cap) {
    url = full_url;
    body.clear();
    batch.clear();
    too_big = false;
    max_bytes = cap;
    errbuf[0] = 0;
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    // Reject up front when the server announces a longer body.
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(cap));
  }

  // A chunk batch: POST the ids of `indices` (paths "chunks/xx/<id>").
  void PrepareBatch(const std::string& full_url, const std::vector<core::FetchRequest>& requests,
                    std::vector<std::size_t> indices) {
    std::uint64_t cap = 0;
    post_body.clear();
    for (std::size_t i : indices) {
      cap += requests[i].max_bytes + kBatchLineBytes;
      post_body.append(requests[i].path, 10, 64);
      post_body.push_back('\n');
    }
    Prepare(full_url, cap);
    batch = std::move(indices);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, batch_headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, post_body.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(post_body.size()));
  }

  // The body bytes that came over the wire: fewer than the decoded body when the
  // server sent it zstd-encoded (manifests).
  std::uint64_t WireBytes(std::uint64_t decoded) const {
    curl_off_t n = -1;
    if (curl_easy_getinfo(easy, CURLINFO_SIZE_DOWNLOAD_T, &n) == CURLE_OK && n >= 0) {
      return static_cast<std::uint64_t>(n);
    }
    return decoded;
  }

  core::Result<std::string> Finish(CURLcode rc) {
    if (too_big || rc == CURLE_FILESIZE_EXCEEDED) {
      return Status::Corruption(url + ": response longer than the " + std::to_string(max_bytes) +
                                " bytes expected");
    }
    if (rc != CURLE_OK) return CurlCodeStatus(rc, url, errbuf);
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299) return HttpCodeStatus(code, url);
    std::string out;
    out.swap(body);
    return out;
  }
};

core::Result<std::unique_ptr<CurlSource>> CurlSource::Create(std::string base_url,
                                                             CurlOptions options) {
  if (base_url.rfind("http://", 0) != 0 && base_url.rfind("https://", 0) != 0) {
    return Status::InvalidArgument("source URL '" + base_url +
                                   "' must start with http:// or https://");
  }
  while (!base_url.empty() && base_url.back() == '/') base_url.pop_back();
  CurlGlobalInit();
  return std::unique_ptr<CurlSource>(new CurlSource(std::move(base_url), std::move(options)));
}

CurlSource::CurlSource(std::string base_url, CurlOptions options)
    : base_url_(std::move(base_url)), options_(std::move(options)) {}

CurlSource::~CurlSource() = default;

std::unique_ptr<CurlSource::Handle> CurlSource::TakeHandle() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      auto h = std::move(idle_.back());
      idle_.pop_back();
      return h;
    }
  }
  auto h = std::make_unique<Handle>();
  h->easy = curl_easy_init();
  CURL* e = h->easy;
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Handle::OnData);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, h.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, h->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, static_cast<long>(options_.connect_timeout_s));
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, static_cast<long>(options_.low_speed_bytes));
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options_.low_speed_time_s));
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  // Chunks are 16-256 KiB: a receive buffer of that order takes a chunk in one or
  // two reads instead of libcurl's default 16 KiB pieces (fewer recv calls and
  // write callbacks per chunk; 64 handles at most, so at most 16 MiB).
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 256L * 1024);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  // Manifests come zstd-encoded from depot servers; libcurl decodes them, and the
  // decoded bytes are what the caller's length cap (OnData: a decompression bomb
  // stops there) and hash check apply to. Only zstd is asked for.
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "zstd");
  if (!options_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
  if (options_.max_rate_bytes) {
    curl_easy_setopt(e, CURLOPT_MAX_RECV_SPEED_LARGE,
                     static_cast<curl_off_t>(options_.max_rate_bytes));
  }
  if (!options_.bearer_token.empty()) {
    std::string auth = "Authorization: Bearer " + options_.bearer_token;
    h->headers = curl_slist_append(h->headers, auth.c_str());
    h->batch_headers = curl_slist_append(h->batch_headers, auth.c_str());
  }
  // A batch is a few KiB of ids: no 100-continue round trip before it.
  h->batch_headers = curl_slist_append(h->batch_headers, "Expect:");
  h->batch_headers = curl_slist_append(h->batch_headers, "Content-Type: text/plain");
  curl_easy_setopt(e, CURLOPT_USERAGENT, "depot/0.1");
  return h;
}

void CurlSource::ReturnHandle(std::unique_ptr<Handle> h) {
  std::lock_guard<std::mutex> lock(mu_);
  if (idle_.size() < 64) idle_.push_back(std::move(h));
}

namespace {
// Recycled bodies kept at most: a fetch's transfers in flight plus its workers'
// queues; larger buffers (a manifest) are not kept.
constexpr std::size_t kMaxSpare = 512;
constexpr std::size_t kMaxSpareCapacity = 4u << 20;
}  // namespace

std::string CurlSource::TakeSpare() {
  std::lock_guard<std::mutex> lock(mu_);
  if (spare_.empty()) return {};
  std::string s = std::move(spare_.back());
  spare_.pop_back();
  return s;
}

void CurlSource::Recycle(std::string buffer) {
  if (buffer.capacity() == 0 || buffer.capacity() > kMaxSpareCapacity) return;
  buffer.clear();
  std::lock_guard<std::mutex> lock(mu_);
  if (spare_.size() < kMaxSpare) spare_.push_back(std::move(buffer));
}

core::Result<std::string> CurlSource::Fetch(const std::string& path, std::uint64_t max_bytes) {
  DEPOT_RETURN_IF_ERROR(core::ValidateRelativePath(path));
  auto h = TakeHandle();
  if (h->easy == nullptr) return Status::Unavailable("libcurl: cannot create a handle");
  h->Prepare(base_url_ + "/" + path, max_bytes);
  CURLcode rc = curl_easy_perform(h->easy);
  auto result = h->Finish(rc);
  CountBytes(h->WireBytes(h->body.size() + (result.ok() ? result->size() : 0)));
  ReturnHandle(std::move(h));
  return result;
}

namespace {

// Runs shorter than this are not worth a pipeline's connections.
constexpr std::size_t kMinPipelined = 8;

bool ProxyInEnvironment() {
  // libcurl's variables for http:// URLs (it ignores upper-case HTTP_PROXY).
  for (const char* name : {"http_proxy", "all_proxy", "ALL_PROXY"}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') return true;
  }
  return false;
}

}  // namespace

Status CurlSource::FetchMany(
    const std::vector<core::FetchRequest>& requests, unsigned parallel,
    const std::function<bool(std::size_t, core::Result<std::string>)>& on_done) {
  PipelineTarget target;
  // Batches first where they may exist (a depot server answers the first one); else
  // a pipeline where the server is plain HTTP and nothing sits in between.
  bool batches_first = options_.chunk_batches && !batches_refused_.load();
  if (!options_.pipelining || batches_first || pipeline_refused_.load() ||
      options_.max_rate_bytes != 0 || requests.size() < kMinPipelined || ProxyInEnvironment() ||
      !ParsePlainHttpUrl(base_url_, &target)) {
    return CurlFetchMany(requests, parallel, on_done);
  }
  PipelineOptions po;
  po.connections = std::max(1u, std::min(parallel, 4u));
  po.depth = one_at_a_time_.load() ? 1 : 32;
  po.connect_timeout_s = options_.connect_timeout_s;
  po.stall_timeout_s = options_.low_speed_time_s;
  po.bearer_token = options_.bearer_token;
  PipelineHooks hooks;
  hooks.on_done = on_done;
  hooks.take_buffer = [this] { return TakeSpare(); };
  hooks.count_bytes = [this](std::uint64_t n) { CountBytes(n); };
  std::vector<std::size_t> all(requests.size());
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
  PipelineOutcome out = PipelinedGet(target, po, requests, all, hooks);
  if (out.no_pipelining) one_at_a_time_ = true;
  if (out.stopped || out.rest.empty()) return Status::Ok();
  // Answers this client cannot take in a pipeline: libcurl for the rest, and for
  // this source from now on.
  pipeline_refused_ = true;
  core::Log(core::LogLevel::kInfo, "http.pipeline_fallback",
            {{"source", base_url_}, {"why", out.why_rest}});
  std::vector<core::FetchRequest> rest;
  rest.reserve(out.rest.size());
  for (std::size_t i : out.rest) rest.push_back(requests[i]);
  return CurlFetchMany(rest, parallel, [&](std::size_t k, core::Result<std::string> r) {
    return on_done(out.rest[k], std::move(r));
  });
}

// One CurlFetchMany call: its transfers on one libcurl multi handle, the requests
// still to start and the chunks a batch answer left for single GETs.
class CurlSource::MultiFetch {
 public:
  MultiFetch(CurlSource* source, CURLM* multi, const std::vector<core::FetchRequest>& requests,
             unsigned parallel,
             const std::function<bool(std::size_t, core::Result<std::string>)>& on_done)
      : source_(source),
        multi_(multi),
        requests_(requests),
        parallel_(parallel),
        on_done_(on_done) {}

  // Runs every transfer to its end (or until on_done asks to stop), then frees the
  // multi handle.
  Status Run() {
    stop_ = !Fill();
    Status result = Drive();
    for (auto& h : active_) curl_multi_remove_handle(multi_, h->easy);
    active_.clear();  // abandoned transfers: their connections close with the handles
    curl_multi_cleanup(multi_);
    if (!result.ok()) return result;
    if (stop_) return Status::Unavailable("fetch from " + source_->base_url_ + " stopped");
    return Status::Ok();
  }

 private:
  // Performs transfers until none is active or on_done asked to stop. Not OK only
  // when libcurl's multi interface itself failed.
  Status Drive() {
    while (!active_.empty()) {
      int running = 0;
      CURLMcode mc = curl_multi_perform(multi_, &running);
      if (mc != CURLM_OK) {
        return Status::Unavailable(std::string("libcurl multi: ") + curl_multi_strerror(mc));
      }
      int queued = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi_, &queued)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Complete(msg);
        if (!stop_) stop_ = !Fill();
      }
      if (active_.empty()) break;
      if (stop_) break;
      curl_multi_poll(multi_, nullptr, 0, 1000, nullptr);
    }
    return Status::Ok();
  }

  // Detaches a finished transfer and hands out what it brought.
  void Complete(CURLMsg* msg) {
    Handle* raw = nullptr;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&raw));
    CURLcode rc = msg->data.result;
    curl_multi_remove_handle(multi_, msg->easy_handle);
    auto it = std::find_if(active_.begin(), active_.end(),
                           [&](const std::unique_ptr<Handle>& p) { return p.get() == raw; });
    std::unique_ptr<Handle> h = std::move(*it);
    active_.erase(it);
    if (!h->batch.empty()) {
      if (!stop_ && !FinishBatch(h.get(), rc)) stop_ = true;
      h->body.clear();
      source_->ReturnHandle(std::move(h));
    } else {
      auto body = h->Finish(rc);
      source_->CountBytes(h->WireBytes(body.ok() ? body->size() : h->body.size()));
      std::size_t index = h->index;
      source_->ReturnHandle(std::move(h));
      if (!stop_ && !on_done_(index, std::move(body))) stop_ = true;
    }
  }

  bool Fill() {
    while (active_.size() < parallel_ && (next_ < requests_.size() || !singles_.empty())) {
      if (!StartOne()) return false;
    }
    return true;
  }

  // The request indices the next transfer carries: one single, or a run of the
  // consecutive chunk requests that come next. Empty when nothing is left to start.
  std::vector<std::size_t> TakeNext() {
    std::vector<std::size_t> take;
    if (!singles_.empty()) {
      take.push_back(singles_.front());
      singles_.pop_front();
    } else if (next_ < requests_.size()) {
      std::uint64_t caps = 0;
      bool batches = source_->options_.chunk_batches && !source_->batches_refused_.load();
      do {
        caps += requests_[next_].max_bytes;
        take.push_back(next_++);
      } while (batches && IsChunkPath(requests_[take.front()].path) && next_ < requests_.size() &&
               take.size() < kBatchChunks && IsChunkPath(requests_[next_].path) &&
               caps + requests_[next_].max_bytes <= kBatchCapBytes);
    }
    return take;
  }

  // Starts the next transfer: a single GET, or a batch of the consecutive chunk
  // requests that come next. Returns false when on_done asked to stop.
  bool StartOne() {
    for (;;) {
      std::vector<std::size_t> take = TakeNext();
      if (take.empty()) return true;
      auto h = source_->TakeHandle();
      if (take.size() > 1) {
        h->PrepareBatch(source_->base_url_ + "/" + std::string(kChunkBatchPath), requests_,
                        std::move(take));
      } else {
        std::size_t i = take.front();
        Status valid = core::ValidateRelativePath(requests_[i].path);
        if (!valid.ok()) {
          source_->ReturnHandle(std::move(h));
          if (!on_done_(i, valid)) return false;
          continue;
        }
        h->index = i;
        if (h->body.capacity() == 0) h->body = source_->TakeSpare();
        h->Prepare(source_->base_url_ + "/" + requests_[i].path, requests_[i].max_bytes);
      }
      curl_easy_setopt(h->easy, CURLOPT_PRIVATE, h.get());
      curl_multi_add_handle(multi_, h->easy);
      active_.push_back(std::move(h));
      return true;
    }
  }

  // Hands out what a finished batch carried; the rest goes to `singles_`. Returns
  // false when on_done asked to stop.
  bool FinishBatch(Handle* h, CURLcode rc) {
    long code = 0;
    curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &code);
    std::string type;
    struct curl_header* ct = nullptr;
    if (curl_easy_header(h->easy, "Content-Type", 0, CURLH_HEADER, -1, &ct) == CURLHE_OK)
      type = ct->value;
    bool answered = code == 200 && type == kChunkBatchContentType;
    bool refused = rc == CURLE_OK && !answered &&
                   (code == 200 || code == 501 || (code >= 400 && code < 500 && code != 429));
    // A server that never answered a batch and drops the connection instead may
    // simply not take POSTs with a body it does not read: it gets the benefit of the
    // doubt, and its GETs tell whether it is down.
    if (rc != CURLE_OK && !source_->batches_answered_.load()) refused = true;
    if (refused) {
      // Not a depot server (nginx: 405; 501 "not implemented"), or one that does not
      // take batches: plain GETs from now on. Other server errors (5xx, 429) are only
      // failures, retried later.
      source_->batches_refused_ = true;
      source_->CountBytes(h->WireBytes(h->body.size()));
      singles_.insert(singles_.end(), h->batch.begin(), h->batch.end());
      return true;
    }
    auto body = h->Finish(rc);
    source_->CountBytes(h->WireBytes(body.ok() ? body->size() : h->body.size()));
    if (!body.ok()) {
      for (std::size_t i : h->batch) {
        if (!on_done_(i, body.status())) return false;
      }
      return true;
    }
    source_->batches_answered_ = true;
    return CutBatch(h, *body);
  }

  // Cuts the answer `rest` of batch `h` into its chunks and hands them out; chunks it
  // says it does not carry ("-") go to `singles_`. Returns false when on_done asked
  // to stop.
  bool CutBatch(Handle* h, std::string_view rest) {
    std::size_t k = 0;
    for (; k < h->batch.size(); ++k) {
      std::size_t i = h->batch[k];
      std::string_view id = std::string_view(requests_[i].path).substr(10);
      std::size_t nl = rest.find('\n');
      if (nl == std::string_view::npos || nl > kBatchLineBytes || rest.substr(0, 64) != id ||
          nl < 66 || rest[64] != ' ') {
        break;
      }
      std::string_view n = rest.substr(65, nl - 65);
      rest.remove_prefix(nl + 1);
      if (n == "-") {
        singles_.push_back(i);
        continue;
      }
      std::uint64_t size = 0;
      auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), size);
      if (ec != std::errc() || end != n.data() + n.size() || size > rest.size()) break;
      if (size > requests_[i].max_bytes) {
        rest.remove_prefix(size);
        Status s = Status::Corruption(h->url + ": " + requests_[i].path + " is longer than the " +
                                      std::to_string(requests_[i].max_bytes) + " bytes expected");
        if (!on_done_(i, std::move(s))) return false;
        continue;
      }
      std::string frame = source_->TakeSpare();
      frame.assign(rest.data(), size);
      rest.remove_prefix(size);
      if (!on_done_(i, std::move(frame))) return false;
    }
    for (; k < h->batch.size(); ++k) {
      // A malformed answer: what could not be cut out of it counts as bad bytes
      // from this source (retried by the caller like any other).
      if (!on_done_(h->batch[k], Status::Corruption(h->url + ": malformed chunk batch answer")))
        return false;
    }
    return true;
  }

  CurlSource* source_;
  CURLM* multi_;
  const std::vector<core::FetchRequest>& requests_;
  unsigned parallel_;
  const std::function<bool(std::size_t, core::Result<std::string>)>& on_done_;
  std::vector<std::unique_ptr<Handle>> active_;  // owned while attached to `multi_`
  std::size_t next_ = 0;
  std::deque<std::size_t> singles_;  // chunks a batch answer did not carry: one GET each
  bool stop_ = false;
};

Status CurlSource::CurlFetchMany(
    const std::vector<core::FetchRequest>& requests, unsigned parallel,
    const std::function<bool(std::size_t, core::Result<std::string>)>& on_done) {
  if (requests.empty()) return Status::Ok();
  parallel = std::max(1u, std::min<unsigned>(parallel, 64));
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return Status::Unavailable("libcurl: cannot create a multi handle");
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(parallel));
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(parallel));
  return MultiFetch(this, multi, requests, parallel, on_done).Run();
}

}  // namespace depot::http
