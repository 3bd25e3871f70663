// depot up: a site, one DP and one agent in one process on embedded defaults (SQLite,
// local disk), for a first look. With --demo it also pushes a sample package through
// them -- create (or, on a later run, update) it, distribute it to the DP, deploy it
// as required to the local agent -- and shows it flowing until it is installed.
//
// Data directory:
//   DIR/up.json    what `up` must remember: the admin token (0600; the site keeps
//                  only its hash)
//   DIR/site/      the site's data directory (depot site init)
//   DIR/dp/        the DP's (depot dp serve)
//   DIR/agent/     the agent's (depot agent run)
//   DIR/demo/      the demo's sample source tree
// Each part is the same code and on-disk format as its stand-alone command, so a
// directory made by `up` can later be run piece by piece.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "agent/agent.h"
#include "cli/api_client.h"
#include "cli/commands.h"
#include "cli/json_output.h"
#include "cli/output.h"
#include "cli/package_upload.h"
#include "core/env.h"
#include "core/errors.h"
#include "core/log.h"
#include "dp/dp.h"
#include "site/site.h"

namespace depot::cli {

using core::Result;
using core::Status;

namespace {

constexpr const char* kDpName = "local";
constexpr const char* kAgentName = "local";
constexpr const char* kDemoPackage = "sample";
constexpr const char* kDemoCollection = "this-machine";

struct UpFlags {
  std::string data = "depot-up";
  std::string listen;  // "" = the stored one, 127.0.0.1:8080 on first start
  bool demo = false;
  int poll_interval_s = 2;
};

std::string Join(const std::string& a, const std::string& b) { return a + "/" + b; }

// HOST and PORT of "HOST:PORT" ("[v6]:PORT" too).
bool SplitListen(const std::string& listen, std::string* host, int* port) {
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  *host = listen.substr(0, colon);
  try {
    std::size_t used = 0;
    *port = std::stoi(listen.substr(colon + 1), &used);
    return used == listen.size() - colon - 1 && *port >= 0 && *port < 65536;
  } catch (...) {
    return false;
  }
}

// A loopback port free at the time of asking: the DP's address must be known before
// it is registered, and registering comes before it can start.
Result<int> FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return core::ErrnoStatus(errno, "socket() while picking the DP's port");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  if (port <= 0) return Status::IOError("no free loopback port for the DP");
  return port;
}

// Prints human lines, or with --json one JSON object per line.
class Reporter {
 public:
  explicit Reporter(bool json) : json_(json) {}
  void Event(const std::string& kind, const Json& fields, const std::string& text) {
    if (json_) {
      Json j = fields;
      j["event"] = kind;
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s\n", text.c_str());
    }
    std::fflush(stdout);
  }

