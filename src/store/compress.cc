#include "store/compress.h"

#include <zstd.h>

namespace depot::store {
namespace {

// The one place zstd error codes become Status values.
core::Status ZstdStatus(core::Code code, std::size_t rc, std::string_view what) {
  std::string msg(what);
  msg.append(": ").append(ZSTD_getErrorName(rc));
  return core::Status(code, std::move(msg));
}

struct CCtx {
  ZSTD_CCtx* ctx = ZSTD_createCCtx();
  ~CCtx() { ZSTD_freeCCtx(ctx); }
};
struct DCtx {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  ~DCtx() { ZSTD_freeDCtx(ctx); }
};

}  // namespace

std::uint64_t MaxFrameSize(std::uint64_t size) { return ZSTD_compressBound(size) + 64; }

core::Result<std::uint64_t> FrameContentSize(std::string_view frame_prefix) {
  unsigned long long n = ZSTD_getFrameContentSize(frame_prefix.data(), frame_prefix.size());
  if (n == ZSTD_CONTENTSIZE_ERROR || n == ZSTD_CONTENTSIZE_UNKNOWN) {
    return core::Status::Corruption("chunk frame header is malformed or declares no content size");
  }
  return static_cast<std::uint64_t>(n);
}

namespace {
// Compresses into [dst, dst + capacity), which must hold ZSTD_compressBound bytes.
core::Result<std::size_t> CompressTo(std::string_view data, int level, char* dst,
                                     std::size_t capacity) {
  thread_local CCtx cctx;
  if (cctx.ctx == nullptr) return core::Status::IOError("zstd: cannot allocate a context");
  ZSTD_CCtx_reset(cctx.ctx, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(cctx.ctx, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(cctx.ctx, ZSTD_c_contentSizeFlag, 1);
  ZSTD_CCtx_setParameter(cctx.ctx, ZSTD_c_checksumFlag, 0);  // SHA-256 covers it
  std::size_t n = ZSTD_compress2(cctx.ctx, dst, capacity, data.data(), data.size());
  if (ZSTD_isError(n)) return ZstdStatus(core::Code::kIOError, n, "zstd compress");
  return n;
}
}  // namespace

core::Result<std::string> CompressFrame(std::string_view data, int level) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  DEPOT_ASSIGN_OR_RETURN(std::size_t n, CompressTo(data, level, out.data(), out.size()));
  out.resize(n);
  return out;
}

core::Result<std::string_view> CompressFrameInto(std::string_view data, int level,
                                                 std::string* buffer) {
  const std::size_t bound = ZSTD_compressBound(data.size());
  if (buffer->size() < bound) buffer->resize(bound);
  DEPOT_ASSIGN_OR_RETURN(std::size_t n, CompressTo(data, level, buffer->data(), buffer->size()));
  return std::string_view(buffer->data(), n);
}

namespace {
// Checks the frame's header and length against `expected_size`, then decompresses
// into [dst, dst + expected_size).
core::Status DecompressTo(std::string_view frame, std::uint64_t expected_size, char* dst) {
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) {
    return core::Status::Corruption("not a zstd frame");
  }
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    return core::Status::Corruption("zstd frame does not declare its size");
  }
  if (declared != expected_size) {
    return core::Status::Corruption("zstd frame holds " + std::to_string(declared) +
                                    " bytes, expected " + std::to_string(expected_size));
  }
  std::size_t frame_len = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(frame_len)) return ZstdStatus(core::Code::kCorruption, frame_len, "zstd frame");
  if (frame_len != frame.size()) {
    return core::Status::Corruption("zstd frame followed by " +
                                    std::to_string(frame.size() - frame_len) + " extra bytes");
  }
  thread_local DCtx dctx;
  if (dctx.ctx == nullptr) return core::Status::IOError("zstd: cannot allocate a context");
  std::size_t n = ZSTD_decompressDCtx(dctx.ctx, dst, expected_size, frame.data(), frame.size());
  if (ZSTD_isError(n)) return ZstdStatus(core::Code::kCorruption, n, "zstd decompress");
  if (n != expected_size) {
    return core::Status::Corruption("zstd frame decompressed to " + std::to_string(n) +
                                    " bytes, expected " + std::to_string(expected_size));
  }
  return core::Status::Ok();
}
}  // namespace

core::Result<std::string> DecompressFrame(std::string_view frame, std::uint64_t expected_size) {
  // `expected_size` comes from the caller (a verified manifest), not from the frame.
  std::string out(expected_size, '\0');
  DEPOT_RETURN_IF_ERROR(DecompressTo(frame, expected_size, out.data()));
  return out;
}

core::Result<std::string_view> DecompressFrameInto(std::string_view frame,
                                                   std::uint64_t expected_size,
                                                   std::string* buffer) {
  if (buffer->size() < expected_size) buffer->resize(expected_size);
  DEPOT_RETURN_IF_ERROR(DecompressTo(frame, expected_size, buffer->data()));
  return std::string_view(buffer->data(), expected_size);
}

core::Result<std::string> DecompressFrameBounded(std::string_view frame, std::uint64_t max_size) {
  unsigned long long declared = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (declared == ZSTD_CONTENTSIZE_ERROR) return core::Status::Corruption("not a zstd frame");
  if (declared == ZSTD_CONTENTSIZE_UNKNOWN) {
    return core::Status::Corruption("zstd frame does not declare its size");
  }
  if (declared > max_size) {
    return core::Status::Corruption("zstd frame holds " + std::to_string(declared) +
                                    " bytes, more than the limit of " + std::to_string(max_size));
  }
  return DecompressFrame(frame, declared);
}

}  // namespace depot::store
