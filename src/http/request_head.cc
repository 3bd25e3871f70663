#include "http/request_head.h"

#include <cctype>

namespace depot::http {

Request RequestOf(const boost::beast::http::request<boost::beast::http::string_body>& h,
                  const std::string& remote, bool tls,
                  std::chrono::steady_clock::time_point received) {
  Request req;
  req.method = std::string(h.method_string());
  req.target = std::string(h.target());
  req.remote_address = remote;
  req.tls = tls;
  req.received = received;
  for (const auto& f : h) {
    std::string name(f.name_string());
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    req.headers.push_back({std::move(name), std::string(f.value())});
  }
  return req;
}

bool SplitTarget(Request* req) {
  std::string_view t = req->target;
  auto qpos = t.find('?');
  auto decoded = PercentDecode(t.substr(0, qpos));
  if (!decoded.ok() || decoded->empty() || (*decoded)[0] != '/') return false;
  req->path = std::move(*decoded);
  if (qpos != std::string_view::npos) req->query = std::string(t.substr(qpos + 1));
  return true;
}

}  // namespace depot::http
