"""One site served by several `depot site serve` processes sharing one PostgreSQL
catalog and one data directory (docs/scale-out.md), for the scale-out tests."""
import os
import re
import subprocess

from harness import Nginx, SiteProcess, free_port, new_postgres_catalog, run_depot, run_nginx


class SiteNode(SiteProcess):
    """One process of a cluster: a `site serve` of the cluster's data directory on its
    own loopback port."""

    def __init__(self, cluster, name, env=None):
        self.data = cluster.data
        self.name = name
        self.admin_token = cluster.admin_token
        self.ca = ""
        self.db = cluster.db
        self.env = env
        self.proc = None
        self.start()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def restart(self, env=None):
        """Starts it again on the same address (DPs and agents keep its URL)."""
        self.env = env
        self.start(["--listen", self.url.split("://", 1)[1]])


class SiteCluster:
    """`n` processes of one site; settings replace site.toml string keys (lease_ttl,
    gc_grace, ...). Needs DEPOT_TEST_PG (ctest's postgres fixture)."""

    def __init__(self, workdir, n=3, settings=None, code="TST", init_args=()):
        self.db = new_postgres_catalog()
        if not self.db:
            raise AssertionError("a cluster needs PostgreSQL: run through ctest (DEPOT_TEST_PG)")
        self.data = os.path.join(workdir, "site-" + code.lower())
        _, out, _ = run_depot("site", "init", "--data", self.data, "--code", code, "--listen", "127.0.0.1:0",
                              "--db", self.db, *init_args, json_out=True)
        self.admin_token = out["admin_token"]
        cfg = os.path.join(self.data, "site.toml")
        with open(cfg) as f:
            text = f.read()
        for key, value in {"lease_ttl": "2s", **(settings or {})}.items():
            text, count = re.subn(rf'^{key} = "[^"]*"', f'{key} = "{value}"', text, flags=re.M)
            assert count == 1, f"site.toml has no string setting {key}"
        with open(cfg, "w") as f:
            f.write(text)
        self.nodes = [SiteNode(self, chr(ord("a") + i)) for i in range(n)]

    def stop(self):
        for node in self.nodes:
            if node.alive():
                node.stop()

    def query(self, sql):
        """Rows (lists of strings) of one SQL query on the catalog."""
        p = subprocess.run(["psql", self.db, "-AtF", "\t", "-c", sql], check=True, capture_output=True, text=True)
        return [line.split("\t") for line in p.stdout.splitlines() if line]

    def urls(self, first):
        """Every node's URL, `first` first: what a DP or agent is given as --site."""
        order = [first] + [n for n in self.nodes if n is not first]
        return [n.url for n in order if n.url]

    def site_flags(self, first):
        flags = []
        for url in self.urls(first)[1:]:
            flags += ["--site", url]
        return flags


class Balancer(Nginx):
    """A real nginx in front of `urls`, as an operator would put one: a backend that
    refuses connections or answers 502/503/504 is skipped for the next."""

    def __init__(self, workdir, urls):
        self.dir = os.path.join(workdir, "balancer")
        self.port = free_port()
        servers = "".join(f"    server {u.split('://', 1)[1]} max_fails=1 fail_timeout=2s;\n" for u in urls)
        self.proc = run_nginx(self.dir, self.port, f"""
  upstream site {{
{servers}  }}
  server {{
    listen 127.0.0.1:{self.port};
    client_max_body_size 0;
    location / {{
      proxy_pass http://site;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_read_timeout 180s;
      proxy_request_buffering off;
      proxy_next_upstream error timeout http_502 http_503 http_504 non_idempotent;
    }}
  }}""")
        self.url = f"http://127.0.0.1:{self.port}"
