// depot repo init | add | fetch | verify | list | resign | root
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/output.h"
#include "cli/programs.h"
#include "core/env.h"
#include "core/source.h"
#include "http/curl_source.h"
#include "repo/fetch.h"
#include "repo/repository.h"
#include "store/manifest.h"

namespace depot::cli {

using core::Status;
using Json = nlohmann::json;

namespace {

double Since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

std::string Rate(std::uint64_t bytes, double seconds) {
  return seconds > 0 ? HumanBytes(static_cast<std::uint64_t>(bytes / seconds)) + "/s" : "-";
}

// A repository directory (DIR with repo/ inside, or the public tree itself) or an
// http(s) URL.
core::Result<std::unique_ptr<core::RepoSource>> OpenSource(const std::string& where) {
  if (where.rfind("http://", 0) == 0 || where.rfind("https://", 0) == 0) {
    DEPOT_ASSIGN_OR_RETURN(auto src, http::CurlSource::Create(where));
    return std::unique_ptr<core::RepoSource>(std::move(src));
  }
  core::Env* env = core::Env::Default();
  for (const std::string& root : {core::JoinPath(where, "repo"), where}) {
    DEPOT_ASSIGN_OR_RETURN(bool has, env->Exists(core::JoinPath(root, "metadata/timestamp.json")));
    if (has) return std::unique_ptr<core::RepoSource>(new core::DirSource(env, root));
  }
  return Status::NotFound(where +
                          " is neither an http(s):// URL nor a repository directory "
                          "(no metadata/timestamp.json in it or in its repo/ folder)");
}

int RunInit(const std::string& dir, const std::string& chunk_sizes, int level, bool json) {
  repo::RepoSettings settings;
  settings.compression_level = level;
  if (!chunk_sizes.empty()) {
    unsigned mn = 0, avg = 0, mx = 0;
    char extra;
    if (std::sscanf(chunk_sizes.c_str(), "%u:%u:%u%c", &mn, &avg, &mx, &extra) != 3) {
      return ReportError(Status::InvalidArgument("--chunk-sizes wants MIN:AVG:MAX in bytes"), json);
    }
    settings.chunker = {mn, avg, mx};
  }
  if (level < store::kMinCompressionLevel || level > store::kMaxCompressionLevel) {
    return ReportError(Status::InvalidArgument("--compression-level must be in -7..19"), json);
  }
  Status s = repo::Repository::Init(core::Env::Default(), core::Clock::Real(), dir, settings);
  if (!s.ok()) return ReportError(s.WithContext("repo init"), json);
  repo::RepoLayout layout(dir);
  std::string trust = core::JoinPath(layout.metadata(), "root.json");
  if (json) {
    PrintJson({{"repository", dir},
               {"public_root", layout.public_root()},
               {"trusted_root", trust},
               {"keys", layout.keys()}});
  } else {
    std::printf("created repository %s\n", dir.c_str());
    std::printf("  serve this directory:  %s\n", layout.public_root().c_str());
    std::printf("  clients pin this root: %s\n", trust.c_str());
    std::printf(
        "  private keys:          %s (move root.pem offline; it is only needed to "
        "rotate keys)\n",
        layout.keys().c_str());
  }
  return kExitOk;
}

int RunAdd(const std::string& dir, repo::AddRequest req, const ProgramFlags& pf, bool json) {
  auto programs = BuildPrograms(pf);
  if (!programs.ok()) return ReportError(programs.status(), json);
  req.programs = std::move(*programs);
  core::Env* env = core::Env::Default();
  auto repository = repo::Repository::Open(env, core::Clock::Real(), dir);
  if (!repository.ok()) return ReportError(repository.status(), json);

  std::atomic<std::uint64_t> bytes{0}, files{0}, total{0};
  req.progress_bytes = &bytes;
  req.progress_files = &files;
  req.progress_total = &total;
  auto start = std::chrono::steady_clock::now();
  core::Result<repo::AddResult> r = Status::Unavailable("not run");
  {
    ProgressBar bar("snapshot " + req.package, &bytes, &total);
    r = (*repository)->AddVersion(req);
  }
  double secs = Since(start);
  if (!r.ok()) return ReportError(r.status().WithContext("repo add"), json);
  const auto& st = r->stats;
  if (json) {
    PrintJson({{"package", r->package},
               {"package_id", r->package_id},
               {"version", r->version},
               {"manifest_id", r->manifest_id},
               {"target", r->target_path},
               {"manifest_bytes", r->manifest_bytes},
               {"files", st.files},
               {"dirs", st.dirs},
               {"symlinks", st.symlinks},
               {"bytes", st.bytes},
               {"chunks", st.chunk_refs},
               {"new_chunks", st.new_chunks},
               {"new_bytes", st.new_bytes},
               {"stored_bytes", st.stored_bytes},
               {"reused_bytes", st.reused_bytes},
               {"retries", st.retries},
               {"seconds", secs}});
  } else {
    std::printf("added %s version %lld\n", r->package.c_str(), static_cast<long long>(r->version));
    std::printf("  manifest  %s (%s)\n", r->manifest_id.c_str(),
                HumanBytes(r->manifest_bytes).c_str());
    std::printf("  files     %llu files, %llu dirs, %llu symlinks, %s\n",
                static_cast<unsigned long long>(st.files), static_cast<unsigned long long>(st.dirs),
                static_cast<unsigned long long>(st.symlinks), HumanBytes(st.bytes).c_str());
    std::printf("  new       %llu chunks, %s (stored as %s)\n",
                static_cast<unsigned long long>(st.new_chunks), HumanBytes(st.new_bytes).c_str(),
                HumanBytes(st.stored_bytes).c_str());
    std::printf("  reused    %s already in the repository\n", HumanBytes(st.reused_bytes).c_str());
    std::printf("  time      %.2f s (%s)\n", secs, Rate(st.bytes, secs).c_str());
  }
  return kExitOk;
}

int RunFetch(const std::string& where, repo::FetchRequest req, const std::string& trust_file,
             bool json) {
  core::Env* env = core::Env::Default();
  auto trust = env->ReadFile(trust_file, 1 << 20);
  if (!trust.ok()) return ReportError(trust.status().WithContext("--trust"), json);
  req.trusted_root = std::move(*trust);
  auto source = OpenSource(where);
  if (!source.ok()) return ReportError(source.status(), json);
  std::atomic<std::uint64_t> done{0}, total{0};
  req.progress_bytes = &done;
  req.progress_total = &total;
  auto start = std::chrono::steady_clock::now();
  core::Result<repo::FetchResult> r = Status::Unavailable("not run");
  {
    ProgressBar bar("fetch " + req.package, &done, &total);
    r = repo::FetchVersion(env, core::Clock::Real(), source->get(), req);
  }
  double secs = Since(start);
  if (!r.ok()) return ReportError(r.status().WithContext("repo fetch"), json);
  if (json) {
    PrintJson({{"package", r->package},
               {"version", r->version},
               {"manifest_id", r->manifest_id},
               {"dest", req.dest},
               {"files", r->files},
               {"bytes", r->bytes},
               {"chunks", r->chunks},
               {"cache_chunks", r->cache_chunks},
               {"cache_bytes", r->cache_bytes},
               {"fetched_chunks", r->fetched_chunks},
               {"fetched_bytes", r->fetched_bytes},
               {"transfer_bytes", r->transfer_bytes},
               {"seconds", secs},
               {"phases",
                {{"metadata", r->metadata_s},
                 {"prepare", r->prepare_s},
                 {"transfer", r->transfer_s},
                 {"finish", r->finish_s}}}});
  } else {
    std::printf("fetched %s version %lld into %s\n", r->package.c_str(),
                static_cast<long long>(r->version), req.dest.c_str());
    std::printf("  manifest  %s\n", r->manifest_id.c_str());
    std::printf("  files     %llu files, %s, all verified\n",
                static_cast<unsigned long long>(r->files), HumanBytes(r->bytes).c_str());
    std::printf("  cache     %llu chunks, %s\n", static_cast<unsigned long long>(r->cache_chunks),
                HumanBytes(r->cache_bytes).c_str());
    std::printf("  fetched   %llu chunks, %s (%s transferred)\n",
                static_cast<unsigned long long>(r->fetched_chunks),
                HumanBytes(r->fetched_bytes).c_str(), HumanBytes(r->transfer_bytes).c_str());
    std::printf("  time      %.2f s (%s)\n", secs, Rate(r->bytes, secs).c_str());
  }
  return kExitOk;
}

int RunVerify(const std::string& dir, unsigned threads, bool json) {
  auto repository = repo::Repository::Open(core::Env::Default(), core::Clock::Real(), dir);
  if (!repository.ok()) return ReportError(repository.status(), json);
  std::atomic<std::uint64_t> done{0};
  auto start = std::chrono::steady_clock::now();
  core::Result<repo::VerifyReport> r = Status::Unavailable("not run");
  {
    ProgressBar bar("verify", &done, nullptr);
    r = (*repository)->Verify(threads, &done);
  }
  if (!r.ok()) return ReportError(r.status().WithContext("repo verify"), json);
  double secs = Since(start);
  if (json) {
    Json damage = Json::array();
    for (const auto& d : r->damage)
      damage.push_back({{"object", d.object}, {"problem", d.problem}});
    PrintJson({{"ok", r->damage.empty()},
               {"chunks_checked", r->chunks_checked},
               {"chunk_bytes", r->chunk_bytes},
               {"manifests_checked", r->manifests_checked},
               {"damage", damage},
               {"seconds", secs}});
  } else {
    for (const auto& d : r->damage)
      std::printf("DAMAGED %s: %s\n", d.object.c_str(), d.problem.c_str());
    std::printf("%s: %llu chunks (%s) and %llu manifests checked, %zu damaged, %.2f s\n",
                r->damage.empty() ? "ok" : "DAMAGE FOUND",
                static_cast<unsigned long long>(r->chunks_checked),
                HumanBytes(r->chunk_bytes).c_str(),
                static_cast<unsigned long long>(r->manifests_checked), r->damage.size(), secs);
  }
  return r->damage.empty() ? kExitOk : kExitDamage;
}

int RunList(const std::string& dir, bool json) {
  auto repository = repo::Repository::Open(core::Env::Default(), core::Clock::Real(), dir);
  if (!repository.ok()) return ReportError(repository.status(), json);
  auto versions = (*repository)->ListVersions();
  if (!versions.ok()) return ReportError(versions.status(), json);
  if (json) {
    Json out = Json::array();
    for (const auto& v : *versions) {
      out.push_back({{"package", v.package},
                     {"package_id", v.package_id},
                     {"version", v.version},
                     {"manifest_id", v.manifest_id},
                     {"manifest_bytes", v.manifest_bytes}});
    }
    PrintJson({{"versions", out}});
  } else {
    std::printf("%-24s %8s  %s\n", "PACKAGE", "VERSION", "MANIFEST");
    for (const auto& v : *versions) {
      std::printf("%-24s %8lld  %s\n", v.package.c_str(), static_cast<long long>(v.version),
                  v.manifest_id.c_str());
    }
  }
  return kExitOk;
}

int RunResign(const std::string& dir, bool root, bool json) {
  auto repository = repo::Repository::Open(core::Env::Default(), core::Clock::Real(), dir);
  if (!repository.ok()) return ReportError(repository.status(), json);
  Status s = (*repository)->Refresh(root);
  if (!s.ok()) return ReportError(s.WithContext("repo resign"), json);
  if (json) {
    PrintJson({{"resigned", dir}, {"root", root}});
  } else {
    std::printf("re-signed %s of %s\n",
                root ? "root, snapshot and timestamp" : "snapshot and timestamp", dir.c_str());
  }
  return kExitOk;
}

int RunGc(const std::string& dir, bool json) {
  auto repository = repo::Repository::Open(core::Env::Default(), core::Clock::Real(), dir);
  if (!repository.ok()) return ReportError(repository.status(), json);
  auto r = (*repository)->CollectGarbage();
  if (!r.ok()) return ReportError(r.status().WithContext("repo gc"), json);
  if (json) {
    PrintJson({{"live_chunks", r->live_chunks},
               {"chunks_removed", r->chunks_removed},
               {"bytes_removed", r->bytes_removed},
               {"manifests_removed", r->manifests_removed},
               {"temp_removed", r->temp_removed}});
  } else {
    std::printf(
        "removed %llu unreferenced chunks (%s), %llu unsigned manifests, %llu temp files; "
        "%llu chunks in use\n",
        static_cast<unsigned long long>(r->chunks_removed), HumanBytes(r->bytes_removed).c_str(),
        static_cast<unsigned long long>(r->manifests_removed),
        static_cast<unsigned long long>(r->temp_removed),
        static_cast<unsigned long long>(r->live_chunks));
  }
  return kExitOk;
}

int RunRotate(const std::string& dir, const std::vector<std::string>& roles, bool json) {
  auto repository = repo::Repository::Open(core::Env::Default(), core::Clock::Real(), dir);
  if (!repository.ok()) return ReportError(repository.status(), json);
  Status s = (*repository)->RotateKeys(roles);
  if (!s.ok()) return ReportError(s.WithContext("repo rotate-keys"), json);
  if (json) {
    PrintJson({{"rotated", roles}});
  } else {
    std::printf("rotated the keys of");
    for (const auto& r : roles) std::printf(" %s", r.c_str());
    std::printf("; new root signed by the old and new root keys\n");
  }
  return kExitOk;
}

void AddRepoInit(CLI::App* repo, GlobalFlags* flags, int* exit_code) {
  auto* cmd = repo->add_subcommand("init", "Create a repository with fresh signing keys");
  auto dir = std::make_shared<std::string>();
  auto sizes = std::make_shared<std::string>();
  auto level = std::make_shared<int>(store::kDefaultCompressionLevel);
  cmd->add_option("DIR", *dir, "New repository directory")->required();
  cmd->add_option("--chunk-sizes", *sizes, "Chunk sizes MIN:AVG:MAX in bytes (16384:65536:262144)");
  cmd->add_option("--compression-level", *level, "zstd level for stored chunks");
  cmd->callback([=] { *exit_code = RunInit(*dir, *sizes, *level, flags->json); });
}

void AddRepoAdd(CLI::App* repo, GlobalFlags* flags, int* exit_code) {
  auto* cmd = repo->add_subcommand("add", "Snapshot a directory as the next version of a package");
  auto dir = std::make_shared<std::string>();
  auto req = std::make_shared<repo::AddRequest>();
  auto pf = std::make_shared<ProgramFlags>();
  cmd->add_option("DIR", *dir, "Repository directory")->required();
  cmd->add_option("--package", req->package, "Package name")->required();
  cmd->add_option("--source", req->source_dir, "Source directory to snapshot")->required();
  cmd->add_option("--description", req->description, "Free text shown to operators");
  AddProgramFlags(cmd, pf.get());
  cmd->add_option("--threads", req->threads, "Worker threads (default: all cores)");
  cmd->callback([=] { *exit_code = RunAdd(*dir, *req, *pf, flags->json); });
}

void AddRepoFetch(CLI::App* repo, GlobalFlags* flags, int* exit_code) {
  auto* cmd = repo->add_subcommand("fetch", "Fetch, verify and materialise a package version");
  auto where = std::make_shared<std::string>();
  auto trust = std::make_shared<std::string>();
  auto req = std::make_shared<repo::FetchRequest>();
  cmd->add_option("SOURCE", *where, "Repository directory or http(s):// URL of its public tree")
      ->required();
  cmd->add_option("--package", req->package, "Package name")->required();
  cmd->add_option("--version", req->version, "Version number (default: newest)");
  cmd->add_option("--dest", req->dest, "Destination directory (must not exist)")->required();
  cmd->add_option("--trust", *trust, "Pinned root.json of the repository")->required();
  cmd->add_option("--cache", req->cache_dir, "Chunk cache directory (kept across fetches)");
  cmd->add_option("--parallel", req->parallel, "Concurrent downloads (default 16)");
  cmd->add_option("--threads", req->threads, "Verify/assemble threads (default: all cores)");
  cmd->callback([=] { *exit_code = RunFetch(*where, *req, *trust, flags->json); });
}

void AddRepoVerify(CLI::App* repo, GlobalFlags* flags, int* exit_code) {
  auto* cmd = repo->add_subcommand("verify", "Re-hash every chunk and manifest; report damage");
  auto dir = std::make_shared<std::string>();
  auto threads = std::make_shared<unsigned>(0);
  cmd->add_option("DIR", *dir, "Repository directory")->required();
  cmd->add_option("--threads", *threads, "Worker threads (default: all cores)");
  cmd->callback([=] { *exit_code = RunVerify(*dir, *threads, flags->json); });
}

void AddRepoList(CLI::App* repo, GlobalFlags* flags, int* exit_code) {
  auto* cmd = repo->add_subcommand("list", "List signed package versions");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("DIR", *dir, "Repository directory")->required();
  cmd->callback([=] { *exit_code = RunList(*dir, flags->json); });
}

void AddRepoResign(CLI::App* repo, GlobalFlags* flags, int* exit_code) {
  auto* cmd = repo->add_subcommand("resign", "Re-sign snapshot and timestamp before they expire");
  auto dir = std::make_shared<std::string>();
  auto root = std::make_shared<bool>(false);
  cmd->add_option("DIR", *dir, "Repository directory")->required();
  cmd->add_flag("--root", *root, "Also re-sign root with a fresh expiry (needs keys/root.pem)");
  cmd->callback([=] { *exit_code = RunResign(*dir, *root, flags->json); });
}

void AddRepoGc(CLI::App* repo, GlobalFlags* flags, int* exit_code) {
  auto* cmd = repo->add_subcommand("gc", "Remove chunks and files no signed version needs");
  auto dir = std::make_shared<std::string>();
  cmd->add_option("DIR", *dir, "Repository directory")->required();
  cmd->callback([=] { *exit_code = RunGc(*dir, flags->json); });
}

void AddRepoRotateKeys(CLI::App* repo, GlobalFlags* flags, int* exit_code) {
  auto* cmd =
      repo->add_subcommand("rotate-keys", "Replace signing keys; clients follow the new root");
  auto dir = std::make_shared<std::string>();
  auto roles = std::make_shared<std::vector<std::string>>();
  cmd->add_option("DIR", *dir, "Repository directory")->required();
  cmd->add_option("ROLE", *roles, "root, targets, snapshot and/or timestamp")->required();
  cmd->callback([=] { *exit_code = RunRotate(*dir, *roles, flags->json); });
}

}  // namespace

void AddRepoCommands(CLI::App* app, GlobalFlags* flags, int* exit_code) {
  CLI::App* repo = app->add_subcommand("repo", "Offline repositories: build, sign, fetch, verify");
  repo->require_subcommand(1);

  AddRepoInit(repo, flags, exit_code);
  AddRepoAdd(repo, flags, exit_code);
  AddRepoFetch(repo, flags, exit_code);
  AddRepoVerify(repo, flags, exit_code);
  AddRepoList(repo, flags, exit_code);
  AddRepoResign(repo, flags, exit_code);
  AddRepoGc(repo, flags, exit_code);
  AddRepoRotateKeys(repo, flags, exit_code);
}

}  // namespace depot::cli
