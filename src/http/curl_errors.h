// The one place libcurl result codes and the status codes of answers for repository
// objects become Status values, and libcurl's process-wide initialisation. Internal
// to the http component.
#pragma once

#include <curl/curl.h>

#include <string>

#include "core/status.h"

namespace depot::http {

// curl_global_init, exactly once per process; safe from any thread.
void CurlGlobalInit();

// Maps a libcurl code to a Status naming `url`: InvalidArgument for a malformed or
// unsupported URL, PermissionDenied for an untrusted TLS peer, Unavailable otherwise
// (connection refused, timeout, reset: worth retrying elsewhere or later).
core::Status CurlCodeStatus(CURLcode code, const std::string& url, const char* errbuf);

// Maps a non-2xx answer for a repository object to a Status naming `url`: NotFound
// for 404/410, PermissionDenied for 401/403, Unavailable for anything else (worth
// trying elsewhere or later). Used by libcurl transfers and pipelined GETs alike.
core::Status HttpCodeStatus(long code, const std::string& url);

}  // namespace depot::http
