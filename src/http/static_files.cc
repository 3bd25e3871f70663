#include "http/static_files.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <unordered_set>
#include <vector>

#include "core/errors.h"
#include "core/hex.h"
#include "core/path.h"
#include "store/compress.h"

namespace depot::http {

namespace {

bool AllDigits(std::string_view s) {
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return !s.empty();
}

bool ParseU64(std::string_view s, std::uint64_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Reads `size` bytes of `fd` from its start into `out`; false when it ends first or
// a read fails.
bool PreadExactly(int fd, char* out, std::size_t size) {
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd, out + done, size - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<std::size_t>(n);
  }
  return true;
}

void NotFound(Response* resp) {
  *resp = Response::Json(404, R"({"error":{"code":"NotFound","message":"no such object"}})");
}

}  // namespace

bool IsImmutableName(std::string_view name) {
  if (name.size() >= 64 && core::IsLowerHex(name.substr(0, 64), 64) &&
      (name.size() == 64 || name[64] == '.')) {
    return true;
  }
  auto dot = name.find('.');
  return dot != std::string_view::npos && AllDigits(name.substr(0, dot)) && name.size() > 5 &&
         name.substr(name.size() - 5) == ".json";
}

bool ParseByteRange(std::string_view h, std::uint64_t size, std::uint64_t* first,
                    std::uint64_t* last, bool* unsatisfiable) {
  *unsatisfiable = false;
  constexpr std::string_view kPrefix = "bytes=";
  if (h.substr(0, kPrefix.size()) != kPrefix) return false;
  h.remove_prefix(kPrefix.size());
  while (!h.empty() && h.front() == ' ') h.remove_prefix(1);
  while (!h.empty() && h.back() == ' ') h.remove_suffix(1);
  if (h.find(',') != std::string_view::npos) return false;  // several ranges: send it all
  auto dash = h.find('-');
  if (dash == std::string_view::npos) return false;
  std::string_view a = h.substr(0, dash), b = h.substr(dash + 1);
  if (a.empty()) {  // suffix: the last N bytes
    std::uint64_t n;
    if (!ParseU64(b, &n)) return false;
    if (n == 0 || size == 0) {
      *unsatisfiable = true;
      return true;
    }
    *first = n >= size ? 0 : size - n;
    *last = size - 1;
    return true;
  }
  std::uint64_t f, l;
  if (!ParseU64(a, &f)) return false;
  if (b.empty()) {
    l = size == 0 ? 0 : size - 1;
  } else {
    if (!ParseU64(b, &l) || l < f) return false;
    if (l >= size) l = size == 0 ? 0 : size - 1;
  }
  if (f >= size) {
    *unsatisfiable = true;
    return true;
  }
  *first = f;
  *last = l;
  return true;
}

core::Result<std::unique_ptr<StaticTree>> StaticTree::Open(const std::string& root,
                                                           StaticFileOptions options) {
  int fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return core::ErrnoStatus(errno, "serve " + root);
  return std::unique_ptr<StaticTree>(new StaticTree(root, fd, std::move(options)));
}

StaticTree::StaticTree(std::string root, int dirfd, StaticFileOptions options)
    : root_(std::move(root)),
      dirfd_(dirfd),
      options_(std::move(options)),
      batch_budget_(options_.batch_memory, options_.batch_memory / 4) {
  // Kept files must leave most descriptors to connections and the rest of the process
  // (Server::Start raises the limit by a quarter of its connections for them).
  std::size_t cap = options_.open_files;
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
    cap = std::min<std::size_t>(cap, static_cast<std::size_t>(rl.rlim_cur / 5));
  }
  kept_per_shard_ = cap / kKeptShards;
}

StaticTree::~StaticTree() { ::close(dirfd_); }

