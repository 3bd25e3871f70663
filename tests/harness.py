"""Shared helpers for depot's cross-process tests.

Everything here runs real programs: the depot binary under test, nginx, node.
Nothing is mocked; fault-injecting servers live in fault_server.py.
"""
import hashlib
import itertools
import json
import os
import random
import re
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

DEPOT = os.environ.get("DEPOT_BIN", "")
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    """A loopback port that was free a moment ago (for servers that cannot bind 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_depot(*args, check=True, json_out=False, timeout=600, env=None):
    """Runs depot; returns (exit code, stdout, stderr), or parsed JSON stdout."""
    cmd = [DEPOT] + (["--json"] if json_out else []) + [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}")
    if json_out and p.stdout.strip():
        return p.returncode, json.loads(p.stdout), p.stderr
    return p.returncode, p.stdout, p.stderr


def wait_until(pred, what, timeout=60, interval=0.05):
    """Polls `pred` until it returns something truthy (returned) or `timeout` seconds
    pass (AssertionError naming `what`). For events with no push notification to the
    test; `timeout` only bounds a hang, it is never the thing tested."""
    deadline = time.time() + timeout
    while True:
        got = pred()
        if got:
            return got
        if time.time() > deadline:
            raise AssertionError(f"{what}: not reached in {timeout}s")
        time.sleep(interval)


def metric(base_url, name, labels=""):
    """The value of sample `name` (with exactly `labels`, e.g. '{code="2xx"}') in the
    /metrics of the depot server at `base_url`; 0 when it is not there yet."""
    import urllib.request
    import ssl
    ctx = ssl.create_default_context() if base_url.startswith("https") else None
    if ctx:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(base_url + "/metrics", context=ctx, timeout=30) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + labels + " "):
                return float(line.split()[-1])
    return 0.0


class ChangesWhenRead:
    """Changes a file each time some process opens or reads it (inotify), for as long
    as the `with` block runs: a writer that is always busy exactly while the file is
    being read, instead of one writing on a timer and hoping to overlap. `change(f)`
    gets the file opened "r+b"; `changes` counts the calls."""

    IN_ACCESS, IN_OPEN = 0x1, 0x20

    def __init__(self, path, change):
        import ctypes
        import threading
        self.path, self.change, self.changes = path, change, 0
        self._libc = ctypes.CDLL(None, use_errno=True)
        self._fd = self._libc.inotify_init1(os.O_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        self._file = open(path, "r+b", buffering=0)  # before the watch: its own open is not an event
        if self._libc.inotify_add_watch(self._fd, os.fsencode(path), self.IN_ACCESS | self.IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch " + path)
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import select
        while True:
            ready, _, _ = select.select([self._fd, self._stop_r], [], [])
            if self._stop_r in ready:
                return
            os.read(self._fd, 65536)  # the events themselves do not matter: someone read it
            self.change(self._file)
            self.changes += 1

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        os.write(self._stop_w, b"x")
        self._thread.join()
        for fd in (self._fd, self._stop_r, self._stop_w):
            os.close(fd)
        self._file.close()
        return False


def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def make_tree(root, seed=1, big_mib=3):
    """A small source tree with every entry kind depot packages: nested dirs with
    modes, small text files, a multi-chunk binary, an empty file, an empty dir,
    file and directory symlinks, read-only and executable files."""
    rng = random.Random(seed)
    words = b"alpha beta gamma delta install verify chunk manifest depot site agent".split()
    for i in range(40):
        text = b" ".join(rng.choice(words) for _ in range(rng.randint(10, 2000)))
        write(os.path.join(root, f"src/mod{i % 4}/file{i}.txt"), text)
    write(os.path.join(root, "bin/tool"), rng.randbytes(big_mib << 20), 0o755)
    write(os.path.join(root, "bin/readonly"), b"do not edit\n", 0o444)
    write(os.path.join(root, "etc/secret.conf"), b"key=value\n", 0o600)
    write(os.path.join(root, "empty.txt"), b"")
    os.makedirs(os.path.join(root, "var/empty"), exist_ok=True)
    os.chmod(os.path.join(root, "var"), 0o750)
    os.symlink("../bin/tool", os.path.join(root, "etc/tool-link"))
    os.symlink("src/mod1", os.path.join(root, "mod1-link"))


def describe_tree(root):
    """{relative path: (kind, mode, sha256 or link target)} for byte-for-byte comparison."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            st = os.lstat(full)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("symlink", 0, os.readlink(full))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", mode, "")
            else:
                with open(full, "rb") as f:
                    out[rel] = ("file", mode, hashlib.sha256(f.read()).hexdigest())
    return out


