#include "http/curl_errors.h"

namespace depot::http {

using core::Status;

void CurlGlobalInit() {
  static const bool done = [] {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return true;
  }();
  (void)done;
}

Status CurlCodeStatus(CURLcode code, const std::string& url, const char* errbuf) {
  std::string msg = url + ": " + (errbuf != nullptr && *errbuf ? errbuf : curl_easy_strerror(code));
  switch (code) {
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
      return Status::InvalidArgument(std::move(msg));
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
      return Status::PermissionDenied(std::move(msg) + " (TLS certificate not trusted)");
    default:
      return Status::Unavailable(std::move(msg));
  }
}

Status HttpCodeStatus(long code, const std::string& url) {
  std::string msg = url + ": HTTP " + std::to_string(code);
  if (code == 404 || code == 410) return Status::NotFound(std::move(msg));
  if (code == 401 || code == 403) return Status::PermissionDenied(std::move(msg));
  return Status::Unavailable(std::move(msg));
}

}  // namespace depot::http
