#include "agent/parts_fixture.h"

#include <chrono>
#include <cstdlib>
#include <thread>

#include "core/log.h"
#include "core/path.h"

namespace depot::agent::testing {

// A source in front of a real repository directory that fails as the fixture says.
class FaultySource final : public core::RepoSource {
 public:
  FaultySource(PartsFixture* f, std::string name, std::string dir)
      : f_(f), name_(std::move(name)), base_(core::Env::Default(), std::move(dir)) {}
  std::string Describe() const override { return PartsFixture::Url(name_); }
  core::Result<std::string> Fetch(const std::string& path, std::uint64_t max_bytes) override {
    Fault fault;
    {
      std::lock_guard<std::mutex> lock(f_->mu_);
      fault = f_->sources_[name_].fault;
    }
    const bool chunk = path.rfind("chunks/", 0) == 0;
    switch (fault) {
      case Fault::kNone:
        break;
      case Fault::kUnavailable:
        return core::Status::Unavailable(Describe() + ": connection refused (injected)");
      case Fault::kCorruptChunks:
        if (chunk) {
          auto r = base_.Fetch(path, max_bytes);
          if (r.ok() && !r->empty()) (*r)[r->size() / 2] ^= 0x55;
          return r;
        }
        break;
      case Fault::kMissingChunks:
        if (chunk) return core::Status::NotFound(Describe() + "/" + path + ": 404 (injected)");
        break;
      case Fault::kHoldChunks:
        if (chunk) {
          std::unique_lock<std::mutex> lock(f_->mu_);
          f_->chunk_held_ = true;
          f_->cv_.notify_all();
          f_->cv_.wait(lock, [&] { return f_->released_; });
        }
        break;
    }
    auto r = base_.Fetch(path, max_bytes);
    if (r.ok()) CountBytes(r->size());
    return r;
  }

 private:
  PartsFixture* f_;
  std::string name_;
  core::DirSource base_;
};

void PartsFixture::SetUp() {
  if (std::getenv("DEPOT_TEST_LOG") != nullptr) core::SetLogLevel(core::LogLevel::kDebug);
  ASSERT_TRUE(repo::Repository::Init(env_, &clock_, dir_.Sub("repo"), {}).ok());
  auto repo = repo::Repository::Open(env_, &clock_, dir_.Sub("repo"));
  ASSERT_TRUE(repo.ok()) << repo.status().ToString();
  repo_ = std::move(*repo);
  trusted_root_ = *repo_->TrustedRoot();
  AddSource("good", RepoDir());
  config_.retry_base = std::chrono::hours(1);
  config_.retry_max = std::chrono::hours(6);
  config_.max_attempts = 3;
  config_.source_penalty = std::chrono::minutes(10);
  config_.purge_grace = std::chrono::hours(1);
  Open();
}

void PartsFixture::TearDown() {
  ReleaseChunks();
  Close();
  // No program a test left running outlives it.
  auto runs = env_->ListDir(core::JoinPath(data_dir_, "runs"));
  if (runs.ok()) {
    for (const auto& e : *runs) KillProgram(core::JoinPath(data_dir_, "runs/" + e.name));
  }
  ReapChildren();
}

void PartsFixture::Open() {
  for (const char* d : {"cache", "manifests", "content", "runs"}) {
    ASSERT_TRUE(env_->CreateDirs(core::JoinPath(data_dir_, d), 0750).ok());
  }
  auto state = StateStore::Open(&clock_, core::JoinPath(data_dir_, "state.db"));
  ASSERT_TRUE(state.ok()) << state.status().ToString();
  state_ = std::move(*state);
  content_ = std::make_unique<ContentStore>(env_, &clock_, state_.get(), &config_, data_dir_);
  installer_ = std::make_unique<Installer>(env_, &clock_, state_.get(), content_.get(), data_dir_);
  const ContentStore* content = content_.get();
  downloader_ = std::make_unique<Downloader>(
      env_, &clock_, &config_, data_dir_, Factory(),
      [content](const std::string& id) { return content->LoadManifest(id); });
  downloader_->SetTrustedRoot(trusted_root_);
  zones_ = std::make_unique<core::ZoneCache>(env_);
  driver_ = std::make_unique<Driver>(env_, &clock_, &config_, state_.get(), content_.get(),
                                     installer_.get(), downloader_.get(), zones_.get());
}

SourceFactory PartsFixture::Factory() {
  return [this](const std::string& url,
                const AgentConfig&) -> core::Result<std::unique_ptr<core::RepoSource>> {
    if (url.rfind("test://", 0) != 0)
      return core::Status::InvalidArgument("not a test source: " + url);
    std::string name = url.substr(7);
    std::string dir;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = sources_.find(name);
      if (it == sources_.end()) return core::Status::NotFound("no test source " + name);
      dir = it->second.dir;
      ++opened_[name];
    }
    return std::unique_ptr<core::RepoSource>(new FaultySource(this, name, dir));
  };
}

int PartsFixture::Opened(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  return opened_[name];
}