 private:
  bool json_;
};

// The site part: initialised on first start (its admin token remembered in up.json),
// opened and started on every start.
Result<std::unique_ptr<site::Site>> StartSite(core::Env* env, const UpFlags& f,
                                              std::string* admin_token) {
  const std::string dir = Join(f.data, "site");
  const std::string up_json = Join(f.data, "up.json");
  if (!env->Stat(Join(dir, "site.toml")).ok()) {
    // No complete site yet (site.toml is written last): start it over.
    DEPOT_RETURN_IF_ERROR(env->RemoveAll(dir));
    DEPOT_RETURN_IF_ERROR(env->CreateDirs(f.data, 0700));
    site::InitOptions o;
    o.data_dir = dir;
    o.code = "UP";
    o.listen = f.listen.empty() ? "127.0.0.1:8080" : f.listen;
    DEPOT_ASSIGN_OR_RETURN(auto init, site::InitSite(env, core::Clock::Real(), o));
    DEPOT_RETURN_IF_ERROR(
        env->WriteFileAtomic(up_json, Json{{"admin_token", init.admin_token}}.dump(), 0600));
  }
  auto text = env->ReadFile(up_json, 1 << 20);
  if (!text.ok()) {
    return Status::NotFound(
        up_json + " is missing: " + f.data +
        " holds a site `depot up` did not make (or lost its admin token); use another --data "
        "or remove " +
        f.data + " to start over");
  }
  Json j = Json::parse(*text, nullptr, false);
  if (!j.is_object() || !j.contains("admin_token") || !j["admin_token"].is_string()) {
    return Status::Corruption(up_json + " is not what `depot up` wrote; remove " + f.data +
                              " to start over");
  }
  *admin_token = j["admin_token"].get<std::string>();
  site::ServeOverrides ov;
  ov.listen = f.listen;
  DEPOT_ASSIGN_OR_RETURN(auto s, site::Site::Open(env, core::Clock::Real(), dir, ov));
  DEPOT_RETURN_IF_ERROR(s->Start());
  return s;
}

// The DP part: registered with the site on first start (its address fixed then, so
// agents' policies stay valid), told the site's current URL on every start.
Result<std::unique_ptr<dp::DistributionPoint>> StartDp(core::Env* env, const UpFlags& f,
                                                       site::Site* s, ApiClient* api) {
  const std::string dir = Join(f.data, "dp");
  dp::DpConfig cfg;
  auto loaded = dp::LoadDpConfig(env, dir);
  if (loaded.ok()) {
    cfg = *loaded;
  } else if (loaded.status().IsNotFound()) {
    std::string host;
    int port = 0;
    std::string site_listen = s->config().listen;
    if (!SplitListen(site_listen, &host, &port))
      return Status::InvalidArgument("bad site address " + site_listen);
    if (host == "0.0.0.0" || host == "::" || host == "[::]") host = "127.0.0.1";
    int dp_port = 0;
    if (port != 0 && port < 65535) {
      dp_port = port + 1;
    } else {
      DEPOT_ASSIGN_OR_RETURN(dp_port, FreePort());
    }
    std::string url = "http://" + host + ":" + std::to_string(dp_port);
    Json body = {{"name", kDpName},
                 {"url", url},
                 {"groups", Json::array({"local"})},
                 {"boundaries", Json::array({"127.0.0.0/8", "::1"})}};
    auto added = api->Send("POST", "/api/v1/dps", body, "register the DP");
    if (!added.ok()) {
      // Registered before a crash lost its token: register it afresh.
      auto removed = api->SendRaw("DELETE", std::string("/api/v1/dps/") + kDpName, {},
                                  "application/json", "dp remove");
      if (!removed.ok()) return added.status();
      DEPOT_ASSIGN_OR_RETURN(added, api->Send("POST", "/api/v1/dps", body, "register the DP"));
    }
    cfg.token = (*added)["token"].get<std::string>();
    cfg.listen = host + ":" + std::to_string(dp_port);
    cfg.gc_grace = std::chrono::minutes(5);
  } else {
    return loaded.status();
  }
  cfg.site = s->url();
  DEPOT_RETURN_IF_ERROR(dp::SaveDpConfig(env, dir, cfg));
  DEPOT_ASSIGN_OR_RETURN(auto point,
                         dp::DistributionPoint::Open(env, core::Clock::Real(), dir, cfg));
  Status st = point->Start();
  if (!st.ok())
    return st.WithContext("DP on " + cfg.listen + " (its address is fixed at the first start)");
  return point;
}

Result<std::unique_ptr<agent::Agent>> OpenAgent(core::Env* env, const UpFlags& f, site::Site* s,
                                                ApiClient* api) {
  agent::AgentOverrides ov;
  ov.site = s->url();
  ov.name = kAgentName;
  ov.poll_interval = std::chrono::seconds(f.poll_interval_s);
  ov.purge_grace = std::chrono::minutes(5);
  ov.retry_base = std::chrono::seconds(10);
  DEPOT_ASSIGN_OR_RETURN(auto a,
                         agent::Agent::Open(env, core::Clock::Real(), Join(f.data, "agent"), ov));
  std::string token;
  if (!env->Stat(Join(Join(f.data, "agent"), "agent.json")).ok() ||
      !env->Stat(Join(Join(f.data, "agent"), "trusted_root.json")).ok()) {
    DEPOT_ASSIGN_OR_RETURN(
        Json t, api->Send("POST", "/api/v1/tokens", Json{{"role", "enroll"}, {"uses", 1}},
                          "an enrollment token for the local agent"));
    token = t["token"].get<std::string>();
  }
  DEPOT_RETURN_IF_ERROR(a->EnsureEnrolled(token));
  return a;
}

// The collection holding just the local agent, for deployments to this machine.
Status EnsureLocalCollection(ApiClient* api) {
  if (api->Get(std::string("/api/v1/collections/") + kDemoCollection, "collection show").ok())
    return Status::Ok();
  return api
      ->Send(
          "POST", "/api/v1/collections",
          Json{{"name", kDemoCollection}, {"rule", std::string("name == \"") + kAgentName + "\""}},
          "collection create")
      .status();
}

// --- the demo ---------------------------------------------------------------

// A deterministic sample tree: text pages in folders, a 24 MiB binary, an install
// program. Written only when absent.
Status MakeSampleSource(core::Env* env, const std::string& dir) {
  if (env->Stat(Join(dir, "install.sh")).ok()) return Status::Ok();
  std::mt19937_64 rng(7);
  static const char* kWords[] = {"install", "verify", "chunk",  "manifest", "depot",
                                 "site",    "agent",  "policy", "deploy",   "status"};
  for (int i = 0; i < 200; ++i) {
    std::string text;
    int words = 50 + static_cast<int>(rng() % 3000);
    for (int w = 0; w < words; ++w) {
      text += kWords[rng() % 10];
      text += w % 12 == 11 ? '\n' : ' ';
    }
    std::string sub = Join(dir, "doc/part" + std::to_string(i % 10));
    DEPOT_RETURN_IF_ERROR(env->CreateDirs(sub));
    DEPOT_RETURN_IF_ERROR(
        env->WriteFileAtomic(Join(sub, "page" + std::to_string(i) + ".txt"), text));
  }
  std::string bin(24u << 20, '\0');
  for (std::size_t i = 0; i + 8 <= bin.size(); i += 8) {
    std::uint64_t v = rng();
    std::memcpy(&bin[i], &v, 8);
  }
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(Join(dir, "bin")));
  DEPOT_RETURN_IF_ERROR(env->WriteFileAtomic(Join(dir, "bin/app"), bin, 0755));
  return env->WriteFileAtomic(
      Join(dir, "install.sh"),
      "#!/bin/sh\n"
      "# Runs in the installed version's directory, from the signed manifest.\n"
      "echo \"installing $DEPOT_PACKAGE version $DEPOT_VERSION ($(find . -type f | wc -l) "
      "files)\"\n",
      0755);
}

