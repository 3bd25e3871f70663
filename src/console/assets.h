// The web console's files (src/console/web/), built into the binary by
// embed.cmake, and the answer to a request for one of them (docs/console.md).
//
// The console is static: plain HTML, CSS and JavaScript modules that call the
// site's JSON API with the bearer token the person signed in with. Nothing here
// reads a credential; the API under /api/v1/ enforces every role.
#pragma once

#include <string_view>
#include <vector>

#include "http/server.h"

namespace depot::console {

// One embedded file: `path` relative to web/ ("index.html", "pages/dps.js"), and
// its strong ETag (the first 128 bits of its SHA-256, quoted; made at build time).
struct EmbeddedFile {
  std::string_view path;
  std::string_view bytes;
  std::string_view etag;
};

// Every embedded file, sorted by path; generated at build time. Thread-safe.
const std::vector<EmbeddedFile>& EmbeddedFiles();

// The file at `path` (relative to web/), or nullptr.
const EmbeddedFile* FindFile(std::string_view path);

// The Content-Type for a file name, by its extension (octet-stream when unknown).
std::string_view ContentType(std::string_view path);

// Whether `path` (the request path) is the console's: "/", "/console" or under
// "/console/".
bool IsConsolePath(std::string_view path);

// Answers GET or HEAD of a console path: "/" and "/console" redirect to
// "/console/", which is index.html; other paths name an embedded file (404 when
// none does). Each answer carries a strong ETag (304 for a matching If-None-Match),
// no-cache, and a Content-Security-Policy that allows only the site's own scripts,
// styles and API, so text from the catalog can never run as code. Other methods
// get 405. Thread-safe.
void Serve(const http::Request& req, http::Response* resp);

}  // namespace depot::console
