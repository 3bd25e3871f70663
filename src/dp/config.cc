#include <sstream>
#include <toml++/toml.h>

#include "dp/dp.h"

namespace depot::dp {

using core::Status;

namespace {

constexpr char kConfigFile[] = "dp.toml";

std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string Dur(core::Duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  if (ms % 1000 != 0) return std::to_string(ms) + "ms";
  return std::to_string(ms / 1000) + "s";
}

}  // namespace

core::Result<DpConfig> LoadDpConfig(core::Env* env, const std::string& data_dir) {
  std::string path = core::JoinPath(data_dir, kConfigFile);
  auto text = env->ReadFile(path, 1 << 20);
  if (!text.ok()) {
    if (text.status().IsNotFound()) {
      return Status::NotFound(path + " not found: start the DP once with `depot dp serve --data " + data_dir +
                              " --site URL --token TOKEN`");
    }
    return text.status();
  }
  toml::table t;
  try {
    t = toml::parse(*text, path);
  } catch (const toml::parse_error& e) {
    std::ostringstream where;
    where << e.source().begin;
    return Status::InvalidArgument(path + ":" + where.str() + ": " + std::string(e.description()));
  }
  DpConfig c;
  auto bad = [&](const std::string& key, const std::string& rule) {
    return Status::InvalidArgument(path + ": " + key + " " + rule);
  };
  for (auto&& [k, v] : t) {
    std::string key(k.str());
    auto str = [&](std::string* out) -> Status {
      auto s = v.value<std::string>();
      if (!s) return bad(key, "must be a string");
      *out = *s;
      return Status::Ok();
    };
    auto num = [&](std::uint64_t* out) -> Status {
      auto n = v.value<std::int64_t>();
      if (!n || *n < 0) return bad(key, "must be a non-negative integer");
      *out = static_cast<std::uint64_t>(*n);
      return Status::Ok();
    };
    auto dur = [&](core::Duration* out) -> Status {
      auto s = v.value<std::string>();
      if (!s) return bad(key, "must be a duration string like 90s");
      auto d = core::ParseDuration(*s);
      if (!d.ok() || d->count() <= 0) return bad(key, "must be a duration like 250ms, 90s, 15m, 12h or 30d");
      *out = *d;
      return Status::Ok();
    };
    std::uint64_t n = 0;
    if (key == "site") {
      DEPOT_RETURN_IF_ERROR(str(&c.site));
    } else if (key == "token") {
      DEPOT_RETURN_IF_ERROR(str(&c.token));
    } else if (key == "upstream") {
      DEPOT_RETURN_IF_ERROR(str(&c.upstream));
    } else if (key == "listen") {
      DEPOT_RETURN_IF_ERROR(str(&c.listen));
    } else if (key == "tls_cert") {
      DEPOT_RETURN_IF_ERROR(str(&c.tls_cert));
    } else if (key == "tls_key") {
      DEPOT_RETURN_IF_ERROR(str(&c.tls_key));
    } else if (key == "ca") {
      DEPOT_RETURN_IF_ERROR(str(&c.ca));
    } else if (key == "max_sync_rate") {
      DEPOT_RETURN_IF_ERROR(num(&c.max_sync_rate));
    } else if (key == "parallel") {
      DEPOT_RETURN_IF_ERROR(num(&n));
      if (n < 1 || n > 64) return bad(key, "must be from 1 to 64");
      c.parallel = static_cast<unsigned>(n);
    } else if (key == "scrub_rate") {
      DEPOT_RETURN_IF_ERROR(num(&c.scrub_rate));
    } else if (key == "scrub_every") {
      DEPOT_RETURN_IF_ERROR(dur(&c.scrub_every));
    } else if (key == "scrub_start") {
      DEPOT_RETURN_IF_ERROR(dur(&c.scrub_start));
    } else if (key == "gc_grace") {
      DEPOT_RETURN_IF_ERROR(dur(&c.gc_grace));
    } else if (key == "retry_base") {
      DEPOT_RETURN_IF_ERROR(dur(&c.retry_base));
    } else if (key == "retry_max") {
      DEPOT_RETURN_IF_ERROR(dur(&c.retry_max));
    } else if (key == "poll_wait") {
      DEPOT_RETURN_IF_ERROR(dur(&c.poll_wait));
    } else if (key == "access_log") {
      DEPOT_RETURN_IF_ERROR(str(&c.access_log));
    } else if (key == "max_connections") {
      DEPOT_RETURN_IF_ERROR(num(&n));
      c.max_connections = n;
    } else {
      return Status::InvalidArgument(path + ": unknown key `" + key + "` (docs/dp.md lists the keys)");
    }
  }
  if (c.site.empty() || c.token.empty()) return bad("site/token", "are required");
  return c;
}

Status SaveDpConfig(core::Env* env, const std::string& data_dir, const DpConfig& c) {
  std::ostringstream o;
  o << "# depot distribution point (docs/dp.md). Holds this DP's token: keep it 0600.\n"
    << "site = " << Quote(c.site) << "\n"
    << "token = " << Quote(c.token) << "\n"
    << "upstream = " << Quote(c.upstream) << "\n"
    << "listen = " << Quote(c.listen) << "\n"
    << "tls_cert = " << Quote(c.tls_cert) << "\n"
    << "tls_key = " << Quote(c.tls_key) << "\n"
    << "ca = " << Quote(c.ca) << "\n"
    << "max_sync_rate = " << c.max_sync_rate << "\n"
    << "parallel = " << c.parallel << "\n"
    << "scrub_rate = " << c.scrub_rate << "\n"
    << "scrub_every = " << Quote(Dur(c.scrub_every)) << "\n"
    << "scrub_start = " << Quote(Dur(c.scrub_start)) << "\n"
    << "gc_grace = " << Quote(Dur(c.gc_grace)) << "\n"
    << "retry_base = " << Quote(Dur(c.retry_base)) << "\n"
    << "retry_max = " << Quote(Dur(c.retry_max)) << "\n"
    << "poll_wait = " << Quote(Dur(c.poll_wait)) << "\n"
    << "max_connections = " << c.max_connections << "\n"
    << "access_log = " << Quote(c.access_log) << "\n";
  DEPOT_RETURN_IF_ERROR(env->CreateDirs(data_dir, 0750));
  return env->WriteFileAtomic(core::JoinPath(data_dir, kConfigFile), o.str(), 0600);
}

}  // namespace depot::dp
