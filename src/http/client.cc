#include "http/client.h"

#include <curl/curl.h>

#include <nlohmann/json.hpp>

#include "core/log.h"
#include "http/curl_errors.h"

namespace depot::http {

using core::Status;

const std::string* ClientResponse::GetHeader(std::string_view name) const {
  return FindHeader(headers, name);
}

struct Client::Impl {
  CURL* easy = nullptr;
  ClientResponse* current = nullptr;
  std::uint64_t max_bytes = 0;
  bool too_big = false;
  char errbuf[CURL_ERROR_SIZE] = {};

  ~Impl() {
    if (easy != nullptr) curl_easy_cleanup(easy);
  }

  static std::size_t OnData(char* ptr, std::size_t size, std::size_t nmemb, void* user) {
    auto* impl = static_cast<Impl*>(user);
    std::size_t n = size * nmemb;
    if (impl->current->body.size() + n > impl->max_bytes) {
      impl->too_big = true;
      return 0;
    }
    impl->current->body.append(ptr, n);
    return n;
  }

  static int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
    const auto* flag = static_cast<const std::atomic<bool>*>(user);
    return flag != nullptr && flag->load() ? 1 : 0;  // non-zero aborts the transfer
  }

  static std::size_t OnHeader(char* ptr, std::size_t size, std::size_t nmemb, void* user) {
    auto* impl = static_cast<Impl*>(user);
    std::size_t n = size * nmemb;
    std::string_view line(ptr, n);
    if (line.rfind("HTTP/", 0) == 0) {
      impl->current->headers.clear();  // a new response (after 100 Continue)
      return n;
    }
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return n;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t'))
      value.remove_prefix(1);
    while (!value.empty() &&
           (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
      value.remove_suffix(1);
    }
    impl->current->headers.push_back({std::move(name), std::string(value)});
    return n;
  }
};

Client::Client(std::vector<std::string> bases, ClientOptions options)
    : bases_(std::move(bases)), options_(std::move(options)), impl_(new Impl) {
  core::Clock* clock = options_.clock != nullptr ? options_.clock : core::Clock::Real();
  for (std::size_t i = 0; i < bases_.size(); ++i)
    backoffs_.emplace_back(clock,
                           core::BackoffPolicy{std::chrono::seconds(1), std::chrono::minutes(1)});
}

Client::~Client() = default;

core::Result<std::unique_ptr<Client>> Client::Create(std::string base_url, ClientOptions options) {
  std::vector<std::string> bases = {std::move(base_url)};
  for (const std::string& u : options.fallback_urls) bases.push_back(u);
  for (std::string& u : bases) {
    if (u.rfind("http://", 0) != 0 && u.rfind("https://", 0) != 0) {
      return Status::InvalidArgument("URL '" + u + "' must start with http:// or https://");
    }
    while (!u.empty() && u.back() == '/') u.pop_back();
  }
  CurlGlobalInit();
  std::unique_ptr<Client> c(new Client(std::move(bases), std::move(options)));
  c->impl_->easy = curl_easy_init();
  if (c->impl_->easy == nullptr) return Status::Unavailable("libcurl: cannot create a handle");
  return c;
}

std::size_t Client::NextDue() const {
  for (std::size_t step = 1; step < bases_.size(); ++step) {
    const std::size_t i = (current_ + step) % bases_.size();
    if (backoffs_[i].Due()) return i;
  }
  return std::string::npos;
}

core::Result<ClientResponse> Client::Do(std::string_view method, std::string_view target,
                                        std::string_view body, std::string_view content_type,
                                        const std::vector<std::string>& extra_headers,
                                        long timeout_s) {
  const bool idempotent = method == "GET" || method == "HEAD";
  for (std::size_t tried = 0;; ++tried) {
    bool sent = false;
    auto r = DoOnce(bases_[current_], method, target, body, content_type, extra_headers, timeout_s,
                    &sent);
    const bool stopping = abort_ != nullptr && abort_->load();
    const long code = r.ok() ? r->status : 0;
    const bool failed = r.ok() ? code == 502 || code == 503 || code == 504
                               : r.status().IsUnavailable() && !stopping;
    if (!failed) {
      backoffs_[current_].Succeeded();
      return r;
    }
    if (bases_.size() == 1) return r;
    backoffs_[current_].Failed();
    const std::size_t next = NextDue();
    if (next == std::string::npos || tried + 1 >= bases_.size()) return r;
    core::Log(core::LogLevel::kWarn, "http.failover",
              {{"from", bases_[current_]},
               {"to", bases_[next]},
               {"error", r.ok() ? "HTTP " + std::to_string(code) : r.status().ToString()}});
    current_ = next;
    const bool unprocessed = !sent || code == 502 || code == 503;
    if (!unprocessed && !idempotent) return r;
  }
}

core::Result<ClientResponse> Client::DoOnce(const std::string& base, std::string_view method,
                                            std::string_view target, std::string_view body,
                                            std::string_view content_type,
                                            const std::vector<std::string>& extra_headers,
                                            long timeout_s, bool* sent) {
  CURL* e = impl_->easy;
  curl_easy_reset(e);  // keeps the connection cache
  ClientResponse resp;
  impl_->current = &resp;
  impl_->too_big = false;
  impl_->max_bytes = options_.max_response_bytes;
  impl_->errbuf[0] = 0;
  std::string url = base + std::string(target);
  std::string m(method);
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Impl::OnData);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, impl_.get());
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Impl::OnHeader);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, impl_.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, impl_->errbuf);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, options_.connect_timeout_s);
  long timeout = timeout_s >= 0 ? timeout_s : options_.timeout_s;
  curl_easy_setopt(e, CURLOPT_TIMEOUT, timeout);
  curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_USERAGENT, "depot/0.1");
  if (!options_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
  if (abort_ != nullptr) {
    if (abort_->load()) return Status::Unavailable(url + ": stopping");
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, &Impl::OnProgress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, abort_);
  }
  curl_slist* headers = nullptr;
  if (!options_.bearer_token.empty()) {
    headers =
        curl_slist_append(headers, ("Authorization: Bearer " + options_.bearer_token).c_str());
  }
  // No "Expect: 100-continue" round trip before bodies.
  headers = curl_slist_append(headers, "Expect:");
  bool has_body = !body.empty() || m == "POST" || m == "PUT" || m == "PATCH";
  if (has_body) {
    headers = curl_slist_append(headers, ("Content-Type: " + std::string(content_type)).c_str());
  }
  for (const std::string& h : extra_headers) headers = curl_slist_append(headers, h.c_str());
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  if (m == "HEAD") {
    curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  } else if (m != "GET") {
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m.c_str());
  }
  if (has_body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  CURLcode rc = curl_easy_perform(e);
  curl_slist_free_all(headers);
  long request_bytes = 0;
  curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &request_bytes);
  *sent = request_bytes > 0;
  impl_->current = nullptr;
  if (impl_->too_big) {
    return Status::Corruption(url + ": response longer than " +
                              std::to_string(options_.max_response_bytes) + " bytes");
  }
  if (rc != CURLE_OK) return CurlCodeStatus(rc, url, impl_->errbuf);
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &resp.status);
  return resp;
}

