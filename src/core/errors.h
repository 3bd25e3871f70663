// The one place where foreign error codes become Status values.
//   errno   -> ErrnoStatus   (POSIX calls)
//   OpenSSL -> OpenSslStatus (libcrypto calls; drains the thread's error queue)
// zstd errors are converted in store/compress.cc, libcurl errors in http/curl_source.cc.
#pragma once

#include <string_view>

#include "core/status.h"

namespace depot::core {

// Maps errno `err` to a Code (ENOENT -> NotFound, EACCES/EPERM -> PermissionDenied,
// EINVAL/ENAMETOOLONG/ELOOP/... -> InvalidArgument, everything else -> IOError) and
// builds "<what>: <strerror>".
Status ErrnoStatus(int err, std::string_view what);

// Builds an error from the calling thread's OpenSSL error queue (which it clears).
// `code` is the kind of failure the caller saw (usually kCorruption for a bad
// signature or key, kIOError for an internal failure).
Status OpenSslStatus(Code code, std::string_view what);

// Keeps OpenSSL from loading its error strings for the rest of the process: they
// cost ~650 KiB of resident memory in every process that uses libcrypto, which a
// long-running agent pays for nothing. Messages then name errors by code
// ("error:0A000086:lib(20)::reason(134)"; `openssl errstr 0A000086` gives the text).
// Call before anything else uses OpenSSL or libcurl. Any thread; idempotent.
void SkipOpenSslErrorStrings();

}  // namespace depot::core
