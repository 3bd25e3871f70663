#include "catalog/schema.h"

namespace depot::catalog {
namespace {

// Migration 1: the whole first schema. Times are BIGINT milliseconds since the epoch.
constexpr std::string_view kV1 = R"sql(
CREATE TABLE meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- Credentials. Only the SHA-256 of a secret is stored. kind: admin, operator,
-- read-only (people and scripts), enroll (agents enroll with it), dp (one per DP),
-- agent (one per enrolled client). subject_id names the DP or client.
CREATE TABLE tokens (
  id {{ID}},
  kind TEXT NOT NULL,
  name TEXT NOT NULL,
  secret_hash TEXT NOT NULL UNIQUE,
  subject_id BIGINT,
  created_at BIGINT NOT NULL,
  expires_at BIGINT,
  uses_left BIGINT,
  uses BIGINT NOT NULL DEFAULT 0,
  last_used_at BIGINT,
  revoked_at BIGINT
);

CREATE TABLE packages (
  id {{ID}},
  name TEXT NOT NULL UNIQUE,
  uid TEXT NOT NULL UNIQUE,
  description TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL,
  deleted_at BIGINT
);

-- One row per package version. state: publishing (number reserved, signing in
-- progress), active (signed, in the repository's targets), retired (removed from
-- the targets by retention or deletion; content collected after the grace period).
CREATE TABLE versions (
  id {{ID}},
  package_id BIGINT NOT NULL REFERENCES packages(id),
  version BIGINT NOT NULL,
  state TEXT NOT NULL,
  manifest_id TEXT NOT NULL DEFAULT '',
  manifest_bytes BIGINT NOT NULL DEFAULT 0,
  files BIGINT NOT NULL DEFAULT 0,
  bytes BIGINT NOT NULL DEFAULT 0,
  chunks BIGINT NOT NULL DEFAULT 0,
  programs TEXT NOT NULL DEFAULT '[]',
  created_at BIGINT NOT NULL,
  retired_at BIGINT,
  collected_at BIGINT,
  UNIQUE (package_id, version)
);

CREATE TABLE dps (
  id {{ID}},
  name TEXT NOT NULL UNIQUE,
  url TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  last_seen_at BIGINT,
  -- The site's own checks of a DP that stopped polling: counted and backed off
  -- per DP, never touching other DPs.
  probe_attempts BIGINT NOT NULL DEFAULT 0,
  next_probe_at BIGINT,
  probe_error TEXT
);

CREATE TABLE dp_groups (
  dp_id BIGINT NOT NULL REFERENCES dps(id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  PRIMARY KEY (dp_id, name)
);
CREATE INDEX dp_groups_name ON dp_groups(name);

CREATE TABLE dp_boundaries (
  dp_id BIGINT NOT NULL REFERENCES dps(id) ON DELETE CASCADE,
  cidr TEXT NOT NULL,
  PRIMARY KEY (dp_id, cidr)
);

-- A package assigned to a DP or a DP group: its current and future versions.
CREATE TABLE distributions (
  id {{ID}},
  package_id BIGINT NOT NULL REFERENCES packages(id),
  target_kind TEXT NOT NULL,
  target TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (package_id, target_kind, target)
);

-- The reconciliation record: one per (package version, DP). state: pending,
-- syncing, ready, failed. attempts/next_retry_at are this record's own backoff.
CREATE TABLE dp_records (
  version_id BIGINT NOT NULL REFERENCES versions(id),
  dp_id BIGINT NOT NULL REFERENCES dps(id) ON DELETE CASCADE,
  state TEXT NOT NULL,
  attempts BIGINT NOT NULL DEFAULT 0,
  next_retry_at BIGINT,
  last_error TEXT,
  bytes_total BIGINT NOT NULL DEFAULT 0,
  bytes_done BIGINT NOT NULL DEFAULT 0,
  chunks_total BIGINT NOT NULL DEFAULT 0,
  chunks_done BIGINT NOT NULL DEFAULT 0,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (version_id, dp_id)
);
CREATE INDEX dp_records_dp ON dp_records(dp_id);
CREATE INDEX dp_records_retry ON dp_records(next_retry_at);

-- Managed machines. attributes: a JSON object of strings (hostname, os, arch,
-- ips, agent_version, tag.KEY...).
CREATE TABLE clients (
  id {{ID}},
  uid TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  attributes TEXT NOT NULL,
  address TEXT NOT NULL DEFAULT '',
  enrolled_at BIGINT NOT NULL,
  last_seen_at BIGINT,
  attributes_at BIGINT NOT NULL
);
CREATE INDEX clients_name ON clients(name);

-- kind: static (members listed) or rule (members computed from the rule and kept
-- up to date when a client's attributes or the rule change).
CREATE TABLE collections (
  id {{ID}},
  name TEXT NOT NULL UNIQUE,
  kind TEXT NOT NULL,
  rule TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  created_at BIGINT NOT NULL
);

CREATE TABLE collection_members (
  collection_id BIGINT NOT NULL REFERENCES collections(id) ON DELETE CASCADE,
  client_id BIGINT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
  PRIMARY KEY (collection_id, client_id)
);
CREATE INDEX collection_members_client ON collection_members(client_id);

-- kind: required or available. windows: JSON list of daily maintenance windows.
-- pinned_version NULL follows the package's newest version.
CREATE TABLE deployments (
  id {{ID}},
  package_id BIGINT NOT NULL REFERENCES packages(id),
  pinned_version BIGINT,
  program TEXT NOT NULL,
  collection_id BIGINT NOT NULL REFERENCES collections(id),
  kind TEXT NOT NULL,
  start_at BIGINT NOT NULL,
  deadline_at BIGINT,
  windows TEXT NOT NULL DEFAULT '[]',
  created_at BIGINT NOT NULL,
  cancelled_at BIGINT
);
CREATE INDEX deployments_collection ON deployments(collection_id);

-- What each client last reported for each deployment.
CREATE TABLE client_deployments (
  client_id BIGINT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
  deployment_id BIGINT NOT NULL REFERENCES deployments(id),
  state TEXT NOT NULL,
  version BIGINT,
  exit_code BIGINT,
  detail TEXT NOT NULL DEFAULT '',
  report_seq BIGINT NOT NULL DEFAULT 0,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (client_id, deployment_id)
);
CREATE INDEX client_deployments_deployment ON client_deployments(deployment_id);

-- Status messages. source: "site", "dp:NAME", "client:UID"; source_seq is the
-- sender's sequence number (NULL for the site's own), so re-sent batches are
-- dropped. dedup_key: messages with the same key are one record with a count
-- (a retry is a counter, not a new message).
CREATE TABLE messages (
  id {{ID}},
  code BIGINT NOT NULL,
  severity TEXT NOT NULL,
  component TEXT NOT NULL,
  source TEXT NOT NULL,
  source_seq BIGINT,
  dedup_key TEXT,
  at BIGINT NOT NULL,
  last_at BIGINT NOT NULL,
  count BIGINT NOT NULL DEFAULT 1,
  package TEXT,
  version BIGINT,
  dp TEXT,
  client TEXT,
  deployment BIGINT,
  params TEXT NOT NULL DEFAULT '{}',
  text TEXT NOT NULL
);
CREATE UNIQUE INDEX messages_source_seq ON messages(source, source_seq);
CREATE UNIQUE INDEX messages_dedup ON messages(dedup_key);
CREATE INDEX messages_last_at ON messages(last_at);
)sql";

// Migration 2: agents' reports steer distribution. A record an agent reported stale or
// corrupt is 'verifying': out of every policy until the DP re-verifies that version
// (verify_seq counts the site's requests; the DP's ready report must name the latest)
// and reports it ready again. state_since: when the record entered its state, for
// `depot status` ("behind since").
constexpr std::string_view kV2 = R"sql(
ALTER TABLE dp_records ADD COLUMN state_since BIGINT;
ALTER TABLE dp_records ADD COLUMN verify_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dp_records ADD COLUMN verify_chunks TEXT NOT NULL DEFAULT '[]';
ALTER TABLE dp_records ADD COLUMN verify_reason TEXT;
UPDATE dp_records SET state_since = updated_at;
)sql";

// Migration 3: the hierarchy of sites (docs/hierarchy.md).
// At a parent: its children (each authenticates with a tokens row of kind 'child',
// subject_id = children.id), the highest report sequence it applied from each, and the
// subtree's state as its children reported it. `site` there is the path of the site the
// row comes from, relative to this one ("B", "B/D").
// At a child: the one row of its link to the parent, and up_dirty -- what changed since
// the parent last acknowledged, one row per changed thing (so the queue is bounded by
// the number of things, not of changes), sent as its current state.
constexpr std::string_view kV3 = R"sql(
CREATE TABLE children (
  id {{ID}},
  code TEXT NOT NULL UNIQUE,
  all_packages BIGINT NOT NULL DEFAULT 0,
  max_rate BIGINT NOT NULL DEFAULT 0,
  windows TEXT NOT NULL DEFAULT '[]',
  created_at BIGINT NOT NULL,
  last_feed_at BIGINT,
  last_report_at BIGINT,
  up_seq BIGINT NOT NULL DEFAULT 0,
  link TEXT NOT NULL DEFAULT '{}',
  health TEXT NOT NULL DEFAULT 'active',
  health_since BIGINT
);
CREATE TABLE parent_link (
  id BIGINT PRIMARY KEY,
  state TEXT NOT NULL DEFAULT 'active',
  state_since BIGINT,
  failures BIGINT NOT NULL DEFAULT 0,
  last_contact_at BIGINT,
  last_error TEXT NOT NULL DEFAULT '',
  versions_behind BIGINT NOT NULL DEFAULT 0,
  bytes_behind BIGINT NOT NULL DEFAULT 0,
  acked_seq BIGINT NOT NULL DEFAULT 0,
  max_rate BIGINT NOT NULL DEFAULT 0,
  windows TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE up_dirty (
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  seq BIGINT NOT NULL,
  PRIMARY KEY (kind, key)
);
CREATE INDEX up_dirty_seq ON up_dirty(seq);
CREATE TABLE tree_sites (
  site TEXT PRIMARY KEY,
  link TEXT NOT NULL DEFAULT '{}',
  updated_at BIGINT NOT NULL
);
CREATE TABLE tree_clients (
  site TEXT NOT NULL,
  uid TEXT NOT NULL,
  name TEXT NOT NULL,
  attributes TEXT NOT NULL DEFAULT '{}',
  enrolled_at BIGINT,
  last_seen_at BIGINT,
  PRIMARY KEY (site, uid)
);
CREATE TABLE tree_client_deployments (
  site TEXT NOT NULL,
  client_uid TEXT NOT NULL,
  deployment_id BIGINT NOT NULL,
  state TEXT NOT NULL,
  version BIGINT,
  exit_code BIGINT,
  detail TEXT NOT NULL DEFAULT '',
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (site, client_uid, deployment_id)
);
CREATE INDEX tree_client_deployments_deployment ON tree_client_deployments(deployment_id);
CREATE TABLE tree_dps (
  site TEXT NOT NULL,
  name TEXT NOT NULL,
  state TEXT NOT NULL,
  detail TEXT NOT NULL DEFAULT '{}',
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (site, name)
);
ALTER TABLE messages ADD COLUMN site TEXT NOT NULL DEFAULT '';
CREATE INDEX messages_site ON messages(site);
INSERT INTO meta (key, value) VALUES ('up_seq', '0');
)sql";

// A DP's link has a bandwidth schedule like a child's (docs/hierarchy.md), carried
// in its assignment.
constexpr std::string_view kV4 = R"sql(
ALTER TABLE dps ADD COLUMN max_rate BIGINT NOT NULL DEFAULT 0;
ALTER TABLE dps ADD COLUMN windows TEXT NOT NULL DEFAULT '[]';
)sql";

// Several site processes on one catalog (docs/scale-out.md): who is alive, who holds
// which background job, and which process a version's reservation belongs to.
constexpr std::string_view kV5 = R"sql(
CREATE TABLE site_processes (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid BIGINT NOT NULL,
  url TEXT NOT NULL DEFAULT '',
  started_at BIGINT NOT NULL,
  seen_at BIGINT NOT NULL
);
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  holder TEXT NOT NULL,
  expires_at BIGINT NOT NULL
);
ALTER TABLE versions ADD COLUMN reserved_by TEXT;
)sql";

// The console shows what each version added: the bytes of its chunks the previous
// version lacked (NULL where not known: versions made before, replicas).
constexpr std::string_view kV6 = R"sql(
ALTER TABLE versions ADD COLUMN new_bytes BIGINT;
)sql";

}  // namespace

const std::vector<Migration>& SiteMigrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "initial schema", kV1},         {2, "reports steer distribution", kV2},
      {3, "hierarchy of sites", kV3},     {4, "DP bandwidth schedules", kV4},
      {5, "several site processes", kV5}, {6, "bytes new in each version", kV6},
  };
  return kMigrations;
}

}  // namespace depot::catalog
