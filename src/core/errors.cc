#include "core/errors.h"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace depot::core {

Status ErrnoStatus(int err, std::string_view what) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be buf.
  const char* text = strerror_r(err, buf, sizeof(buf));
  std::string msg(what);
  msg.append(": ").append(text);
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Status::NotFound(std::move(msg));
    case EACCES:
    case EPERM:
    case EROFS:
      return Status::PermissionDenied(std::move(msg));
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
    case EISDIR:
    case EEXIST:
    case ENOTEMPTY:
    case EXDEV:
      return Status::InvalidArgument(std::move(msg));
    default:
      return Status::IOError(std::move(msg));
  }
}

Status OpenSslStatus(Code code, std::string_view what) {
  std::string msg(what);
  unsigned long e;
  bool first = true;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    msg.append(first ? ": " : "; ").append(buf);
    first = false;
  }
  if (code == Code::kOk) code = Code::kIOError;
  return Status(code, std::move(msg));
}

void SkipOpenSslErrorStrings() {
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS, nullptr);
}

}  // namespace depot::core
