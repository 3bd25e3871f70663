#include "core/source.h"

#include "core/env.h"
#include "core/path.h"

namespace depot::core {

Status RepoSource::FetchMany(const std::vector<FetchRequest>& requests, unsigned /*parallel*/,
                             const std::function<bool(std::size_t, Result<std::string>)>& on_done) {
  for (std::size_t i = 0; i < requests.size(); ++i) {
    if (!on_done(i, Fetch(requests[i].path, requests[i].max_bytes))) {
      return Status::Unavailable("fetch from " + Describe() + " stopped by the caller");
    }
  }
  return Status::Ok();
}

DirSource::DirSource(Env* env, std::string root) : env_(env), root_(std::move(root)) {}

Result<std::string> DirSource::Fetch(const std::string& path, std::uint64_t max_bytes) {
  DEPOT_RETURN_IF_ERROR(ValidateRelativePath(path));
  const std::string full = JoinPath(root_, path);
  DEPOT_ASSIGN_OR_RETURN(auto file, env_->OpenForRead(full, /*no_follow=*/false));
  DEPOT_ASSIGN_OR_RETURN(FileInfo info, file->Stat());
  if (info.type != FileType::kRegular) return Status::NotFound(full + ": not a regular file");
  if (info.size > max_bytes) {
    return Status::Corruption(full + ": " + std::to_string(info.size) + " bytes, more than the " +
                              std::to_string(max_bytes) + " expected");
  }
  std::string data(static_cast<std::size_t>(info.size), '\0');
  std::size_t got = 0;
  while (got < data.size()) {
    DEPOT_ASSIGN_OR_RETURN(std::size_t n, file->Read(data.data() + got, data.size() - got));
    if (n == 0) break;
    got += n;
  }
  data.resize(got);
  CountBytes(got);
  return data;
}

}  // namespace depot::core