def run_nginx(workdir, port, server_block):
    """A real nginx in `workdir` on 127.0.0.1:`port` with `server_block` (the inside of
    its `http {}` after the common settings): the process, once it listens."""
    os.makedirs(workdir, exist_ok=True)
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        # As root, nginx would hand requests to an unprivileged worker that cannot
        # enter the test's private temp dir.
        user = "user root;" if os.geteuid() == 0 else ""
        f.write(f"""
{user}
worker_processes 1;
daemon off;
error_log {workdir}/error.log;
pid {workdir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
  access_log {workdir}/access.log;
  client_body_temp_path {workdir};
  proxy_temp_path {workdir};
  fastcgi_temp_path {workdir};
  uwsgi_temp_path {workdir};
  scgi_temp_path {workdir};
{server_block}
}}
""")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.Popen([nginx, "-c", conf, "-p", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def listening():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            if proc.poll() is not None:
                with open(os.path.join(workdir, "error.log")) as log:
                    raise RuntimeError("nginx failed: " + log.read())
            return False
    wait_until(listening, "nginx listening", timeout=10)
    return proc


class Nginx:
    """A real nginx serving `root` on `port` (default: a free one) of loopback; its
    access log is `access_log`."""

    def __init__(self, root, workdir, port=None):
        self.root = root
        self.dir = os.path.join(workdir, "nginx")
        self.port = port or free_port()
        self.access_log = os.path.join(self.dir, "access.log")
        self.proc = run_nginx(self.dir, self.port, f"""
  sendfile on;
  default_type application/octet-stream;
  server {{
    listen 127.0.0.1:{self.port};
    root {root};
    location / {{ }}
  }}""")
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class DepotTestCase(unittest.TestCase):
    """A test with a fresh temp dir, cleaned up (writable first) afterwards."""

    def setUp(self):
        if not DEPOT or not os.access(DEPOT, os.X_OK):
            self.fail("set DEPOT_BIN to the depot binary")
        self.tmp = tempfile.mkdtemp(prefix="depot-it-")
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        if os.environ.get("DEPOT_KEEP_TEST_DIRS"):
            print("kept", self.tmp)
            return
        for dirpath, dirnames, _ in os.walk(self.tmp):
            for d in dirnames:
                p = os.path.join(dirpath, d)
                if not os.path.islink(p):
                    os.chmod(p, 0o755)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)


class ServerProcess:
    """A long-running depot process (`site serve`, `dp serve`, `agent run`) with its
    stderr in a log file. Servers are started with --json and print one line with
    their URL once listening (`_spawn`); stop() and kill() end any of them."""

    def _spawn(self, what, args, env=None):
        self.log = open(os.path.join(os.path.dirname(self.data), f"{what}-{time.time()}.log"), "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            with open(self.log.name) as f:
                raise RuntimeError(f"{what} did not start: " + f.read())
        self.url = json.loads(line)["url"]

    def stop(self, sig=None):
        """Asks the server to stop (SIGTERM unless `sig`); returns its exit code."""
        if self.proc is None:
            return None
        if sig is None:
            self.proc.terminate()
        else:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        return self._ended(rc)

    def wait_exit(self, timeout=60):
        """Waits for a server that ends by itself (e.g. at a crash point); its exit status."""
        return self._ended(self.proc.wait(timeout))

    def _ended(self, rc):
        self.proc = None
        self.log.close()
        return rc

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        self.log.close()


_pg_databases = itertools.count()


def new_postgres_catalog():
    """With DEPOT_TEST_PG (the file scripts/pg-temp.sh wrote), a new empty PostgreSQL
    database's connection string for a site's catalog; else None (SQLite)."""
    conninfo_file = os.environ.get("DEPOT_TEST_PG")
    if not conninfo_file:
        return None
    with open(conninfo_file) as f:
        server = f.read().strip()
    name = f"depot_it{os.getpid()}_{next(_pg_databases)}"
    subprocess.run(["psql", server, "-qc", f"CREATE DATABASE {name}"], check=True, capture_output=True)
    return f"{server} dbname={name}"


class SiteProcess(ServerProcess):
    """A real `depot site serve` on a free loopback port, with its data directory made
    by `depot site init`. `api()` talks to its HTTP API with any credential. Its
    catalog is SQLite, or PostgreSQL when DEPOT_TEST_PG is set (new_postgres_catalog)."""

    def __init__(self, workdir, code="TST", init_args=(), env=None, sqlite=False):
        """`sqlite`: the SQLite catalog even when the suite runs on PostgreSQL."""
        self.data = os.path.join(workdir, "site-" + code.lower())
        self.env = env
        db = None if sqlite else new_postgres_catalog()
        self.db = db  # None: SQLite (catalog.db in the data directory)
        _, out, _ = run_depot("site", "init", "--data", self.data, "--code", code,
                              "--listen", "127.0.0.1:0", *init_args, *(["--db", db] if db else []),
                              json_out=True)
        self.admin_token = out["admin_token"]
        self.ca = out.get("ca", "")
        self.proc = None
        self.start()

    def start(self, extra=()):
        self.extra = list(extra)
        self._spawn("site", [DEPOT, "--json", "--log-level", "info", "site", "serve", "--data", self.data, *extra],
                    env=self.env)

    def sql(self, statement):
        """Runs one SQL statement on the site's catalog, whichever backend holds it (for
        tests that set up a state no API makes, like a token expired since)."""
        if self.db:
            subprocess.run(["psql", self.db, "-qc", statement], check=True, capture_output=True)
            return
        import sqlite3
        with sqlite3.connect(os.path.join(self.data, "catalog.db"), timeout=30) as db:
            db.execute(statement)
        db.close()

    def cli_env(self, token=None):
        e = dict(os.environ if self.env is None else self.env)
        e["DEPOT_SITE"] = self.url
        e["DEPOT_TOKEN"] = token or self.admin_token
        if self.ca:
            e["DEPOT_CA"] = self.ca
        return e

    def cli(self, *args, token=None, check=True, timeout=600):
        """Runs a depot admin command against this site; returns parsed JSON (or the
        (code, stdout, stderr) triple when check=False)."""
        code, out, err = run_depot(*args, check=False, json_out=True, timeout=timeout, env=self.cli_env(token))
        if check and code != 0:
            raise AssertionError(f"depot {' '.join(map(str, args))} exited {code}\n{out}\n{err}")
        return out if check else (code, out, err)

    def api(self, method, target, token=None, body=None, headers=None, timeout=60):
        """(status, parsed JSON or raw bytes, response headers) of one HTTP request."""
        import http.client
        import urllib.parse
        u = urllib.parse.urlparse(self.url)
        if u.scheme == "https":
            import ssl
            ctx = ssl.create_default_context(cafile=self.ca or None)
            conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
        else:
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Bearer " + token
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, target, body=data, headers=h)
        r = conn.getresponse()
        raw = r.read()
        hdrs = {k.lower(): v for k, v in r.getheaders()}
        conn.close()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return r.status, parsed, hdrs


class DpProcess(ServerProcess):
    """A real `depot dp serve` registered with `site` (dp add) and started on a free
    loopback port; `stop()`/`kill()`/`start()` for restarts."""

    def __init__(self, site, workdir, name, groups=(), boundaries=(), extra=(), register=True, url=None,
                 port=0, env=None, add=()):
        """`url`: what the site tells agents (default: the DP itself when `port` is
        given, else a dead address); `port`: where the DP listens (0: any); `add`:
        more flags for `dp add` (--max-rate, --window)."""
        self.site = site
        self.name = name
        self.data = os.path.join(workdir, "dp-" + name)
        self.extra = list(extra)
        self.port = port
        self.proc = None
        self.env = env  # for the first start (e.g. DEPOT_CRASH_AT)
        if register:
            if url is None:
                url = f"http://127.0.0.1:{port}" if port else "http://127.0.0.1:9"
            args = ["dp", "add", name, "--url", url]
            for g in groups:
                args += ["--group", g]
            for b in boundaries:
                args += ["--boundary", b]
            self.token = site.cli(*args, *add)["token"]
        self.start(first=True)

    def start(self, first=False, extra=()):
        args = [DEPOT, "--json", "--log-level", "info", "dp", "serve", "--data", self.data]
        if first:
            args += ["--site", self.site.url, "--token", self.token, "--listen", f"127.0.0.1:{self.port}"]
            if self.site.ca:
                args += ["--ca", self.site.ca]
        # Flags given at the first start are kept in DIR/dp.toml; restarts pass only changes.
        args += (self.extra if first else []) + list(extra)
        self._spawn("dp-" + self.name, args, env=self.env if first else None)
        # Later restarts keep the port, so the site and tests can keep using the URL.
        self.listen = self.url.split("://", 1)[1]

    def restart(self, extra=()):
        self.start(extra=("--listen", self.listen) + tuple(extra))

    def record(self, package, version):
        for v in self.site.cli("dp", "show", self.name)["versions"]:
            if v["package"] == package and v["version"] == version:
                return v
        return None

    def wait_state(self, package, version, state="ready", timeout=60):
        def reached():
            r = self.record(package, version)
            return r if r and r["state"] == state else None
        try:
            return wait_until(reached, f"{self.name}: {package} v{version} {state}", timeout, interval=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}: {self.record(package, version)}") from None


class AgentProcess(ServerProcess):
    """A real `depot agent` enrolled with `site`: `once()` runs one cycle, `start()`
    runs it in the background (kill()/stop() end it), `status()` reads its state."""

    def __init__(self, site, workdir, name="pc1", extra=()):
        self.site = site
        self.name = name
        self.data = os.path.join(workdir, "agent-" + name)
        self.workdir = workdir
        self.proc = None
        self.log = None
        self.enroll_token = site.cli("token", "create", "--role", "enroll", "--uses", "1")["token"]
        self.first = ["--site", site.url, "--enroll-token", self.enroll_token, "--name", name] + list(extra)
        if site.ca:
            self.first += ["--ca", site.ca]

    def _args(self, extra):
        args = [DEPOT, "--log-level", "info", "agent", "run", "--data", self.data]
        if not os.path.exists(os.path.join(self.data, "agent.json")):
            args += self.first
        return args + [str(a) for a in extra]

    def once(self, *extra, timeout=300, env=None):
        """(exit code, stderr) of `agent run --once`."""
        p = subprocess.run(self._args(extra) + ["--once"], capture_output=True, text=True, timeout=timeout, env=env)
        with open(os.path.join(self.workdir, f"agent-{self.name}-once.log"), "a") as f:
            f.write(p.stderr)
        return p.returncode, p.stderr

    def start(self, *extra):
        self.log = open(os.path.join(self.workdir, f"agent-{self.name}-{time.time()}.log"), "w")
        self.proc = subprocess.Popen(self._args(extra), stdout=subprocess.DEVNULL, stderr=self.log)

    def status(self):
        return run_depot("agent", "status", "--data", self.data, json_out=True)[1]

    def deployment(self, package):
        for d in self.status()["deployments"]:
            if d["package"] == package:
                return d
        return None

    def wait(self, pred, what, timeout=60):
        last = [None]

        def reached():
            try:
                last[0] = self.status()
            except (AssertionError, ValueError):
                last[0] = None
            return last[0] if last[0] is not None and pred(last[0]) else None
        try:
            return wait_until(reached, f"agent {self.name}: {what}", timeout, interval=0.1)
        except AssertionError as e:
            raise AssertionError(f"{e}: {last[0]}") from None

    def client(self):
        with open(os.path.join(self.data, "agent.json")) as f:
            return json.load(f)["client"]


class FaultServer:
    """fault_server.py serving `root` in `mode` on `port`; `log` collects the paths
    requested."""

    def __init__(self, root, port, mode, log=None):
        env = dict(os.environ)
        if log:
            env["FAULT_LOG"] = log
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fault_server.py"), root, str(port), mode],
                                     stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout.readline().strip() == "ready"
        self.url = f"http://127.0.0.1:{port}"

    def stop(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None


def site_with(workdir, settings, extra=()):
    """A SiteProcess whose site.toml string settings are replaced by `settings`
    ({"retry_base": "200ms", ...}: compressed time), started with `extra` flags."""
    site = SiteProcess(workdir)
    site.stop()
    cfg = os.path.join(site.data, "site.toml")
    with open(cfg) as f:
        text = f.read()
    for key, value in settings.items():
        text, n = re.subn(rf'^{key} = "[^"]*"', f'{key} = "{value}"', text, flags=re.M)
        assert n == 1, f"site.toml has no string setting {key}"
    with open(cfg, "w") as f:
        f.write(text)
    site.start(extra)
    return site


def site_with_fast_retries(workdir):
    """A SiteProcess whose failed DP copies are retried after ~200 ms, not 30 s."""
    return site_with(workdir, {"retry_base": "200ms"})


def site_root_json(site, path):
    """Writes the site's newest root.json (exact bytes) to `path` and returns it."""
    import urllib.request
    import ssl
    ctx = ssl.create_default_context(cafile=site.ca) if site.ca else None
    with urllib.request.urlopen(site.url + "/repo/metadata/root.json", context=ctx) as r, open(path, "wb") as f:
        f.write(r.read())
    return path


class AccessLog:
    """A depot access log (`--access-log`): `mark()` remembers how far it was read,
    `since(mark)` returns the requests logged after it, as dicts."""

    def __init__(self, path):
        self.path = path

    def mark(self):
        return os.path.getsize(self.path) if os.path.exists(self.path) else 0

    def since(self, mark=0):
        if not os.path.exists(self.path):
            return []
        with open(self.path, "rb") as f:
            f.seek(mark)
            return [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]
