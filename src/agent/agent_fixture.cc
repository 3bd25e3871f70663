#include "agent/agent_fixture.h"

#include <cstdlib>

#include "cli/package_upload.h"
#include "core/log.h"
#include "http/curl_source.h"

namespace depot::agent::testing {

namespace {

// A real HTTP source that fails every fetch while *fail is set (fault injection).
class SwitchableSource final : public core::RepoSource {
 public:
  SwitchableSource(std::unique_ptr<core::RepoSource> real, const std::atomic<bool>* fail)
      : real_(std::move(real)), fail_(fail) {}
  std::string Describe() const override { return real_->Describe(); }
  core::Result<std::string> Fetch(const std::string& path, std::uint64_t max_bytes) override {
    if (fail_->load()) return core::Status::Unavailable(real_->Describe() + ": injected failure");
    return real_->Fetch(path, max_bytes);
  }
  core::Status FetchMany(
      const std::vector<core::FetchRequest>& requests, unsigned parallel,
      const std::function<bool(std::size_t, core::Result<std::string>)>& on_done) override {
    if (fail_->load()) return core::RepoSource::FetchMany(requests, parallel, on_done);
    return real_->FetchMany(requests, parallel, on_done);
  }

 private:
  std::unique_ptr<core::RepoSource> real_;
  const std::atomic<bool>* fail_;
};

}  // namespace

void AgentFixture::SetUp() {
  if (std::getenv("DEPOT_TEST_LOG") != nullptr) core::SetLogLevel(core::LogLevel::kDebug);
  site::InitOptions o;
  o.data_dir = dir_.Sub("site");
  o.code = "TST";
  o.listen = "127.0.0.1:0";
  auto init = site::InitSite(core::Env::Default(), core::Clock::Real(), o);
  ASSERT_TRUE(init.ok()) << init.status().ToString();
  auto site = site::Site::Open(core::Env::Default(), core::Clock::Real(), o.data_dir);
  ASSERT_TRUE(site.ok()) << site.status().ToString();
  site_ = std::move(*site);
  ASSERT_TRUE(site_->Start().ok());
  auto api = cli::ApiClient::Connect(cli::SiteFlags{site_->url(), init->admin_token, ""});
  ASSERT_TRUE(api.ok()) << api.status().ToString();
  api_ = std::move(*api);
  Api("POST", "/api/v1/collections", {{"name", "all"}, {"rule", "os == \"linux\""}});
  enroll_token_ = Api("POST", "/api/v1/tokens", {{"role", "enroll"}, {"uses", 10}})["token"];
  agent_dir_ = dir_.Sub("agent");
}

void AgentFixture::TearDown() {
  if (site_) site_->Stop();
}

Json AgentFixture::Publish(const std::string& name, const std::string& src, bool create,
                           const std::string& command) {
  cli::UploadRequest req;
  req.package = name;
  req.source_dir = src;
  req.create = create;
  store::Program p;
  p.name = "install";
  p.command = command;
  req.programs = {p};
  auto r = cli::UploadPackage(api_.get(), req);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? r->version : Json();
}

Json AgentFixture::Api(const std::string& method, const std::string& target, const Json& body) {
  auto r = method == "GET" ? api_->Get(target, "test") : api_->Send(method, target, body, "test");
  EXPECT_TRUE(r.ok()) << method << " " << target << ": " << r.status().ToString();
  return r.ok() ? *r : Json();
}

std::unique_ptr<Agent> AgentFixture::OpenAgent(AgentOverrides overrides) {
  overrides.site = site_->url();
  if (overrides.name.empty()) overrides.name = "pc1";
  const std::atomic<bool>* fail = &sources_fail_;
  SourceFactory factory =
      [fail](const std::string& url,
             const AgentConfig&) -> core::Result<std::unique_ptr<core::RepoSource>> {
    DEPOT_ASSIGN_OR_RETURN(auto real, http::CurlSource::Create(url));
    return std::unique_ptr<core::RepoSource>(new SwitchableSource(std::move(real), fail));
  };
  auto agent = Agent::Open(core::Env::Default(), &clock_, agent_dir_, overrides, factory);
  EXPECT_TRUE(agent.ok()) << agent.status().ToString();
  if (!agent.ok()) return nullptr;
  core::Status enrolled = (*agent)->EnsureEnrolled(enroll_token_);
  EXPECT_TRUE(enrolled.ok()) << enrolled.ToString();
  auto status = Agent::LocalStatus(core::Env::Default(), agent_dir_);
  if (status.ok()) client_ = status->client;
  return std::move(*agent);
}

Json AgentFixture::Messages(int code) {
  return Api("GET",
             "/api/v1/messages?client=" + client_ + "&code=" + std::to_string(code))["messages"];
}

}  // namespace depot::agent::testing