Status ApiError(const ClientResponse& r, std::string_view what) {
  if (r.status >= 200 && r.status <= 299) return Status::Ok();
  std::string message;
  std::string code;
  nlohmann::json j = nlohmann::json::parse(r.body, nullptr, false);
  if (!j.is_discarded() && j.is_object() && j.contains("error") && j["error"].is_object()) {
    const auto& err = j["error"];
    if (err.contains("message") && err["message"].is_string()) {
      message = err["message"].get<std::string>();
    }
    if (err.contains("code") && err["code"].is_string()) code = err["code"].get<std::string>();
  }
  if (message.empty()) {
    message = "HTTP " + std::to_string(r.status) + " " +
              std::string(ReasonPhrase(static_cast<int>(r.status)));
  }
  std::string msg = std::string(what) + ": " + message;
  if (code == "NotFound" || (code.empty() && (r.status == 404 || r.status == 410))) {
    return Status::NotFound(std::move(msg));
  }
  if (code == "PermissionDenied" || (code.empty() && (r.status == 401 || r.status == 403))) {
    return Status::PermissionDenied(std::move(msg));
  }
  if (code == "InvalidArgument" || (code.empty() && (r.status == 400 || r.status == 409 ||
                                                     r.status == 413 || r.status == 422))) {
    return Status::InvalidArgument(std::move(msg));
  }
  if (code == "Corruption") return Status::Corruption(std::move(msg));
  if (code == "IOError") return Status::IOError(std::move(msg));
  return Status::Unavailable(std::move(msg));
}

}  // namespace depot::http