// Changes the sample source a little, differently for each `round`: one page
// rewritten and 4 KiB inside the binary, so an update moves a few chunks.
Status MutateSampleSource(core::Env* env, const std::string& dir, std::int64_t round) {
  std::string page = Join(dir, "doc/part0/page" + std::to_string((round * 10) % 200) + ".txt");
  DEPOT_RETURN_IF_ERROR(
      env->WriteFileAtomic(page, "page rewritten for version " + std::to_string(round + 1) + "\n"));
  DEPOT_ASSIGN_OR_RETURN(std::string bin, env->ReadFile(Join(dir, "bin/app"), 64u << 20));
  std::mt19937_64 rng(static_cast<std::uint64_t>(round));
  std::size_t at =
      (static_cast<std::size_t>(round) * (5u << 20) + (1u << 20)) % (bin.size() - 4096);
  for (std::size_t i = 0; i < 4096; ++i) bin[at + i] = static_cast<char>(rng());
  return env->WriteFileAtomic(Join(dir, "bin/app"), bin, 0755);
}

// Makes sure the demo package is distributed to the DP and deployed as required to
// the local agent (each step idempotent, so a run cut short is finished by the next).
Status EnsureDistributedAndDeployed(ApiClient* api) {
  DEPOT_RETURN_IF_ERROR(api->Send("POST", "/api/v1/distributions",
                                  Json{{"package", kDemoPackage},
                                       {"to", Json::array({std::string("dp:") + kDpName})}},
                                  "distribute")
                            .status());
  DEPOT_ASSIGN_OR_RETURN(Json deps, api->Get("/api/v1/deployments", "deployment list"));
  for (const auto& d : deps["deployments"]) {
    if (d.value("package", "") == kDemoPackage && d.value("state", "") == "active")
      return Status::Ok();
  }
  return api
      ->Send("POST", "/api/v1/deployments",
             Json{{"package", kDemoPackage},
                  {"program", "install"},
                  {"collection", kDemoCollection},
                  {"kind", "required"},
                  {"deadline", "+1d"}},
             "deploy")
      .status();
}

