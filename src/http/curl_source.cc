#include "http/curl_source.h"

#include <curl/curl.h>

#include <algorithm>
#include <deque>

#include "core/path.h"
#include "http/curl_errors.h"

namespace depot::http {

using core::Status;

namespace {

Status HttpStatus(long code, const std::string& url) {
  std::string msg = url + ": HTTP " + std::to_string(code);
  if (code == 404 || code == 410) return Status::NotFound(std::move(msg));
  if (code == 401 || code == 403) return Status::PermissionDenied(std::move(msg));
  return Status::Unavailable(std::move(msg));
}

}  // namespace

// One easy handle with its per-transfer state; reused for keep-alive.
struct CurlSource::Handle {
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  std::string body;
  std::uint64_t max_bytes = 0;
  bool too_big = false;
  std::string url;
  char errbuf[CURL_ERROR_SIZE] = {};
  std::size_t index = 0;  // request index during FetchMany

  ~Handle() {
    if (easy) curl_easy_cleanup(easy);
    if (headers) curl_slist_free_all(headers);
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
    too_big = false;
    max_bytes = cap;
    errbuf[0] = 0;
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    // Reject up front when the server announces a longer body.
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(cap));
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
    if (code < 200 || code > 299) return HttpStatus(code, url);
    std::string out;
    out.swap(body);
    return out;
  }
};

core::Result<std::unique_ptr<CurlSource>> CurlSource::Create(std::string base_url,
                                                             CurlOptions options) {
  if (base_url.rfind("http://", 0) != 0 && base_url.rfind("https://", 0) != 0) {
    return Status::InvalidArgument("source URL '" + base_url + "' must start with http:// or https://");
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
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
  }
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

Status CurlSource::FetchMany(
    const std::vector<core::FetchRequest>& requests, unsigned parallel,
    const std::function<bool(std::size_t, core::Result<std::string>)>& on_done) {
  if (requests.empty()) return Status::Ok();
  parallel = std::max(1u, std::min<unsigned>(parallel, 64));
  CURLM* multi = curl_multi_init();
  if (multi == nullptr) return Status::Unavailable("libcurl: cannot create a multi handle");
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, static_cast<long>(parallel));
  curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, static_cast<long>(parallel));

  std::vector<std::unique_ptr<Handle>> active;  // owned while attached to `multi`
  std::size_t next = 0;
  bool stop = false;
  Status result;

  auto start_one = [&]() -> bool {
    while (next < requests.size()) {
      std::size_t i = next++;
      Status valid = core::ValidateRelativePath(requests[i].path);
      if (!valid.ok()) {
        if (!on_done(i, valid)) return false;
        continue;
      }
      auto h = TakeHandle();
      h->index = i;
      if (h->body.capacity() == 0) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!spare_.empty()) {
          h->body = std::move(spare_.back());
          spare_.pop_back();
        }
      }
      h->Prepare(base_url_ + "/" + requests[i].path, requests[i].max_bytes);
      curl_easy_setopt(h->easy, CURLOPT_PRIVATE, h.get());
      curl_multi_add_handle(multi, h->easy);
      active.push_back(std::move(h));
      return true;
    }
    return true;
  };
  for (unsigned k = 0; k < parallel && next < requests.size() && !stop; ++k) stop = !start_one();

  while (!active.empty()) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi, &running);
    if (mc != CURLM_OK) {
      result = Status::Unavailable(std::string("libcurl multi: ") + curl_multi_strerror(mc));
      break;
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      Handle* raw = nullptr;
      curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, reinterpret_cast<char**>(&raw));
      CURLcode rc = msg->data.result;
      curl_multi_remove_handle(multi, msg->easy_handle);
      auto it = std::find_if(active.begin(), active.end(),
                             [&](const std::unique_ptr<Handle>& p) { return p.get() == raw; });
      std::unique_ptr<Handle> h = std::move(*it);
      active.erase(it);
      auto body = h->Finish(rc);
      CountBytes(h->WireBytes(body.ok() ? body->size() : h->body.size()));
      std::size_t index = h->index;
      ReturnHandle(std::move(h));
      if (!stop && !on_done(index, std::move(body))) stop = true;
      if (!stop) stop = !start_one();
    }
    if (active.empty()) break;
    if (stop) break;
    curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
  }
  for (auto& h : active) curl_multi_remove_handle(multi, h->easy);
  active.clear();  // abandoned transfers: their connections close with the handles
  curl_multi_cleanup(multi);
  if (!result.ok()) return result;
  if (stop) return Status::Unavailable("fetch from " + base_url_ + " stopped");
  return Status::Ok();
}

}  // namespace depot::http
