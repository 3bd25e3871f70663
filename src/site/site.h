// The site server (docs/site.md, docs/architecture.md): catalog, content library,
// HTTP API, reconciler and status messages, in one process.
//
// A site lives in a data directory made by InitSite:
//   DIR/site.toml     configuration (written last: its presence marks a complete
//                     directory)
//   DIR/catalog.db    the catalog (SQLite, WAL)
//   DIR/library/      the content library: a depot repository (TUF keys, metadata,
//                     manifests, chunks), served at /repo/
//   DIR/tls/          a private CA and the site's certificate, with --make-ca
//
// Thread safety: a Site is started and stopped by one thread; its server and
// background worker run on their own threads.
#pragma once

#include <memory>
#include <string>

#include "core/clock.h"
#include "core/env.h"
#include "core/status.h"
#include "http/server.h"
#include "site/config.h"

namespace depot::site {

struct InitOptions {
  std::string data_dir;
  std::string code;
  std::string listen = "127.0.0.1:8080";
  std::string public_url;
  std::string tls_cert;  // existing PEM files to use...
  std::string tls_key;
  bool make_ca = false;  // ...or make a private CA and a certificate for the site
  int keep_versions = 5;
  // A child site (docs/hierarchy.md): its parent's URL, the token `depot child add`
  // printed there, and a CA to trust for the parent ("" the system's).
  std::string parent_url;
  std::string parent_token;
  std::string parent_ca;
  // The catalog: "" the SQLite file in the data directory, else an empty PostgreSQL
  // database's connection string (docs/scale-out.md).
  std::string db;
};

struct InitResult {
  std::string config_path;
  std::string admin_token;  // shown once; only its hash is stored
  std::string ca_file;      // with make_ca: the CA certificate to give to clients
};

// Creates a site data directory. InvalidArgument for a bad code, address or a
// directory that exists and is not empty; IOError from the disk.
core::Result<InitResult> InitSite(core::Env* env, core::Clock* clock, const InitOptions& options);

struct ServeOverrides {
  std::string listen;      // replaces the configured address when set
  std::string access_log;  // replaces the configured access log when set
};

struct SiteContext;
class SiteApi;
class ChildLink;

class Site {
 public:
  // Opens the data directory: configuration, catalog (migrated to this binary's
  // schema), content library, and recovery of work a crash interrupted. `env` and
  // `clock` must outlive the site.
  static core::Result<std::unique_ptr<Site>> Open(core::Env* env, core::Clock* clock,
                                                  const std::string& data_dir,
                                                  const ServeOverrides& overrides = {});
  ~Site();  // Stop()s

  // Starts the HTTP server and the background worker (DP probes, retention, content
  // collection, metadata refresh). Unavailable when the address is in use.
  core::Status Start();
  // Graceful: finishes requests in flight, answers long polls, stops the worker.
  void Stop();

  // The base URL the site is reachable at (after Start).
  std::string url() const;
  const SiteConfig& config() const;
  SiteContext* context() { return ctx_.get(); }

 private:
  Site();
  struct Worker;
  std::unique_ptr<SiteContext> ctx_;
  std::unique_ptr<SiteApi> api_;
  std::unique_ptr<Worker> worker_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<ChildLink> link_;  // at a child site
};

}  // namespace depot::site