// Follows version `version` from the DP to the installed state, printing each change,
// until the agent's deployment is final and the DP holds the version (an agent may
// finish first, from the site, when the DP is still copying; then the DP gets up to
// 30 s more). Returns the agent's final deployment state, or Unavailable on timeout
// or stop.
Result<agent::DeploymentStatus> Watch(core::Env* env, ApiClient* api, const std::string& agent_dir,
                                      std::int64_t version, const std::atomic<bool>* stop,
                                      Reporter* out) {
  std::string last_dp, last_agent;
  std::optional<agent::DeploymentStatus> final_state;
  bool dp_done = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(10);
  while (!*stop && std::chrono::steady_clock::now() < deadline) {
    if (final_state && dp_done) return *final_state;
    auto dp = api->Get(std::string("/api/v1/dps/") + kDpName, "dp show");
    if (dp.ok()) {
      for (const auto& r : (*dp)["versions"]) {
        if (r.value("package", "") != kDemoPackage || r.value("version", 0) != version) continue;
        std::string state = r.value("state", "");
        std::uint64_t done = r.value("bytes_done", 0ull), total = r.value("bytes_total", 0ull);
        int pct = total ? static_cast<int>(100 * done / total) : 0;
        std::string key = state + "/" + std::to_string(pct / 25);
        dp_done = state == "ready" || state == "failed";
        if (key != last_dp) {
          last_dp = key;
          out->Event(
              "dp", {{"state", state}, {"bytes_done", done}, {"bytes_total", total}},
              "  dp " + std::string(kDpName) + ": " + kDemoPackage + " v" +
                  std::to_string(version) + " " + state +
                  (state == "syncing" ? " " + std::to_string(pct) + "%" : "") +
                  (state == "failed" ? " (" + r.value("last_error", std::string()) + ")" : ""));
        }
      }
    }
    auto local = agent::Agent::LocalStatus(env, agent_dir);
    if (local.ok()) {
      for (const auto& d : local->deployments) {
        if (d.package != kDemoPackage || d.version != version) continue;
        int pct = d.bytes_total ? static_cast<int>(100 * d.bytes_done / d.bytes_total) : 0;
        std::string key = d.state + "/" + std::to_string(pct / 25);
        if (key != last_agent) {
          last_agent = key;
          std::string text = "  agent " + std::string(kAgentName) + ": " + kDemoPackage + " v" +
                             std::to_string(version) + " " + d.state;
          if (d.state == "downloading") text += " " + std::to_string(pct) + "%";
          if (!d.last_error.empty()) text += " (" + d.last_error + ")";
          out->Event(
              "agent",
              {{"state", d.state}, {"bytes_done", d.bytes_done}, {"bytes_total", d.bytes_total}},
              text);
        }
        if (!final_state && (d.state == "succeeded" || d.state == "failed_final")) {
          final_state = d;
          deadline =
              std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(30));
        }
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  if (final_state && !*stop) return *final_state;  // the DP is still behind; the agent is done
  return Status::Unavailable(
      *stop ? "stopped" : "version " + std::to_string(version) + " not installed in 10 minutes");
}

// The 4002 "downloaded" message of `version` as the site received it (the agent's
// outbox delivers it right after the install report), or an empty object.
Json DownloadedMessage(ApiClient* api, std::int64_t version) {
  for (int i = 0; i < 50; ++i) {
    auto m = api->Get(std::string("/api/v1/messages?code=4002&package=") + kDemoPackage +
                          "&version=" + std::to_string(version),
                      "messages");
    if (m.ok() && !(*m)["messages"].empty()) return (*m)["messages"].back();
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return Json::object();
}

std::uint64_t Param(const Json& message, const char* key) {
  if (!message.contains("params") || !message["params"].contains(key)) return 0;
  const Json& v = message["params"][key];
  if (v.is_number()) return v.get<std::uint64_t>();
  try {
    return v.is_string() ? std::stoull(v.get<std::string>()) : 0;
  } catch (...) {
    return 0;
  }
}

Status RunDemo(core::Env* env, const UpFlags& f, ApiClient* api, const std::atomic<bool>* stop,
               Reporter* out) {
  const std::string source = Join(f.data, "demo/source");
  auto existing = api->Get(std::string("/api/v1/packages/") + kDemoPackage, "package show");
  bool create = !existing.ok();
  if (!create) {
    // A later run: change the sample a little and publish the next version.
    std::int64_t latest = 0;
    for (const auto& v : (*existing)["versions"])
      latest = std::max<std::int64_t>(latest, v.value("version", 0));
    DEPOT_RETURN_IF_ERROR(MakeSampleSource(env, source));
    DEPOT_RETURN_IF_ERROR(MutateSampleSource(env, source, latest));
    out->Event("demo", {{"step", "update"}},
               "\n== demo: the sample source changed a little; depot package update " +
                   std::string(kDemoPackage) + " --source " + source);
  } else {
    DEPOT_RETURN_IF_ERROR(MakeSampleSource(env, source));
    out->Event(
        "demo", {{"step", "create"}},
        "\n== demo: depot package create " + std::string(kDemoPackage) + " --source " + source);
  }
  UploadRequest req;
  req.package = kDemoPackage;
  req.source_dir = source;
  req.create = create;
  req.description = "depot up demo package";
  store::Program install;
  install.name = "install";
  install.command = "./install.sh";
  req.programs.push_back(install);
  DEPOT_ASSIGN_OR_RETURN(UploadResult up, UploadPackage(api, req));
  std::int64_t version = up.version.value("version", 0);
  out->Event("uploaded",
             {{"version", version},
              {"files", up.files},
              {"bytes", up.bytes},
              {"chunks", up.chunks},
              {"uploaded_chunks", up.missing_chunks},
              {"uploaded_bytes", up.uploaded_bytes}},
             "  version " + std::to_string(version) + ": " + std::to_string(up.files) + " files, " +
                 HumanBytes(up.bytes) + ", " + std::to_string(up.chunks) +
                 " chunks; uploaded the " + std::to_string(up.missing_chunks) +
                 " chunks the site lacked (" + HumanBytes(up.uploaded_bytes) + " compressed)");
  DEPOT_RETURN_IF_ERROR(EnsureDistributedAndDeployed(api));
  out->Event("demo", {{"step", "deployed"}},
             "== demo: distributed to DP " + std::string(kDpName) +
                 ", deployed as required to collection " + kDemoCollection +
                 " (the local agent); following it:");
  DEPOT_ASSIGN_OR_RETURN(agent::DeploymentStatus d,
                         Watch(env, api, Join(f.data, "agent"), version, stop, out));
  Json dl = DownloadedMessage(api, version);
  std::uint64_t fetched = Param(dl, "bytes_fetched"), cached = Param(dl, "bytes_from_cache");
  std::string installed = Join(Join(f.data, "agent"), std::string("content/") + kDemoPackage + "/" +
                                                          std::to_string(version));
  Json result = {
      {"package", kDemoPackage},    {"version", version},
      {"state", d.state},           {"exit_code", d.exit_code ? Json(*d.exit_code) : Json()},
      {"output", d.output},         {"installed", installed},
      {"bytes", up.bytes},          {"bytes_fetched", fetched},
      {"bytes_from_cache", cached}, {"uploaded_chunks", up.missing_chunks}};
  std::string text = "\n== demo: " + std::string(kDemoPackage) + " version " +
                     std::to_string(version) + " " + d.state;
  if (d.exit_code) text += ", program exit code " + std::to_string(*d.exit_code);
  text += "\n  installed in " + installed;
  if (!d.output.empty())
    text += "\n  program output: " + d.output.substr(0, d.output.find_last_not_of('\n') + 1);
  std::string from = dl.contains("params")
                         ? dl["params"].value("source", std::string("its sources"))
                         : "its sources";
  result["source"] = from;
  text += "\n  agent downloaded " + HumanBytes(fetched) + " from " + from + ", took " +
          HumanBytes(cached) + " locally: installed versions and its cache (version size " +
          HumanBytes(up.bytes) + ")";
  if (!create)
    text += "\n  only the changed chunks moved: run `depot up --demo` again for another update";
  out->Event("result", result, text);
  if (d.state != "succeeded")
    return Status::Unavailable("the demo deployment ended " + d.state + ": " + d.last_error);
  return Status::Ok();
}

int RunUp(const UpFlags& f, bool json) {
  StopSignals signals;  // before any thread starts
  core::Env* env = core::Env::Default();
  Reporter out(json);
  std::string admin_token;
  auto s = StartSite(env, f, &admin_token);
  if (!s.ok()) return ReportError(s.status().WithContext("up: site"), json);
  SiteFlags sf;
  sf.site = (*s)->url();
  sf.token = admin_token;
  auto api = ApiClient::Connect(sf);
  if (!api.ok()) return ReportError(api.status().WithContext("up"), json);
  auto point = StartDp(env, f, s->get(), api->get());
  if (!point.ok()) return ReportError(point.status().WithContext("up: dp"), json);
  auto a = OpenAgent(env, f, s->get(), api->get());
  if (!a.ok()) return ReportError(a.status().WithContext("up: agent"), json);
  Status col = EnsureLocalCollection(api->get());
  if (!col.ok())
    return ReportError(col.WithContext("up: collection " + std::string(kDemoCollection)), json);

  std::atomic<bool> stop{false};
  std::thread waiter([&] {
    signals.Wait();
    stop = true;
  });
  Status agent_status;
  std::thread agent_thread([&] { agent_status = (*a)->Run(&stop); });

  const std::string agent_dir = Join(f.data, "agent");
  out.Event("up",
            {{"url", (*s)->url()},
             {"console", (*s)->url() + "/console/"},
             {"admin_token", admin_token},
             {"dp", (*point)->url()},
             {"agent", agent_dir},
             {"data", f.data}},
            "depot up: site " + (*s)->url() + ", DP " + kDpName + " at " + (*point)->url() +
                ", agent " + kAgentName + " on " + agent_dir + "\n\nConsole: " + (*s)->url() +
                "/console/ (sign in with the admin token)\n\nAdmin token (kept in " +
                Join(f.data, "up.json") + "):\n\n  export DEPOT_SITE=" + (*s)->url() +
                " DEPOT_TOKEN=" + admin_token +
                "\n\nNext, in another shell:\n"
                "  depot status                       # packages, DPs, deployments, clients\n"
                "  depot package create NAME --source DIR --program install=./install.sh\n"
                "  depot distribute NAME --to local\n"
                "  depot deploy NAME --program install --to " +
                kDemoCollection +
                " --required\n"
                "  depot messages                     # what happened, as status messages\n"
                "  depot agent status --data " +
                agent_dir + "\n\nCtrl-C stops everything; the next `depot up --data " + f.data +
                "` carries on.");
  int rc = kExitOk;
  if (f.demo) {
    Status d = RunDemo(env, f, api->get(), &stop, &out);
    if (!d.ok() && !stop) rc = ReportError(d.WithContext("up --demo"), json);
    if (!stop) out.Event("serving", Json::object(), "\nstill serving; Ctrl-C stops it");
  }
  waiter.join();
  agent_thread.join();
  (*point)->Stop();
  (*s)->Stop();
  if (!agent_status.ok()) return ReportError(agent_status.WithContext("up: agent"), json);
  return rc;
}

}  // namespace

void AddUpCommand(CLI::App* app, GlobalFlags* flags, int* exit_code) {
  auto f = std::make_shared<UpFlags>();
  auto* cmd =
      app->add_subcommand("up", "Run a site, a DP and an agent in one process, for a first look");
  cmd->add_option("--data", f->data, "Data directory (default ./depot-up; created on first start)");
  cmd->add_option("--listen", f->listen,
                  "The site's HOST:PORT (default 127.0.0.1:8080; the DP takes PORT+1)");
  cmd->add_flag("--demo", f->demo,
                "Create (or update) a sample package and follow it to the installed state");
  cmd->add_option("--poll-interval", f->poll_interval_s,
                  "The agent's policy poll, seconds (default 2)");
  cmd->callback([=] { *exit_code = RunUp(*f, flags->json); });
}

}  // namespace depot::cli