namespace {

// True when an Accept-Encoding header lists zstd with a non-zero weight.
bool AcceptsZstd(const Request& req) {
  const std::string* h = req.GetHeader("accept-encoding");
  if (h == nullptr) return false;
  std::string_view s = *h;
  while (!s.empty()) {
    auto comma = s.find(',');
    std::string_view item = s.substr(0, comma);
    s = comma == std::string_view::npos ? std::string_view() : s.substr(comma + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    auto semi = item.find(';');
    std::string_view coding = item.substr(0, semi);
    while (!coding.empty() && coding.back() == ' ') coding.remove_suffix(1);
    if (coding != "zstd") continue;
    if (semi == std::string_view::npos) return true;
    std::string_view params = item.substr(semi + 1);
    auto q = params.find("q=");
    return q == std::string_view::npos ||
           params.substr(q + 2).find_first_not_of("0.") != std::string_view::npos;
  }
  return false;
}

// Narrows an answer of `size` bytes to the byte range `range` asks for, when there
// is one and If-Range (if any) still matches `etag`: *first and *length become the
// part to send (206). False when the answer is final already (416).
bool ApplyRange(const Request& req, const std::string* range, const std::string& etag,
                std::uint64_t size, std::uint64_t* first, std::uint64_t* length, Response* resp) {
  std::uint64_t last = size == 0 ? 0 : size - 1;
  const std::string* if_range = req.GetHeader("if-range");
  if (range != nullptr && (if_range == nullptr || *if_range == etag)) {
    bool unsatisfiable = false;
    if (ParseByteRange(*range, size, first, &last, &unsatisfiable)) {
      if (unsatisfiable) {
        resp->status = 416;
        resp->SetHeader("Content-Range", "bytes */" + std::to_string(size));
        resp->body.clear();
        return false;
      }
      *length = last - *first + 1;
      resp->status = 206;
      resp->SetHeader("Content-Range", "bytes " + std::to_string(*first) + "-" +
                                           std::to_string(last) + "/" + std::to_string(size));
    } else {
      *first = 0;
    }
  }
  return true;
}

}  // namespace

std::shared_ptr<const std::string> StaticTree::Encoded(const std::string& key, int fd,
                                                       std::uint64_t size) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
  }
  if (size > options_.encoded_cache_bytes * 4) return nullptr;
  std::string plain(size, '\0');
  if (!PreadExactly(fd, plain.data(), plain.size())) return nullptr;
  auto z = store::CompressFrame(plain, store::kDefaultCompressionLevel);
  if (!z.ok() || z->size() >= size) return nullptr;
  auto encoded = std::make_shared<const std::string>(std::move(*z));
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto [it, inserted] = cache_.emplace(key, encoded);
  if (!inserted) return it->second;  // another request made it meanwhile
  cache_order_.push_back(key);
  cache_bytes_ += encoded->size();
  while (cache_bytes_ > options_.encoded_cache_bytes && cache_order_.size() > 1) {
    auto old = cache_.find(cache_order_.front());
    cache_bytes_ -= old->second->size();
    cache_.erase(old);
    cache_order_.pop_front();
  }
  return encoded;
}

int StaticTree::OpenBeneath(const std::string& rel) const {
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, dirfd_, rel.c_str(), &how, sizeof(how)));
  if (fd < 0 && errno == ENOSYS) {
    // Kernels before 5.6: the trees depot serves contain no symlinks by construction.
    fd = ::openat(dirfd_, rel.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  }
  return fd;
}

StaticTree::KeptShard& StaticTree::ShardOf(std::string_view rel) const {
  return kept_[std::hash<std::string_view>{}(rel) % kKeptShards];
}

void StaticTree::DropOldest(KeptShard& shard) {
  shard.index.erase(shard.lru.back().rel);
  shard.lru.pop_back();
}

void StaticTree::CloseKeptFiles() const {
  for (KeptShard& shard : kept_) {
    std::list<KeptFile> closing;  // closed outside the lock
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.index.clear();
    closing.swap(shard.lru);
  }
}

std::size_t StaticTree::kept_files() const {
  std::size_t n = 0;
  for (KeptShard& shard : kept_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    n += shard.lru.size();
  }
  return n;
}

