#include "console/assets.h"

#include <algorithm>
#include <string>

namespace depot::console {

namespace {

constexpr std::string_view kPrefix = "/console/";

// Everything the console runs comes from this site; nothing may be framed or
// fetched from elsewhere, and no inline script or style runs.
constexpr const char* kPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

void SetCommonHeaders(http::Response* resp) {
  resp->SetHeader("Content-Security-Policy", kPolicy);
  resp->SetHeader("X-Content-Type-Options", "nosniff");
  resp->SetHeader("Referrer-Policy", "no-referrer");
  resp->SetHeader("X-Frame-Options", "DENY");
}

}  // namespace

const EmbeddedFile* FindFile(std::string_view path) {
  const auto& files = EmbeddedFiles();
  auto it = std::lower_bound(files.begin(), files.end(), path,
                             [](const EmbeddedFile& f, std::string_view p) { return f.path < p; });
  return it != files.end() && it->path == path ? &*it : nullptr;
}

std::string_view ContentType(std::string_view path) {
  static const std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".json", "application/json"},
      {".ico", "image/x-icon"},
  };
  for (const auto& [ext, type] : kTypes) {
    if (path.size() >= ext.size() && path.substr(path.size() - ext.size()) == ext) return type;
  }
  return "application/octet-stream";
}

bool IsConsolePath(std::string_view path) {
  return path == "/" || path == "/console" || path.rfind(kPrefix, 0) == 0;
}

void Serve(const http::Request& req, http::Response* resp) {
  if (req.method != "GET" && req.method != "HEAD") {
    *resp = http::Response::Text(405, req.method + " is not allowed on " + req.path + "\n");
    resp->SetHeader("Allow", "GET, HEAD");
    return;
  }
  std::string_view path = req.path;
  if (path == "/" || path == "/console") {
    *resp = http::Response::Text(302, "the console is at /console/\n");
    resp->SetHeader("Location", std::string(kPrefix));
    return;
  }
  std::string_view rel = path.substr(kPrefix.size());
  if (rel.empty()) rel = "index.html";
  const EmbeddedFile* f = FindFile(rel);
  if (f == nullptr) {
    *resp = http::Response::Text(404, "no such console file: " + std::string(path) + "\n");
    return;
  }
  const std::string etag(f->etag);
  const std::string* inm = req.GetHeader("if-none-match");
  if (inm != nullptr && *inm == etag) {
    *resp = http::Response::Text(304, "");
    resp->body.clear();
  } else {
    *resp = http::Response::Text(200, std::string(f->bytes));
    resp->SetHeader("Content-Type", std::string(ContentType(rel)));
  }
  resp->SetHeader("ETag", etag);
  // Revalidated on every load, so a new binary's console is used at once.
  resp->SetHeader("Cache-Control", "no-cache");
  SetCommonHeaders(resp);
}

}  // namespace depot::console
