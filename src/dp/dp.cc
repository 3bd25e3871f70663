#include "dp/dp.h"

#include <thread>

#include "core/log.h"
#include "dp/collector.h"
#include "dp/context.h"
#include "dp/handler.h"
#include "dp/poller.h"
#include "dp/reporter.h"
#include "dp/scrubber.h"
#include "dp/syncer.h"
#include "store/manifest.h"

namespace depot::dp {

using core::Status;
using Json = nlohmann::json;

struct DistributionPoint::Impl {
  Impl(core::Env* env, core::Clock* clock, std::string dir, DpConfig config)
      : ctx(env, clock, std::move(dir), std::move(config)),
        poller(&ctx),
        syncer(&ctx),
        reporter(&ctx),
        scrubber(&ctx),
        handler(&ctx) {}

  DpContext ctx;
  Poller poller;
  Syncer syncer;
  Reporter reporter;
  Scrubber scrubber;
  Handler handler;
  std::unique_ptr<http::Server> server;
  std::vector<std::thread> threads;
};

DistributionPoint::DistributionPoint(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

DistributionPoint::~DistributionPoint() { Stop(); }

core::Result<std::unique_ptr<DistributionPoint>> DistributionPoint::Open(
    core::Env* env, core::Clock* clock, const std::string& data_dir, const DpConfig& config) {
  if (config.site.empty() || config.token.empty()) {
    return Status::InvalidArgument("a DP needs --site URL and --token TOKEN (from `depot dp add`)");
  }
  auto impl = std::make_unique<Impl>(env, clock, data_dir, config);
  DEPOT_RETURN_IF_ERROR(impl->ctx.Open());
  DpContext* ctx = &impl->ctx;
  core::Registry& r = ctx->registry;
  r.AddCollector("depot_dp_versions", "Assigned versions by local state",
                 [ctx](const core::Registry::Emit& emit) {
                   for (const auto& [s, n] : ctx->book.CountByState()) emit({{"state", s}}, n);
                 });
  r.AddCollector("depot_dp_sync_progress_bytes", "Bytes present of the version being synced",
                 [ctx](const core::Registry::Emit& emit) {
                   emit({}, static_cast<double>(ctx->book.sync_bytes().load()));
                 });
  r.AddCollector("depot_dp_kept_open_files",
                 "Immutable files the server keeps open between requests",
                 [ctx](const core::Registry::Emit& emit) {
                   emit({}, static_cast<double>(ctx->tree->kept_files()));
                 });
  return std::unique_ptr<DistributionPoint>(new DistributionPoint(std::move(impl)));
}

Status DistributionPoint::Start() {
  Impl* impl = impl_.get();
  DpContext& ctx = impl->ctx;
  http::ServerOptions o;
  o.listen = ctx.cfg.listen;
  o.tls_cert_file = ctx.cfg.tls_cert;
  o.tls_key_file = ctx.cfg.tls_key;
  o.max_connections = ctx.cfg.max_connections;
  o.max_connections_per_address = ctx.cfg.max_connections_per_address;
  o.metrics = &ctx.registry;
  o.metrics_prefix = "depot_dp_http";
  o.server_name = "depot-dp";
  o.access_log = ctx.cfg.access_log;
  DEPOT_ASSIGN_OR_RETURN(impl->server, http::Server::Start(&impl->handler, o));
  ctx.server = impl->server.get();
  ctx.KeepDiskReserve();
  impl->threads.emplace_back([impl] { impl->poller.Run(); });
  impl->threads.emplace_back([impl] { impl->syncer.Run(); });
  impl->threads.emplace_back([impl] { impl->reporter.Run(); });
  impl->threads.emplace_back([impl] { impl->scrubber.Run(); });
  core::Log(core::LogLevel::kInfo, "dp.started",
            {{"url", impl->server->url()}, {"upstream", ctx.upstream->Describe()}});
  return Status::Ok();
}

void DistributionPoint::Stop() {
  Impl* impl = impl_.get();
  if (impl == nullptr) return;
  impl->ctx.book.Stop();
  impl->ctx.abort_requests = true;
  for (auto& t : impl->threads) {
    if (t.joinable()) t.join();
  }
  impl->threads.clear();
  if (impl->server) {
    // What happened up to now reaches the site before the DP goes (a restarted DP
    // would otherwise deliver the last run's messages as if they were new).
    impl->ctx.abort_requests = false;
    auto c = impl->ctx.SiteClient(3);
    if (c.ok()) {
      Status s = impl->reporter.SendReports(c->get());
      if (s.ok()) s = impl->reporter.SendMessages(c->get());
      if (!s.ok())
        core::Log(core::LogLevel::kInfo, "dp.final_report_failed", {{"error", s.ToString()}});
    }
    impl->ctx.abort_requests = true;
    impl->server->Stop();
    impl->handler.WaitIdle();  // pull-through fetches notify the server
    impl->ctx.server = nullptr;
    impl->server.reset();
  }
}

std::string DistributionPoint::url() const {
  return impl_->server ? impl_->server->url() : std::string();
}
std::uint16_t DistributionPoint::port() const { return impl_->server ? impl_->server->port() : 0; }

core::Result<VerifyReport> DistributionPoint::Verify(bool repair) {
  DpContext& ctx = impl_->ctx;
  if (repair) {
    // Learn which chunks assigned versions need, so damaged ones can be refetched.
    auto c = ctx.SiteClient(30);
    if (c.ok()) {
      auto r = (*c)->Do("GET", "/api/v1/dp/assignment");
      if (r.ok() && r->status == 200) {
        Json j = Json::parse(r->body, nullptr, false);
        for (const auto& [t, a] : ParseAssignment(j)) {
          auto bytes = ctx.ManifestBytesLocal(a);
          if (bytes.ok()) ctx.WantChunksOf(*bytes);
        }
      }
    }
  }
  auto report = impl_->scrubber.Scrub(repair, 0);
  // Deliver what the scrub recorded now, if the site answers.
  auto c = ctx.SiteClient(30);
  if (c.ok()) impl_->reporter.SendMessages(c->get()).IgnoreError();
  return report;
}

}  // namespace depot::dp