std::shared_ptr<const OpenFile> StaticTree::OpenRegular(std::string_view rel, bool keep,
                                                        struct stat* st) const {
  KeptShard* shard = keep && kept_per_shard_ > 0 ? &ShardOf(rel) : nullptr;
  auto now = std::chrono::steady_clock::now();
  std::shared_ptr<const OpenFile> kept;
  if (shard != nullptr) {
    {
      std::lock_guard<std::mutex> lock(shard->mu);
      while (!shard->lru.empty() && now - shard->lru.back().used > options_.open_file_idle)
        DropOldest(*shard);
      auto it = shard->index.find(rel);
      if (it != shard->index.end()) {
        shard->lru.splice(shard->lru.begin(), shard->lru, it->second);
        it->second->used = now;
        kept = it->second->file;
      }
    }
    // A kept file deleted since it was opened (a repair, garbage collection) is not
    // what the name means now: open the name again.
    if (kept && ::fstat(kept->fd(), st) == 0 && st->st_nlink > 0) return kept;
  }
  std::string path(rel);
  int fd = OpenBeneath(path);
  if (fd < 0 && (errno == EMFILE || errno == ENFILE) && kept_files() > 0) {
    CloseKeptFiles();  // descriptors are short: connections come first
    fd = OpenBeneath(path);
  }
  std::shared_ptr<const OpenFile> file;
  if (fd >= 0) {
    file = std::make_shared<const OpenFile>(fd);
    if (::fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) file.reset();
  }
  if (shard == nullptr) return file;
  // Keep it: in place of the deleted file seen above (or drop that one when the name
  // has no file now), or as a new entry. Another thread may have done either first.
  std::lock_guard<std::mutex> lock(shard->mu);
  auto it = shard->index.find(rel);
  if (it != shard->index.end()) {
    if (kept == nullptr || it->second->file != kept) return file;
    if (file == nullptr) {
      shard->lru.erase(it->second);
      shard->index.erase(it);
    } else {
      it->second->file = file;
    }
    return file;
  }
  if (file == nullptr) return file;
  shard->lru.push_front(KeptFile{std::move(path), file, now});
  shard->index.emplace(shard->lru.front().rel, shard->lru.begin());
  while (shard->lru.size() > kept_per_shard_) DropOldest(*shard);
  return file;
}

void StaticTree::ServeChunkBatch(const Request& req, Response* resp) const {
  if (req.method != "POST") {
    *resp = Response::Json(
        405, R"({"error":{"code":"InvalidArgument","message":"chunk batches are POSTed"}})");
    resp->SetHeader("Allow", "POST");
    return;
  }
  // Parse the whole list before reading anything.
  std::vector<std::string_view> ids;
  std::unordered_set<std::string_view> seen;
  std::string_view rest = req.body;
  while (!rest.empty()) {
    std::size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    if (line.empty()) continue;
    bool hex = core::IsLowerHex(line, 64);
    bool again = hex && !seen.insert(line).second;
    if (!hex || again || ids.size() >= kMaxBatchIds) {
      std::string why =
          !hex    ? "a line of the chunk batch is not a chunk id (64 lowercase hex)"
          : again ? "a chunk batch lists each id once (" + std::string(line) + " is repeated)"
                  : "a chunk batch lists at most " + std::to_string(kMaxBatchIds) + " ids";
      *resp =
          Response::Json(400, R"({"error":{"code":"InvalidArgument","message":")" + why + "\"}}");
      return;
    }
    ids.push_back(line);
  }
  // Which chunks this answer carries (present, within kMaxBatchBytes), then memory
  // for exactly that answer, leased from what all batch answers share and held until
  // it is sent. Past the lease nothing is carried: the client GETs each chunk alone.
  struct Carried {
    std::shared_ptr<const OpenFile> file;
    std::size_t size = 0;
  };
  std::vector<Carried> carried(ids.size());
  std::size_t total = 0;
  for (std::size_t i = 0; i < ids.size(); ++i) {
    total += ids[i].size() + 3;  // "<id> -\n"
    std::string path = "chunks/" + std::string(ids[i].substr(0, 2)) + "/" + std::string(ids[i]);
    struct stat st;
    auto file = total < kMaxBatchBytes ? OpenRegular(path, true, &st) : nullptr;
    if (file == nullptr) continue;
    const auto size = static_cast<std::size_t>(st.st_size);
    // " <n>\n" is this much longer than " -\n".
    const std::size_t longer = std::to_string(size).size() - 1;
    if (total + longer + size > kMaxBatchBytes) continue;
    total += longer + size;
    carried[i] = {std::move(file), size};
  }
  resp->hold = batch_budget_.Lease(req.remote_address, total);
  if (resp->hold == nullptr) {
    carried.assign(ids.size(), Carried{});
    total = ids.size() * (64 + 3);  // "<id> -\n" each: all that is held without a lease
  }
  std::string body;
  body.reserve(total);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    body.append(ids[i]);
    const Carried& c = carried[i];
    if (c.file == nullptr) {
      body.append(" -\n");
      continue;
    }
    const std::size_t mark = body.size();
    body.append(" " + std::to_string(c.size) + "\n");
    const std::size_t start = body.size();
    body.resize(start + c.size);
    if (!PreadExactly(c.file->fd(), body.data() + start, c.size)) {
      body.resize(mark);  // a file that shrank under us: not in this answer
      body.append(" -\n");
    }
  }
  resp->status = 200;
  resp->SetHeader("Content-Type", std::string(kChunkBatchContentType));
  resp->SetHeader("Cache-Control", "no-store");
  resp->body = std::move(body);
}

