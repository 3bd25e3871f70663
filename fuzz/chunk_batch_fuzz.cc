// The chunk upload codec ([id][size][length][frame] records) the site reads from
// operators' uploads: every record it yields lies inside the batch, and re-encoding
// what it yields gives the bytes it read.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "store/chunk_batch.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view batch(reinterpret_cast<const char*>(data), size);
  std::string again;
  std::size_t records = 0;
  depot::core::Status s =
      depot::store::ForEachChunkRecord(batch, [&](const depot::store::ChunkRecord& r) {
        if (r.frame.data() < batch.data() ||
            r.frame.data() + r.frame.size() > batch.data() + batch.size())
          std::abort();
        depot::store::AppendChunkRecord(&again, r.id, r.size, r.frame);
        ++records;
        return depot::core::Status::Ok();
      });
  if (s.ok() && again != batch) std::abort();
  return 0;
}