void PartsFixture::Close() {
  driver_.reset();
  downloader_.reset();
  zones_.reset();
  installer_.reset();
  content_.reset();
  state_.reset();
}

repo::AddResult PartsFixture::AddVersion(const std::string& package,
                                         const std::map<std::string, std::string>& files,
                                         const std::string& command,
                                         const std::function<void(store::Program*)>& edit) {
  static std::atomic<int> next{0};
  std::string src = dir_.Sub("src-" + package + "-" + std::to_string(++next));
  for (const auto& [path, data] : files)
    depot::testing::WriteFileOrDie(core::JoinPath(src, path), data, 0644);
  repo::AddRequest req;
  req.package = package;
  req.source_dir = src;
  store::Program p;
  p.name = "install";
  p.command = command;
  if (edit) edit(&p);
  req.programs = {p};
  req.threads = 1;
  auto r = repo_->AddVersion(req);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : repo::AddResult{};
}

void PartsFixture::SaveManifest(const repo::AddResult& v) {
  std::string path = core::JoinPath(RepoDir(), "targets/" + v.package + "/" + v.manifest_id + "." +
                                                   std::to_string(v.version) + ".json");
  auto bytes = env_->ReadFile(path, 64 << 20);
  ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
  ASSERT_TRUE(content_->SaveManifest(v.manifest_id, *bytes).ok());
}

void PartsFixture::AddSource(const std::string& name, const std::string& dir, Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  sources_[name] = {dir, fault};
}

void PartsFixture::SetFault(const std::string& name, Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  sources_[name].fault = fault;
}

void PartsFixture::WaitForHeldChunk() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return chunk_held_; });
}

void PartsFixture::ReleaseChunks() {
  std::lock_guard<std::mutex> lock(mu_);
  released_ = true;
  cv_.notify_all();
}

PolicyItem PartsFixture::Item(std::int64_t id, const repo::AddResult& v, const Json& extra) {
  Json j = {{"id", id},
            {"package", v.package},
            {"package_id", v.package_id},
            {"version", v.version},
            {"manifest_id", v.manifest_id},
            {"program", "install"},
            {"kind", "required"},
            {"bytes", 0},
            {"start_ms", 0},
            {"windows", Json::array()},
            {"sources", Json::array({{{"kind", "site"}, {"name", "good"}, {"url", Url("good")}}})}};
  for (const auto& [key, value] : extra.items()) j[key] = value;
  PolicyItem p;
  p.id = id;
  p.package = j["package"];
  p.package_id = j["package_id"];
  p.version = j["version"];
  p.manifest_id = j["manifest_id"];
  p.program = j["program"];
  p.kind = j["kind"];
  p.bytes = j["bytes"];
  p.policy_json = j.dump();
  return p;
}

void PartsFixture::Insert(const PolicyItem& item) { ASSERT_TRUE(state_->Insert(item).ok()); }

Deployment PartsFixture::Get(std::int64_t id) {
  auto d = state_->Get(id);
  EXPECT_TRUE(d.ok() && d->has_value()) << "deployment " << id;
  return d.ok() && d->has_value() ? **d : Deployment{};
}

std::vector<Json> PartsFixture::Outbox() {
  auto batch = state_->PendingMessages(10000);
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  std::vector<Json> out;
  if (!batch.ok()) return out;
  for (auto& m : Json::parse(batch->json)) out.push_back(m);
  return out;
}

std::vector<Json> PartsFixture::OutboxOf(int code) {
  std::vector<Json> out;
  for (auto& m : Outbox()) {
    if (m["code"] == code) out.push_back(m);
  }
  return out;
}

Activity PartsFixture::Step() {
  auto a = driver_->Step(std::nullopt);
  EXPECT_TRUE(a.ok()) << a.status().ToString();
  return a.ok() ? *a : Activity{};
}

void PartsFixture::WaitForDownload() {
  // The manual clock's WaitFor ends when the download does (or the clock is advanced
  // past the deadline, which nothing here does).
  downloader_->Wait(std::chrono::hours(24), nullptr);
}

RunState PartsFixture::WaitUntilStopped(const std::string& run_dir) {
  for (int i = 0; i < 1000; ++i) {
    ReapChildren();
    auto st = CheckProgram(run_dir);
    EXPECT_TRUE(st.ok()) << st.status().ToString();
    if (!st.ok() || st->state != RunState::kRunning)
      return st.ok() ? st->state : RunState::kRunning;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "still running: " << run_dir;
  return RunState::kRunning;
}

void PartsFixture::Settle() {
  for (int pass = 0; pass < 10000; ++pass) {
    const std::uint64_t before = driver_->transitions();
    Activity a = Step();
    if (driver_->transitions() != before) continue;
    if (!a.busy) return;
    if (a.program) {
      // A program's end is no event: polled, in real time, as the agent does.
      downloader_->Wait(std::chrono::milliseconds(10), nullptr, /*real_time=*/true);
    } else {
      WaitForDownload();
    }
  }
  ADD_FAILURE() << "the deployments never came to rest";
}

}  // namespace depot::agent::testing