void StaticTree::Serve(const Request& req, std::string_view rel, Response* resp) const {
  const StaticFileOptions& options = options_;
  if (req.method != "GET" && req.method != "HEAD") {
    *resp = Response::Json(405,
                           R"({"error":{"code":"InvalidArgument","message":"only GET and HEAD"}})");
    resp->SetHeader("Allow", "GET, HEAD");
    return;
  }
  if (!core::ValidateRelativePath(rel).ok()) return NotFound(resp);
  std::string_view name =
      rel.substr(rel.rfind('/') == std::string_view::npos ? 0 : rel.rfind('/') + 1);
  // Temp files and anything hidden stay invisible, at every level.
  if (rel.front() == '.' || rel.find("/.") != std::string_view::npos) return NotFound(resp);
  bool immutable = IsImmutableName(name);
  struct stat st;
  std::shared_ptr<const OpenFile> file = OpenRegular(rel, immutable, &st);
  if (file == nullptr) return NotFound(resp);
  std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  std::string etag = immutable ? "\"" + std::string(name.substr(0, 64)) + "\""
                               : "\"" + std::to_string(st.st_ino) + "-" + std::to_string(size) +
                                     "-" + std::to_string(st.st_mtim.tv_sec) + "." +
                                     std::to_string(st.st_mtim.tv_nsec) + "\"";
  resp->status = 200;
  resp->SetHeader("ETag", etag);
  resp->SetHeader("Cache-Control", immutable ? options.immutable_cache : options.mutable_cache);
  resp->SetHeader("Accept-Ranges", "bytes");
  resp->SetHeader("Content-Type", name.size() > 5 && name.substr(name.size() - 5) == ".json"
                                      ? "application/json"
                                      : "application/octet-stream");
  if (const std::string* inm = req.GetHeader("if-none-match");
      inm != nullptr && (*inm == etag || *inm == "*")) {
    resp->status = 304;
    return;
  }
  const std::string* range = req.GetHeader("range");
  if (immutable && range == nullptr && size >= 1024 && options.encoded_cache_bytes > 0 &&
      rel.rfind("targets/", 0) == 0 && name.size() > 5 && name.substr(name.size() - 5) == ".json" &&
      AcceptsZstd(req)) {
    if (auto encoded = Encoded(std::string(rel), file->fd(), size)) {
      std::string zetag = etag.substr(0, etag.size() - 1) + "-zstd\"";
      resp->SetHeader("ETag", zetag);
      resp->SetHeader("Content-Encoding", "zstd");
      resp->SetHeader("Vary", "Accept-Encoding");
      if (const std::string* inm = req.GetHeader("if-none-match");
          inm != nullptr && *inm == zetag) {
        resp->status = 304;
        return;
      }
      if (req.method == "HEAD") {
        resp->head_length = encoded->size();
      } else {
        resp->body = *encoded;
      }
      return;
    }
  }
  // Files that may be encoded vary by Accept-Encoding in every answer, caches beware.
  if (immutable && rel.rfind("targets/", 0) == 0) resp->SetHeader("Vary", "Accept-Encoding");
  std::uint64_t first = 0;
  std::uint64_t length = size;
  if (!ApplyRange(req, range, etag, size, &first, &length, resp)) return;
  // The fd keeps O_NONBLOCK (it only guarded the open against a FIFO): on a regular
  // file Linux ignores it for read, pread and sendfile (open(2)), and clearing it
  // would cost two system calls per request.
  resp->file = FileBody{std::move(file), first, length};
}

}  // namespace depot::http
