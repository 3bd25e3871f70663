// depot agent run | status | install: the agent on a managed machine.
#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "agent/agent.h"
#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/output.h"
#include "core/env.h"
#include "core/errors.h"
#include "core/log.h"

namespace depot::cli {

using core::Status;
using Json = nlohmann::json;

namespace {

struct RunFlags {
  std::vector<std::string> sites;
  std::string data, enroll_token, ca, name, poll_interval, long_poll, purge_grace, stall_timeout,
      retry_base, source_penalty;
  std::vector<std::string> tags;
  long long cache_size = -1, max_rate = -1;
  int parallel = 0, max_attempts = 0;
  bool once = false;
};

core::Result<agent::AgentOverrides> ConfigFromFlags(const RunFlags& f) {
  agent::AgentOverrides c;
  if (!f.sites.empty()) {
    // Given again, the list replaces the saved one.
    c.site = f.sites.front();
    c.more_sites = std::vector<std::string>(f.sites.begin() + 1, f.sites.end());
  }
  // Saved in agent.json: a relative path would name another file (or none) when the
  // agent next starts from another directory, and it would go offline.
  if (!f.ca.empty()) c.ca = std::filesystem::absolute(f.ca).string();
  c.name = f.name;
  for (const auto& t : f.tags) {
    auto eq = t.find('=');
    if (eq == std::string::npos || eq == 0)
      return Status::InvalidArgument("--tag wants KEY=VALUE, not `" + t + "`");
    c.tags[t.substr(0, eq)] = t.substr(eq + 1);
  }
  for (auto [text, out] :
       {std::pair{&f.poll_interval, &c.poll_interval}, std::pair{&f.long_poll, &c.long_poll},
        std::pair{&f.purge_grace, &c.purge_grace}, std::pair{&f.stall_timeout, &c.stall_timeout},
        std::pair{&f.retry_base, &c.retry_base}, std::pair{&f.source_penalty, &c.source_penalty}}) {
    if (text->empty()) continue;
    // A bare number is seconds, as in --poll-interval 5.
    std::string t = *text;
    if (t.find_first_not_of("0123456789") == std::string::npos) t += "s";
    auto d = core::ParseDuration(t);
    if (!d.ok()) return d.status();
    *out = *d;
  }
  if (f.cache_size >= 0) c.cache_max_bytes = static_cast<std::uint64_t>(f.cache_size);
  if (f.max_rate >= 0) c.max_rate = static_cast<std::uint64_t>(f.max_rate);
  if (f.parallel > 0) c.parallel = static_cast<unsigned>(f.parallel);
  if (f.max_attempts > 0) c.max_attempts = f.max_attempts;
  return c;
}

int RunAgent(const RunFlags& f, bool json) {
  // An agent runs on every machine for months: its idle footprint matters more than
  // readable OpenSSL error texts (errors keep their codes).
  core::SkipOpenSslErrorStrings();
  std::unique_ptr<StopSignals> signals;
  if (!f.once) signals = std::make_unique<StopSignals>();  // before any thread starts
  auto cfg = ConfigFromFlags(f);
  if (!cfg.ok()) return ReportError(cfg.status().WithContext("agent run"), json);
  auto a = agent::Agent::Open(core::Env::Default(), core::Clock::Real(), f.data, *cfg);
  if (!a.ok()) return ReportError(a.status().WithContext("agent run"), json);
  Status s = (*a)->EnsureEnrolled(f.enroll_token);
  if (!s.ok()) return ReportError(s.WithContext("agent run"), json);
  if (f.once) {
    auto outcome = (*a)->RunOnce();
    if (!outcome.ok()) return ReportError(outcome.status().WithContext("agent run --once"), json);
    int code = *outcome == agent::Agent::Outcome::kFailed      ? agent::kOnceFailed
               : *outcome == agent::Agent::Outcome::kSucceeded ? agent::kOnceSucceeded
                                                               : agent::kOnceNothingToDo;
    const char* word = code == agent::kOnceFailed      ? "failed"
                       : code == agent::kOnceSucceeded ? "succeeded"
                                                       : "nothing to do";
    if (json) {
      PrintJson({{"outcome", word}, {"exit_code", code}});
    } else {
      std::printf("agent cycle: %s\n", word);
    }
    return code;
  }
  static std::atomic<bool> stop{false};
  std::thread([sig = signals.get()] {
    sig->Wait();
    stop = true;
  }).detach();
  if (json) {
    std::printf("%s\n", Json({{"data", f.data}}).dump().c_str());
  } else {
    std::printf("agent running on %s\n", f.data.c_str());
  }
  std::fflush(stdout);
  s = (*a)->Run(&stop);
  if (!s.ok()) return ReportError(s.WithContext("agent run"), json);
  return kExitOk;
}

int ShowStatus(const std::string& data, bool json) {
  auto r = agent::Agent::LocalStatus(core::Env::Default(), data);
  if (!r.ok()) return ReportError(r.status().WithContext("agent status"), json);
  if (json) {
    Json deps = Json::array();
    for (const auto& d : r->deployments) {
      Json j = {{"id", d.id},
                {"package", d.package},
                {"version", d.version},
                {"kind", d.kind},
                {"program", d.program},
                {"state", d.state},
                {"attempts", d.attempts},
                {"bytes_done", d.bytes_done},
                {"bytes_total", d.bytes_total},
                {"requested", d.requested},
                {"removed", d.removed},
                {"last_error", d.last_error},
                {"output", d.output}};
      if (d.exit_code) j["exit_code"] = *d.exit_code;
      if (d.next_try_ms) j["next_try_ms"] = d.next_try_ms;
      deps.push_back(std::move(j));
    }
    PrintJson({{"site", r->site},
               {"client", r->client},
               {"deployments", deps},
               {"installed", r->installed},
               {"cache",
                {{"bytes", r->cache_bytes},
                 {"chunks", r->cache_chunks},
                 {"max_bytes", r->cache_max_bytes}}},
               {"outbox", r->outbox}});
    return kExitOk;
  }
  std::printf("client %s of %s\n", r->client.c_str(), r->site.c_str());
  std::printf("%-6s %-24s %-8s %-10s %-13s %-14s %s\n", "ID", "PACKAGE", "VERSION", "KIND", "STATE",
              "PROGRESS", "LAST ERROR");
  for (const auto& d : r->deployments) {
    std::string progress =
        d.bytes_total > 0 ? HumanBytes(d.bytes_done) + "/" + HumanBytes(d.bytes_total) : "-";
    std::string state = d.state + (d.removed ? " (removed)" : "");
    std::printf("%-6lld %-24s %-8lld %-10s %-13s %-14s %s\n", static_cast<long long>(d.id),
                d.package.c_str(), static_cast<long long>(d.version), d.kind.c_str(), state.c_str(),
                progress.c_str(), d.last_error.substr(0, 80).c_str());
  }
  for (const auto& [p, v] : r->installed)
    std::printf("installed: %s version %lld\n", p.c_str(), static_cast<long long>(v));
  std::printf("cache: %s in %llu chunks (limit %s); %lld messages waiting to be sent\n",
              HumanBytes(r->cache_bytes).c_str(), static_cast<unsigned long long>(r->cache_chunks),
              HumanBytes(r->cache_max_bytes).c_str(), static_cast<long long>(r->outbox));
  return kExitOk;
}

int Install(const std::string& data, const std::string& package, bool json) {
  core::Env* env = core::Env::Default();
  Status s = agent::Agent::RequestInstall(env, data, package);
  if (!s.ok()) return ReportError(s.WithContext("agent install"), json);
  // When no agent process is driving this directory, do the work now.
  auto a = agent::Agent::Open(env, core::Clock::Real(), data, {});
  if (!a.ok()) {
    if (!a.status().IsUnavailable())
      return ReportError(a.status().WithContext("agent install"), json);
    if (json) {
      PrintJson({{"package", package}, {"requested", true}, {"outcome", "queued"}});
    } else {
      std::printf("requested %s; the running agent installs it now\n", package.c_str());
    }
    return kExitOk;
  }
  s = (*a)->EnsureEnrolled("");
  if (!s.ok()) return ReportError(s.WithContext("agent install"), json);
  auto outcome = (*a)->RunOnce();
  if (!outcome.ok()) return ReportError(outcome.status().WithContext("agent install"), json);
  bool failed = *outcome == agent::Agent::Outcome::kFailed;
  if (json) {
    PrintJson({{"package", package}, {"requested", true}, {"outcome", failed ? "failed" : "done"}});
  } else {
    std::printf("%s %s (`depot agent status --data %s` shows the details)\n", package.c_str(),
                failed ? "failed" : "done", data.c_str());
  }
  return failed ? kExitFailed : kExitOk;
}

}  // namespace

void AddAgentCommands(CLI::App* app, GlobalFlags* flags, int* exit_code) {
  auto* agent_cmd = app->add_subcommand("agent", "Run the agent of a managed machine");
  agent_cmd->require_subcommand(1);
  {
    auto f = std::make_shared<RunFlags>();
    auto* cmd = agent_cmd->add_subcommand(
        "run", "Enroll (first start), then poll the policy and install what it says");
    cmd->add_option("--data", f->data, "Agent data directory (created on first start)")->required();
    cmd->add_option("--site", f->sites,
                    "Site URL (first start; then kept in DIR/agent.json); repeat it for each "
                    "process of a site on several machines, tried in turn on failure");
    cmd->add_option("--enroll-token", f->enroll_token, "Enrollment token (first start only)");
    cmd->add_option("--ca", f->ca, "CA certificate to trust for the site and DPs");
    cmd->add_option("--name", f->name, "Client name (default: the host name)");
    cmd->add_option("--tag", f->tags, "KEY=VALUE attribute (tag.KEY at the site); repeatable");
    cmd->add_flag("--once", f->once,
                  "One full cycle, then exit: 0 success, 1 something failed, 4 nothing to do");
    cmd->add_option("--poll-interval", f->poll_interval,
                    "Seconds (or 90s, 5m) between polls (default: the site's)");
    cmd->add_option("--long-poll", f->long_poll,
                    "While idle, let the site hold each poll up to this long (at most 110s), "
                    "so changes arrive at once; 0 (the default): plain polls");
    cmd->add_option("--cache-size", f->cache_size, "Chunk cache limit in bytes (default 4 GiB)");
    cmd->add_option("--purge-grace", f->purge_grace,
                    "Keep content of removed deployments this long (default 1h)");
    cmd->add_option("--parallel", f->parallel, "Concurrent chunk downloads (default 8)");
    cmd->add_option("--max-rate", f->max_rate,
                    "Download rate limit per transfer in bytes/s (0: none)");
    cmd->add_option("--stall-timeout", f->stall_timeout,
                    "Abandon a source slower than 1 KiB/s this long (default 30s)");
    cmd->add_option("--retry-base", f->retry_base,
                    "First retry delay after a failure (default 60s)");
    cmd->add_option("--source-penalty", f->source_penalty,
                    "How long a failed source goes last (default 10m)");
    cmd->add_option("--max-attempts", f->max_attempts,
                    "Attempts before a failure is final (default 10)");
    cmd->callback([=] { *exit_code = RunAgent(*f, flags->json); });
  }
  {
    auto data = std::make_shared<std::string>();
    auto* cmd = agent_cmd->add_subcommand("status",
                                          "Local deployments, their state and progress, cache use");
    cmd->add_option("--data", *data, "Agent data directory")->required();
    cmd->callback([=] { *exit_code = ShowStatus(*data, flags->json); });
  }
  {
    auto data = std::make_shared<std::string>();
    auto package = std::make_shared<std::string>();
    auto* cmd = agent_cmd->add_subcommand("install", "Install an available deployment now");
    cmd->add_option("--data", *data, "Agent data directory")->required();
    cmd->add_option("package", *package, "Package name")->required();
    cmd->callback([=] { *exit_code = Install(*data, *package, flags->json); });
  }
}

}  // namespace depot::cli
