#include "store/chunk_batch.h"

#include <cstring>

namespace depot::store {

namespace {

// Little-endian hosts only (x86-64, aarch64), as everywhere in depot's formats.
void AppendLe32(std::string* out, std::uint32_t v) {
  char b[4];
  std::memcpy(b, &v, 4);
  out->append(b, 4);
}

std::uint32_t ReadLe32(const char* p) {
  std::uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

void AppendChunkRecord(std::string* body, const ChunkId& id, std::uint32_t size,
                       std::string_view frame) {
  body->append(reinterpret_cast<const char*>(id.data()), id.size());
  AppendLe32(body, size);
  AppendLe32(body, static_cast<std::uint32_t>(frame.size()));
  body->append(frame);
}

core::Status ForEachChunkRecord(std::string_view batch,
                                const std::function<core::Status(const ChunkRecord&)>& fn) {
  std::size_t pos = 0;
  for (std::size_t index = 0; pos < batch.size(); ++index) {
    auto truncated = [&] {
      return core::Status::InvalidArgument("chunk batch: record " + std::to_string(index) +
                                           " is truncated");
    };
    if (batch.size() - pos < kChunkRecordHeader) return truncated();
    ChunkRecord r;
    std::memcpy(r.id.data(), batch.data() + pos, r.id.size());
    r.size = ReadLe32(batch.data() + pos + 32);
    const std::uint32_t frame_len = ReadLe32(batch.data() + pos + 36);
    pos += kChunkRecordHeader;
    if (frame_len > batch.size() - pos) return truncated();
    r.frame = batch.substr(pos, frame_len);
    pos += frame_len;
    DEPOT_RETURN_IF_ERROR(fn(r));
  }
  return core::Status::Ok();
}

}  // namespace depot::store
