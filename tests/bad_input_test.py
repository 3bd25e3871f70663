"""Bad input at every boundary, against real processes: a `depot site serve` with a
real catalog and content library, a real `depot dp serve` that holds a package, and
the real CLI. Malformed JSON, wrong types, unknown fields, oversized and deeply
nested bodies, missing/wrong/under-privileged credentials, path traversal in API
parameters, in /repo/ paths and in submitted manifests: each must be refused with a
4xx and the documented JSON error form (`{"error":{"code","message"}}`, the message
naming the thing at fault), and must change nothing: the site's packages, DPs and
their records, collections, deployments, clients, tokens, status messages, signed
TUF metadata and files on disk are compared before and after every single case."""
import copy
import hashlib
import http.client
import itertools
import json
import os
import shutil
import socket
import tempfile
import time
import unittest
import urllib.parse

from harness import DEPOT, DepotTestCase, DpProcess, SiteProcess, make_tree, run_depot, wait_until, write

# The error codes docs/api.md documents for each status. Statuses it does not list
# (405, 413, 431) must still carry a JSON error with some code and a message.
DOC_CODES = {400: "InvalidArgument", 401: "PermissionDenied", 403: "PermissionDenied", 404: "NotFound",
             422: "Corruption"}

MIB = 1 << 20
UNKNOWN = "x_unknown_field"
DEEP = 200_000  # levels of nesting in the "deeply nested" bodies (the limit is 32)
_seq = itertools.count(1000)


def http_request(base, method, target, body=None, headers=None, timeout=30):
    """(status, raw body bytes, lower-cased headers) of one request; `target` is sent
    exactly as given (no normalisation, no re-encoding)."""
    u = urllib.parse.urlparse(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        h = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        if body is not None:
            h.setdefault("Content-Type", "application/json")
        conn.request(method, target, body=body, headers=h)
        r = conn.getresponse()
        raw = r.read()
        return r.status, raw, {k.lower(): v for k, v in r.getheaders()}
    finally:
        conn.close()


def raw_exchange(base, head, body_parts=(), timeout=30):
    """Writes `head` (request line and headers) and then `body_parts` on a plain socket,
    ignoring a server that stops reading (it may answer 413 before the body), and
    reads one response: (status, raw body, headers)."""
    u = urllib.parse.urlparse(base)
    s = socket.create_connection((u.hostname, u.port), timeout=timeout)
    try:
        s.sendall(head)
        try:
            for part in body_parts:
                s.sendall(part)
        except (BrokenPipeError, ConnectionResetError):
            pass
        r = http.client.HTTPResponse(s, method="POST")
        r.begin()
        raw = r.read()
        return r.status, raw, {k.lower(): v for k, v in r.getheaders()}
    finally:
        s.close()


def set_path(obj, path, value):
    """A deep copy of `obj` with obj[path[0]][path[1]]... = value."""
    out = copy.deepcopy(obj)
    cur = out
    for k in path[:-1]:
        cur = cur[k]
    cur[path[-1]] = value
    return out


def deep_json(prefix, depth):
    """`prefix` + an array nested `depth` levels + `}`: e.g. {"name":[[[...]]]}."""
    return (prefix + "[" * depth + "]" * depth + "}").encode()


def padded(limit, key="name"):
    """A syntactically valid JSON object of exactly limit + 1 bytes."""
    head = '{"%s":"' % key
    return (head + "a" * (limit + 1 - len(head) - 2) + '"}').encode()


def scrub(v):
    """Drops the fields that change with mere contact (last_seen, last_used, online):
    they record that someone knocked, not a change of state."""
    if isinstance(v, dict):
        return {k: scrub(x) for k, x in v.items() if k not in ("last_seen", "last_used", "online")}
    if isinstance(v, list):
        return [scrub(x) for x in v]
    return v


def diff(a, b, where=""):
    """Short descriptions of how `b` differs from `a`."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            if a.get(k) != b.get(k):
                out += diff(a.get(k), b.get(k), f"{where}.{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                out += diff(x, y, f"{where}[{i}]")
        return out
    if isinstance(a, list) and isinstance(b, list):
        ja, jb = [json.dumps(x) for x in a], [json.dumps(x) for x in b]
        return [f"{where or 'list'}: added {[x for x in jb if x not in ja]}, removed {[x for x in ja if x not in jb]}"]
    return [f"{where or 'value'}: {json.dumps(a)[:300]} -> {json.dumps(b)[:300]}"]


def files_under(root):
    out = set()
    for d, dirs, fs in os.walk(root):
        for n in dirs + fs:
            out.add(os.path.relpath(os.path.join(d, n), root))
    return out


class BadInputTest(DepotTestCase):
    """One site (and one DP) for every test: each case is checked against a snapshot
    taken right before it, so one defect cannot hide or fake another."""

    @classmethod
    def setUpClass(cls):
        if not DEPOT or not os.access(DEPOT, os.X_OK):
            raise RuntimeError("set DEPOT_BIN to the depot binary")
        cls.ctmp = tempfile.mkdtemp(prefix="depot-badinput-")
        try:
            cls._build_fixture()
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def _build_fixture(cls):
        site = cls.site = SiteProcess(cls.ctmp)
        cls.src = os.path.join(cls.ctmp, "src-tools")
        make_tree(cls.src, big_mib=1)
        site.cli("package", "create", "tools", "--source", cls.src, "--program", "install=sh -c true")
        spare_src = os.path.join(cls.ctmp, "src-spare")
        write(os.path.join(spare_src, "a.txt"), b"spare\n")
        site.cli("package", "create", "spare", "--source", spare_src, "--program", "install=true")
        cls.tok = {"admin": site.admin_token}
        for role in ("operator", "read-only"):
            cls.tok[role] = site.cli("token", "create", "--role", role, "--name", "bi-" + role)["token"]
        cls.tok["enroll"] = site.cli("token", "create", "--role", "enroll", "--uses", "10")["token"]
        enroll1 = site.cli("token", "create", "--role", "enroll", "--uses", "1")["token"]
        revoked = site.cli("token", "create", "--role", "operator", "--name", "bi-revoked")
        site.cli("token", "revoke", str(revoked["id"]))
        cls.tok["revoked"] = revoked["token"]
        # A token cannot be made already expired; one that has expired since is made by
        # moving its expiry back in the catalog (it was never used, so never cached).
        st, exp, _ = site.api("POST", "/api/v1/tokens", token=site.admin_token,
                              body={"role": "admin", "name": "bi-expired", "expires": "1h"})
        assert st == 201, exp
        site.sql("UPDATE tokens SET expires_at = 978307200000 WHERE name = 'bi-expired'")
        cls.tok["expired"] = exp["token"]
        cls.ro_token_id = [t["id"] for t in site.cli("token", "list")["tokens"] if t["name"] == "bi-read-only"][0]

        # A real DP holding tools v1, and two registered DPs without a process.
        # No scheduled scrub during the run: its report (3008) would be a change.
        cls.dp = DpProcess(site, cls.ctmp, "dp1", extra=["--scrub-start", "24h"])
        site.cli("distribute", "tools", "--to", "dp1")
        cls.dp.wait_state("tools", 1)
        cls.tok["dp"] = site.cli("dp", "add", "dp2", "--url", "http://127.0.0.1:9", "--group", "eu")["token"]
        site.cli("distribute", "tools", "--to", "dp2")
        cls.tok["removed-dp"] = site.cli("dp", "add", "dp3", "--url", "http://127.0.0.1:9")["token"]
        site.cli("dp", "remove", "dp3")

        # Two enrolled clients (through the agent API) and the last use of a one-use token.
        st, pc1, _ = site.api("POST", "/api/v1/agent/enroll", token=cls.tok["enroll"],
                              body={"name": "pc1", "attributes": {"os": "linux", "arch": "x86_64"}})
        assert st == 201, pc1
        st, pc2, _ = site.api("POST", "/api/v1/agent/enroll", token=enroll1,
                              body={"name": "pc2", "attributes": {"os": "windows"}})
        assert st == 201, pc2
        cls.tok["agent"] = pc1["token"]
        cls.tok["spent-enroll"] = enroll1

        site.cli("collection", "create", "linux", "--rule", 'os == "linux"')
        site.cli("collection", "create", "static1", "--member", "pc1")
        site.cli("collection", "create", "spare-coll", "--rule", 'os == "none"')
        cls.dep_main = site.cli("deploy", "tools", "--program", "install", "--to", "linux", "--required")["id"]
        cls.dep_cancel = site.cli("deploy", "tools", "--program", "install", "--to", "static1")["id"]

        # The DP's last act after a copy: its report (the record is ready, waited for
        # above), then its sync message (3001), sent after the report. Once that has
        # arrived the DP has nothing more to say until something changes.
        wait_until(lambda: 3001 in [m["code"] for m in site.cli("messages", "--dp", "dp1")["messages"]],
                   "the DP's sync message (3001)", timeout=30)
        cls.valid_manifest = cls._manifest_of("tools", 1)

    @classmethod
    def tearDownClass(cls):
        for name in ("dp", "site"):
            proc = getattr(cls, name, None)
            if proc is not None and proc.proc is not None:
                proc.stop()
        if os.environ.get("DEPOT_KEEP_TEST_DIRS"):
            print("kept", cls.ctmp)
        else:
            shutil.rmtree(cls.ctmp, ignore_errors=True)

    def setUp(self):
        super().setUp()
        self.maxDiff = None
        self.baseline = self._snapshot()

    def tearDown(self):
        # Whatever was thrown at them, both servers are still up and healthy.
        for name, proc in (("site", self.site), ("dp", self.dp)):
            self.assertIsNone(proc.proc.poll(), f"the {name} process died")
            st, body, _ = http_request(proc.url, "GET", "/healthz")
            self.assertEqual((st, body), (200, b"ok\n"), f"{name} /healthz")

    # ------------------------------------------------------------------ state

    @classmethod
    def _get(cls, target, token=None):
        st, raw, _ = http_request(cls.site.url, "GET", target,
                                  headers={"Authorization": "Bearer " + (token or cls.site.admin_token)})
        assert st == 200, (target, st, raw[:300])
        return json.loads(raw)

    @classmethod
    def _snapshot(cls):
        s = {}
        for t in ("/api/v1/packages", "/api/v1/packages/tools", "/api/v1/dps", "/api/v1/dps/dp1", "/api/v1/dps/dp2",
                  "/api/v1/collections", "/api/v1/collections/static1", "/api/v1/collections/linux",
                  "/api/v1/deployments", "/api/v1/clients", "/api/v1/tokens"):
            s[t] = scrub(cls._get(t))
        msgs = cls._get("/api/v1/messages?limit=100000")["messages"]
        # A refused upload is recorded as 1005 (upload_rejected) by design: the record of
        # the refusal is the one change a refusal makes.
        s["messages"] = [(m["id"], m["code"], m["count"]) for m in msgs if m["code"] != 1005]
        ts = cls._get("/repo/metadata/timestamp.json")["signed"]
        s["tuf"] = {"timestamp": ts["version"], "snapshot": ts["meta"]["snapshot.json"]["version"],
                    "root": cls._get("/repo/metadata/root.json")["signed"]["version"]}
        lib = os.path.join(cls.site.data, "library/repo")
        s["site files"] = sorted(files_under(os.path.join(lib, "targets")) | files_under(os.path.join(lib, "metadata")))
        # The DP's metadata/ is left out: it mirrors the site's TUF metadata every 30 s
        # (compared above at the source); its chunks and published manifests are here.
        s["dp files"] = sorted(f for f in files_under(os.path.join(cls.dp.data, "repo"))
                               if not f.startswith("metadata/"))
        with open(os.path.join(cls.dp.data, "dp.toml"), "rb") as f:
            s["dp.toml"] = hashlib.sha256(f.read()).hexdigest()
        return s

    def state_problems(self, before, after):
        out = []
        for k in sorted(set(before) | set(after)):
            if before.get(k) != after.get(k):
                out.append(f"state changed: {k}: " + "; ".join(diff(before.get(k), after.get(k)))[:1500])
        return out

    # ------------------------------------------------------------------ checks

    def error_problems(self, resp, status=None, mention=()):
        """Problems with an answer that should be a refusal: a 4xx (one of `status`
        when given) with the documented JSON error naming each of `mention`."""
        st, raw, headers = resp
        out = []
        if not 400 <= st < 500:
            return [f"expected a 4xx refusal, got {st}: {raw[:300]!r}"]
        if status is not None and st not in (status if isinstance(status, tuple) else (status,)):
            out.append(f"expected status {status}, got {st}: {raw[:300]!r}")
        try:
            body = json.loads(raw)
            err = body["error"]
            code, message = err["code"], err["message"]
            assert isinstance(code, str) and code and isinstance(message, str) and message
        except (ValueError, KeyError, TypeError, AssertionError):
            return out + [f"status {st}: body is not the JSON error form: {raw[:300]!r}"]
        if set(body) != {"error"} or set(err) != {"code", "message"}:
            out.append(f"unexpected fields in the error: {raw[:300]!r}")
        if st in DOC_CODES and code != DOC_CODES[st]:
            out.append(f"status {st} carries code {code!r}; docs/api.md documents {DOC_CODES[st]!r}")
        if "application/json" not in headers.get("content-type", ""):
            out.append(f"error Content-Type is {headers.get('content-type')!r}")
        if st == 401 and "www-authenticate" not in headers:
            out.append("401 without WWW-Authenticate")
        for m in mention:
            if m.lower() not in message.lower():
                out.append(f"message {message[:300]!r} does not name {m!r}")
        return out

    def refused(self, label, send, status=None, mention=(), forbidden=()):
        """One case: `send()` must be refused (see error_problems), change no state,
        and not leak any of the `forbidden` byte strings."""
        with self.subTest(label):
            before = self.baseline
            problems = []
            try:
                resp = send()
            except (OSError, http.client.HTTPException) as e:
                resp = None
                problems.append(f"no answer: {type(e).__name__}: {e}")
            after = self._snapshot()
            self.baseline = after
            if resp is not None:
                problems += self.error_problems(resp, status, mention)
                # Nor the server's own filesystem layout: clients have no business with it.
                for secret in list(forbidden) + [self.ctmp.encode()]:
                    if secret in resp[1]:
                        problems.append(f"the answer leaks {secret[:40]!r}")
            problems += self.state_problems(before, after)
            if problems:
                self.fail("\n  ".join([label] + problems))

    def api(self, method, target, role="admin", body=None, headers=None, token=None):
        h = dict(headers or {})
        tok = token if token is not None else (self.tok[role] if role else None)
        if tok is not None:
            h["Authorization"] = "Bearer " + tok
        return lambda: http_request(self.site.url, method, target, body=body, headers=h)

    # ------------------------------------------------------------------ the endpoints

    def endpoints(self):
        """Every JSON POST/PATCH endpoint: (method, path, role that may call it, body
        limit, a fresh VALID body (one that would change state if accepted), wrong types
        [(path in body, value[, word the error must name])], bad values [(path, value,
        word)], paths to nested objects where an unknown field must be refused too)."""
        now_ms = int(time.time() * 1000)
        dep = self.dep_main
        return [
            ("POST", "/api/v1/tokens", "admin", MIB,
             lambda: {"role": "enroll", "name": "bi-new", "uses": 3, "expires": "7d"},
             [(("role",), 5), (("uses",), "3"), (("name",), ["a"]), (("expires",), 7)],
             [(("role",), "dp", "role"), (("role",), "root", "role"), (("uses",), 0, "uses"),
              (("uses",), -1, "uses"), (("name",), "n\u0000ul", "name"), (("expires",), "soon", "expires"),
              (("expires",), "2001-01-01T00:00:00Z", "expires")],
             []),
            ("POST", "/api/v1/dps", "admin", MIB,
             lambda: {"name": "dp-new", "url": "http://127.0.0.1:9", "groups": ["eu"], "boundaries": ["10.9.0.0/16"]},
             [(("name",), 5), (("url",), {"u": 1}), (("groups",), "eu"), (("boundaries",), [10])],
             [(("url",), "ftp://dp:21", "url"), (("url",), "not a url", "url"), (("boundaries",), ["10.0.0.0/99"], "10.0.0.0/99"),
              (("groups",), ["../eu"], "../eu")],
             []),
            ("POST", "/api/v1/distributions", "operator", MIB,
             lambda: {"package": "tools", "to": ["group:later"], "remove": False},
             [(("package",), 1), (("to",), "dp2"), (("remove",), "yes"), (("to",), [7])],
             [(("to",), [], "DP or group"), (("to",), ["group:../x"], "../x"), (("package",), "../tools", "../tools"),
              (("to",), ["nosuchdp"], "nosuchdp")],
             []),
            ("POST", "/api/v1/collections", "operator", 16 * MIB,
             lambda: {"name": "bi-coll", "rule": 'os == "linux"', "description": "x"},
             [(("name",), 5), (("rule",), ["os"]), (("description",), 1)],
             [(("rule",), 'os ==', "rule"), (("rule",), "(" * 100 + 'os == "a"' + ")" * 100, "deep"),
              (("rule",), "os == \"" + "a" * 5000 + "\"", "rule")],
             []),
            ("PATCH", "/api/v1/collections/static1", "operator", 16 * MIB,
             lambda: {"add": ["pc2"]},
             [(("add",), "pc2"), (("remove",), {"x": 1}), (("add",), [1])],
             [(("add",), ["nobody-like-this"], "nobody-like-this")],
             []),
            ("POST", "/api/v1/deployments", "operator", MIB,
             lambda: {"package": "tools", "program": "install", "collection": "linux", "kind": "required",
                      "start": "now", "deadline": "+2h", "version": 1,
                      "windows": [{"start": "22:00", "duration": "4h", "tz": "UTC"}]},
             [(("package",), 5), (("version",), "1"), (("windows",), "22:00"), (("kind",), True),
              (("windows", 0, "start"), 2200)],
             [(("kind",), "sometimes", "kind"), (("version",), 0, "version"), (("version",), 99, "99"),
              (("program",), "nope", "nope"), (("collection",), "../linux", "../linux"),
              (("package",), "../tools", "../tools"), (("deadline",), "yesterday", "deadline"),
              (("windows", 0, "tz"), "../../etc/passwd", "../../etc/passwd"),
              (("windows", 0, "start"), "25:00", "start")],
             [("windows", 0)]),
            ("POST", f"/api/v1/deployments/{self.dep_cancel}/cancel", "operator", MIB,
             lambda: {},
             [],
             [],
             []),
            ("POST", "/api/v1/chunks/missing", "operator", 32 * MIB,
             lambda: {"chunks": ["ab" * 32]},
             [(("chunks",), "abc"), (("chunks",), [5])],
             [(("chunks",), ["../../etc/passwd"], "../../etc/passwd"), (("chunks",), ["AB" * 32 + "x"], "chunks")],
             []),
            ("POST", "/api/v1/dp/report", "dp", 16 * MIB,
             lambda: {"versions": [{"package": "tools", "version": 1, "state": "failed", "error": "x",
                                    "bytes_done": 0, "bytes_total": 10}]},
             [(("versions",), {"package": "tools"}), (("versions", 0, "version"), "1"),
              (("versions", 0, "bytes_done"), "0"), (("versions", 0, "state"), 3)],
             [(("versions", 0, "state"), "gone", "state"), (("versions", 0, "version"), 0, "version"),
              (("versions", 0, "bytes_done"), -5, "bytes_done")],
             [("versions", 0)]),
            ("POST", "/api/v1/dp/messages", "dp", 4 * MIB,
             lambda: {"messages": [{"seq": next(_seq), "code": 3002, "time_ms": now_ms, "package": "tools",
                                    "version": 1, "params": {"object": "x", "upstream": "y", "error": "z"}}]},
             [(("messages",), "x"), (("messages", 0, "seq"), "1"), (("messages", 0, "params"), ["a"]),
              (("messages", 0, "code"), "3002")],
             [(("messages", 0, "code"), 2004, "2004"), (("messages", 0, "code"), 4006, "4006"),
              (("messages", 0, "code"), 99999, "code"), (("messages", 0, "seq"), 0, "seq")],
             [("messages", 0)]),
            ("POST", "/api/v1/agent/enroll", "enroll", MIB,
             lambda: {"name": "pc-new", "attributes": {"os": "linux", "tags": {"site": "x"}}},
             [(("name",), 5), (("attributes",), "linux"), (("attributes", "os"), 5)],
             [(("name",), "", "name"), (("name",), "pc\u0000x", "name"), (("attributes", "1bad"), "v", "1bad"),
              (("attributes", "os"), "x" * 300, "os")],
             []),
            ("POST", "/api/v1/agent/attributes", "agent", MIB,
             lambda: {"attributes": {"os": "linux", "arch": "aarch64"}},
             [(("attributes",), ["os"]), (("attributes", "arch"), 64)],
             [(("attributes", "../x"), "v", "../x")],
             []),
            ("POST", "/api/v1/agent/status", "agent", 4 * MIB,
             lambda: {"deployments": [{"deployment": dep, "seq": next(_seq), "state": "downloading", "version": 1}]},
             [(("deployments",), {}), (("deployments", 0, "seq"), "9"), (("messages",), "x"),
              (("messages",), [{"seq": "1", "code": 4001}], "seq"), (("deployments", 0, "state"), 1)],
             [(("deployments", 0, "state"), "exploded", "state"), (("messages",), [{"seq": 5, "code": 3001}], "3001"),
              (("deployments", 0, "seq"), 0, "seq")],
             [("deployments", 0)]),
            ("POST", "/api/v1/agent/status", "agent", 4 * MIB,
             lambda: {"messages": [{"seq": next(_seq), "code": 4001, "package": "tools", "version": 1, "deployment": dep}]},
             [(("messages", 0, "code"), "4001"), (("messages", 0, "params"), "x")],
             [(("messages", 0, "code"), 3001, "3001"), (("messages", 0, "code"), 0, "code")],
             [("messages", 0)]),
        ]

    def fresh_cancel_path(self):
        """A new live deployment to aim a cancel at, so that every cancel case is judged
        on its own (a cancel that wrongly went through cannot make the next one pass)."""
        st, dep, _ = http_request(self.site.url, "POST", "/api/v1/deployments", headers={
            "Authorization": "Bearer " + self.tok["operator"]},
            body={"package": "tools", "program": "install", "collection": "static1"})
        self.assertEqual(st, 201, dep)
        self.baseline = self._snapshot()
        return f"/api/v1/deployments/{json.loads(dep)['id']}/cancel"

    def test_json_endpoints_refuse_malformed_wrong_typed_unknown_oversized_and_deep_bodies(self):
        for method, path, role, limit, valid, wrong_types, bad_values, nested in self.endpoints():
            tok = "Bearer " + self.tok[role]
            cases = []  # (label, body bytes or a sender taking the path, status, mention)
            for raw, word in [
                (b'{"name": ', "json"), (b"{'role': 'admin'}", "json"), (b'{"a":1} trailing', "json"),
                (b'{"a":1,}', "json"), (b"\xff\xfe{}", "utf-8"), (b'{"name":"\xc3\x28"}', "utf-8"),
                (b"NaN", "json"),
            ] + ([] if path.endswith("/cancel") else [(b"", "empty")]):
                cases.append((f"malformed body {raw[:20]!r}", raw, 400, [word]))
            for raw in (b"[]", json.dumps([valid()]).encode(), b'"text"', b"42", b"null", b"true"):
                cases.append((f"non-object body {raw[:30]!r}", raw, 400, ["object"]))
            for where, value, *named in wrong_types:
                cases.append((f"wrong type {'.'.join(map(str, where))}={value!r}",
                              json.dumps(set_path(valid(), where, value)).encode(), 400, named or [str(where[-1])]))
            for where, value, mention in bad_values:
                cases.append((f"bad value {'.'.join(map(str, where))}={str(value)[:40]!r}",
                              json.dumps(set_path(valid(), where, value)).encode(), (400, 404), [mention]))
            cases.append(("unknown top-level field", json.dumps({**valid(), UNKNOWN: 1}).encode(), 400, [UNKNOWN]))
            for where in nested:
                body = valid()
                cur = body
                for k in where:
                    cur = cur[k]
                cur[UNKNOWN] = "x"
                cases.append((f"unknown field in {'.'.join(map(str, where))}", json.dumps(body).encode(), 400, [UNKNOWN]))
            for depth in (33, DEEP):
                cases.append((f"JSON nested {depth} levels", deep_json('{"name":', depth), 400, ["32"]))
            # Over the body limit: declared (answered before the body is read), sent for
            # real with a Content-Length, and sent chunked without one.
            big = padded(limit)

            def head(p):
                return (f"{method} {p} HTTP/1.1\r\nHost: x\r\nAuthorization: {tok}\r\n"
                        f"Content-Type: application/json\r\n").encode()

            def chunked():
                for off in range(0, len(big), 256 * 1024):
                    part = big[off:off + 256 * 1024]
                    yield b"%x\r\n" % len(part) + part + b"\r\n"
                yield b"0\r\n\r\n"
            cases += [
                (f"Content-Length over the {limit}-byte limit",
                 lambda p: raw_exchange(self.site.url, head(p) + f"Content-Length: {limit + 1}\r\n\r\n".encode()),
                 413, [str(limit)]),
                (f"a {limit + 1}-byte body",
                 lambda p: raw_exchange(self.site.url, head(p) + f"Content-Length: {len(big)}\r\n\r\n".encode(), [big]),
                 413, [str(limit)]),
                ("a chunked body over the limit",
                 lambda p: raw_exchange(self.site.url, head(p) + b"Transfer-Encoding: chunked\r\n\r\n", chunked()),
                 413, [str(limit)]),
            ]
            for label, body, status, mention in cases:
                p = self.fresh_cancel_path() if path.endswith("/cancel") else path
                send = (lambda: body(p)) if callable(body) else self.api(method, p, role, body)
                self.refused(f"{method} {p}: {label}", send, status, mention)
        # A body to an endpoint that takes none is refused before it is read.
        self.refused("GET /api/v1/packages with a body",
                     lambda: raw_exchange(self.site.url, b"GET /api/v1/packages HTTP/1.1\r\nHost: x\r\n"
                                          b"Authorization: Bearer " + self.tok["admin"].encode() +
                                          b"\r\nContent-Length: 10\r\n\r\n", [b"{" * 10]), 413)

    def test_a_refused_request_applies_nothing_of_its_valid_parts(self):
        dep = self.dep_main
        now_ms = int(time.time() * 1000)
        good_msg = lambda: {"seq": next(_seq), "code": 4001, "package": "tools", "version": 1, "deployment": dep}
        good_rep = lambda: {"deployment": dep, "seq": next(_seq), "state": "succeeded", "version": 1, "exit_code": 0}
        cases = [
            ("agent/status: valid messages, a deployment report of the wrong type", "agent", "/api/v1/agent/status",
             {"messages": [good_msg()], "deployments": [{"deployment": dep, "seq": "x", "state": "waiting"}]}, "seq"),
            ("agent/status: valid messages, deployments not a list", "agent", "/api/v1/agent/status",
             {"messages": [good_msg()], "deployments": {"deployment": dep}}, "deployments"),
            ("agent/status: valid messages, an unknown field in a report", "agent", "/api/v1/agent/status",
             {"messages": [good_msg()], "deployments": [{**good_rep(), UNKNOWN: 1}]}, UNKNOWN),
            ("agent/status: a valid report, then a message of another component", "agent", "/api/v1/agent/status",
             {"deployments": [good_rep()], "messages": [good_msg(), {"seq": next(_seq), "code": 2004}]}, "2004"),
            ("dp/report: a valid item, then an invalid one", "dp", "/api/v1/dp/report",
             {"versions": [{"package": "tools", "version": 1, "state": "failed", "error": "x"},
                           {"package": "tools", "version": 1, "state": "bogus"}]}, "state"),
            ("dp/messages: a valid message, then one of the wrong component", "dp", "/api/v1/dp/messages",
             {"messages": [{"seq": next(_seq), "code": 3002, "time_ms": now_ms, "params": {"object": "o"}},
                           {"seq": next(_seq), "code": 4006}]}, "4006"),
            ("collections: valid members, then an unknown client", "operator", "/api/v1/collections",
             {"name": "bi-static", "members": ["pc1", "no-such-client"]}, "no-such-client"),
        ]
        for label, role, path, body, mention in cases:
            self.refused(label, self.api("POST", path, role, body), (400, 404), [mention])
        self.refused("PATCH static1: a known client to add, an unknown one to remove",
                     self.api("PATCH", "/api/v1/collections/static1", "operator",
                              {"add": ["pc2"], "remove": ["no-such-client"]}), (400, 404), ["no-such-client"])

    # ------------------------------------------------------------------ credentials

    def credential_matrix(self):
        """(method, path, body, roles that may call it)."""
        admin_api_ro = ("admin", "operator", "read-only")
        admin_api_op = ("admin", "operator")
        admin_only = ("admin",)
        m = self.valid_manifest
        ident = {"Content-Type": "application/vnd.depot.chunks"}
        return [
            ("POST", "/api/v1/tokens", {"role": "admin", "name": "bi-escalate"}, admin_only),
            ("GET", "/api/v1/tokens", None, admin_only),
            ("DELETE", f"/api/v1/tokens/{self.ro_token_id}", None, admin_only),
            ("POST", "/api/v1/dps", {"name": "dp-evil", "url": "http://127.0.0.1:9"}, admin_only),
            ("DELETE", "/api/v1/dps/dp2", None, admin_only),
            ("POST", "/api/v1/distributions", {"package": "tools", "to": ["group:evil"]}, admin_api_op),
            ("POST", "/api/v1/collections", {"name": "evil", "rule": 'os == "x"'}, admin_api_op),
            ("PATCH", "/api/v1/collections/static1", {"add": ["pc2"]}, admin_api_op),
            ("DELETE", "/api/v1/collections/spare-coll", None, admin_api_op),
            ("POST", "/api/v1/deployments", {"package": "tools", "program": "install", "collection": "linux"},
             admin_api_op),
            ("POST", f"/api/v1/deployments/{self.dep_cancel}/cancel", {}, admin_api_op),
            ("POST", "/api/v1/chunks/missing", {"chunks": ["ab" * 32]}, admin_api_op),
            ("POST", "/api/v1/chunks", (b"", ident), admin_api_op),
            ("POST", "/api/v1/packages/tools/versions", (m, {}), admin_api_op),
            ("DELETE", "/api/v1/packages/spare", None, admin_api_op),
            ("GET", "/api/v1/packages", None, admin_api_ro),
            ("GET", "/api/v1/packages/tools", None, admin_api_ro),
            ("GET", "/api/v1/settings", None, admin_api_ro),
            ("GET", "/api/v1/dps", None, admin_api_ro),
            ("GET", "/api/v1/clients", None, admin_api_ro),
            ("GET", "/api/v1/clients/pc1", None, admin_api_ro),
            ("GET", "/api/v1/collections", None, admin_api_ro),
            ("GET", "/api/v1/deployments", None, admin_api_ro),
            ("GET", "/api/v1/messages", None, admin_api_ro),
            ("GET", "/api/v1/status", None, admin_api_ro),
            ("GET", "/api/v1/dp/assignment", None, ("dp",)),
            ("GET", "/api/v1/dp/trust", None, ("dp",)),
            ("POST", "/api/v1/dp/report", {"versions": [{"package": "tools", "version": 1, "state": "failed"}]}, ("dp",)),
            ("POST", "/api/v1/dp/messages", {"messages": [{"seq": 99999, "code": 3002}]}, ("dp",)),
            ("POST", "/api/v1/agent/enroll", {"name": "intruder", "attributes": {"os": "linux"}}, ("enroll",)),
            ("GET", "/api/v1/agent/policy", None, ("agent",)),
            ("POST", "/api/v1/agent/attributes", {"attributes": {"os": "plan9"}}, ("agent",)),
            ("POST", "/api/v1/agent/status", {"deployments": [{"deployment": self.dep_main, "seq": 99999,
                                                               "state": "failed"}]}, ("agent",)),
        ]

    def send_with(self, method, path, body, auth):
        headers = {}
        if isinstance(body, tuple):
            body, headers = body
        if auth is not None:
            headers = {**headers, "Authorization": auth}
        return lambda: http_request(self.site.url, method, path, body=body, headers=headers)

    def test_missing_wrong_and_underprivileged_credentials_are_refused(self):
        fake = "depot_admin_" + "0" * 64
        bad_auth = [
            ("no Authorization header", None),
            ("an empty Authorization header", ""),
            ("Basic credentials", "Basic YWRtaW46YWRtaW4="),
            ("a bare token without Bearer", self.tok["admin"]),
            ("Bearer and nothing", "Bearer "),
            ("an unknown well-formed token", "Bearer " + fake),
            ("an admin token with a byte more", "Bearer " + self.tok["admin"] + "0"),
            ("an admin token cut short", "Bearer " + self.tok["admin"][:-1]),
            ("a 4 KiB token", "Bearer " + "a" * 4096),
            ("a revoked token", "Bearer " + self.tok["revoked"]),
            ("an expired admin token", "Bearer " + self.tok["expired"]),
            ("the token of a removed DP", "Bearer " + self.tok["removed-dp"]),
        ]
        roles = ("admin", "operator", "read-only", "enroll", "dp", "agent")
        for method, path, body, allowed in self.credential_matrix():
            for label, auth in bad_auth:
                self.refused(f"{method} {path} with {label}", self.send_with(method, path, body, auth), 401)
            for role in roles:
                if role not in allowed:
                    self.refused(f"{method} {path} with a {role} token",
                                 self.send_with(method, path, body, "Bearer " + self.tok[role]), 403, [path])
            if "enroll" in allowed:
                self.refused(f"{method} {path} with a used-up enrollment token",
                             self.send_with(method, path, body, "Bearer " + self.tok["spent-enroll"]), 401)
        # Credentials are checked before the body: a bad body from the wrong role is a 403.
        self.refused("POST /api/v1/dps, read-only token, malformed body",
                     self.api("POST", "/api/v1/dps", "read-only", b"{oops"), 403)
        self.refused("POST /api/v1/tokens, no token, malformed body",
                     self.api("POST", "/api/v1/tokens", None, b"{oops"), 401)

    # ------------------------------------------------------------------ names and paths in URLs

    def test_path_traversal_and_odd_names_in_api_parameters(self):
        site_toml = open(os.path.join(self.site.data, "site.toml"), "rb").read()
        forbidden = [b"[site]", b"PRIVATE KEY", b"SQLite format 3", b"\"tokens\"", site_toml[:60]]
        names = [
            ("..", ".."), ("%2e%2e", ".."), ("%2E%2E", ".."), ("..%2Fetc", "../etc"), ("%2e%2e%2f%2e%2e%2fsite.toml", None),
            ("a%2Fb", "a/b"), (".", None), ("%2e", None), (".hidden", ".hidden"), ("-x", "-x"), ("a%5Cb", None),
            ("%0a", None), ("x" * 300, None), ("y" * 5000, None), ("%C3%28", None),
        ]
        # Targets the HTTP layer itself refuses (a NUL, a broken escape): a few endpoints suffice.
        for enc in ("%00", "a%00b", "tools%00", "%zz", "%", "%2"):
            for method, target, body, role in (("GET", f"/api/v1/packages/{enc}", None, "read-only"),
                                               ("DELETE", f"/api/v1/dps/{enc}", None, "admin"),
                                               ("POST", f"/api/v1/packages/{enc}/versions", self.valid_manifest,
                                                "operator")):
                self.refused(f"{method} {target}", self.api(method, target, role, body), 400, [], [b"[site]"])
        manifest = self.valid_manifest
        for enc, shown in names:
            mention = [shown] if shown else []
            targets = [
                ("GET", f"/api/v1/packages/{enc}", None, "read-only"),
                ("DELETE", f"/api/v1/packages/{enc}", None, "operator"),
                ("GET", f"/api/v1/dps/{enc}", None, "read-only"),
                ("DELETE", f"/api/v1/dps/{enc}", None, "admin"),
                ("GET", f"/api/v1/collections/{enc}", None, "read-only"),
                ("DELETE", f"/api/v1/collections/{enc}", None, "operator"),
                ("PATCH", f"/api/v1/collections/{enc}", {"add": ["pc2"]}, "operator"),
                ("GET", f"/api/v1/clients/{enc}", None, "read-only"),
                ("POST", f"/api/v1/packages/{enc}/versions?create=1", manifest, "operator"),
                ("POST", f"/api/v1/packages/{enc}/versions", manifest, "operator"),
            ]
            for method, target, body, role in targets:
                self.refused(f"{method} {target[:90]}", self.api(method, target, role, body), None,
                             mention if len(target) < 200 else [], forbidden)
        for enc in ("..", "-1", "0", "1.0", "0x1", "1e3", "99999999999999999999999", "9223372036854775808",
                    "9223372036854775809", "1%2F..", " 1", "%2e%2e"):
            for method, target, role in (("GET", f"/api/v1/deployments/{enc}", "read-only"),
                                         ("POST", f"/api/v1/deployments/{enc}/cancel", "operator"),
                                         ("DELETE", f"/api/v1/tokens/{enc}", "admin")):
                if " " in target:
                    target = target.replace(" ", "%20")
                self.refused(f"{method} {target}", self.api(method, target, role, {} if method == "POST" else None),
                             None, [], forbidden)
        # Un-normalised dot segments never reach another endpoint or a file.
        for target in ("/api/v1/packages/../tokens", "/api/v1/packages/%2e%2e/tokens", "/api/v1/dps/../../v1/tokens",
                       "/api/v1/x/../tokens", "/api/v1/./tokens", "/api//v1/tokens", "/api/v1/tokens/",
                       "/api/v1/packages/../../../site.toml", "/repo/../api/v1/tokens", "/api/v1/../../site.toml"):
            self.refused(f"GET {target} (read-only)", self.api("GET", target, "read-only"), None, [], forbidden)
        # A 20 KB name does not fit the 16 KiB header limit: refused, with a JSON error.
        self.refused("GET a 20 KB package name", self.api("GET", "/api/v1/packages/" + "z" * 20000, "read-only"),
                     (414, 431))
        # Names inside bodies that would be paths anywhere are refused where they are created.
        for bad in ("../etc", "a/b", "..", ".", ".hidden", "-x", "x" * 65, "", "a\u0000b", "a\\b", "é"):
            self.refused(f"POST /api/v1/dps name={bad[:20]!r}",
                         self.api("POST", "/api/v1/dps", "admin", {"name": bad, "url": "http://127.0.0.1:9"}), 400,
                         ["name"])
            self.refused(f"POST /api/v1/collections name={bad[:20]!r}",
                         self.api("POST", "/api/v1/collections", "operator", {"name": bad, "rule": 'os == "x"'}), 400,
                         ["name"])
            self.refused(f"POST /api/v1/dps group={bad[:20]!r}",
                         self.api("POST", "/api/v1/dps", "admin",
                                  {"name": "dp-g", "url": "http://127.0.0.1:9", "groups": [bad]}), 400, ["group"])

    def test_repo_paths_never_leave_the_public_tree(self):
        cases = [
            "/repo/../site.toml", "/repo/%2e%2e/site.toml", "/repo/%2E%2E/site.toml", "/repo/..%2fsite.toml",
            "/repo/..%2f..%2fsite.toml", "/repo/%2e%2e%2f%2e%2e%2fsite.toml", "/repo/../../site.toml",
            "/repo/metadata/../../../site.toml", "/repo/chunks/../../state/state.db", "/repo/%2e%2e/dp.toml",
            "/repo/../dp.toml", "/repo/chunks/../../dp.toml", "/repo/chunks/%2e%2e/%2e%2e/state/state.db",
            "/repo/../keys/root.pem", "/repo/%2e%2e/keys/targets.pem", "/repo/../depot-repo.json",
            "/repo/../../catalog.db", "/repo/..%5c..%5csite.toml", "/repo/..\\..\\site.toml",
            "/repo//etc/passwd", "/repo/%2fetc/passwd", "/repo/metadata/root.json%00.txt",
            "/repo/metadata/root.json%00", "/repo/./metadata/../../site.toml", "/repo/metadata/",
            "/repo/metadata", "/repo/", "/repo", "/repo/chunks/", "/repo/targets/", "/repo/targets/tools/",
            "/repo/.", "/repo/..", "/repo/%2e", "/repo/metadata/.lock", "/repo/../.lock",
            "/repo/metadata/%2e%2e/%2e%2e/keys/snapshot.pem", "/../site.toml", "/%2e%2e/site.toml",
            "/repo/links/site.toml", "/repo/links/dp.toml", "/repo/links/state/state.db",
            "/repo/metadata/evil.json", "/repo/metadata/root.json/",
        ]
        # Symlinks planted inside both trees must not be followed.
        site_repo = os.path.join(self.site.data, "library/repo")
        dp_repo = os.path.join(self.dp.data, "repo")
        os.symlink("../..", os.path.join(site_repo, "links"))
        os.symlink("../../../site.toml", os.path.join(site_repo, "metadata/evil.json"))
        os.symlink("..", os.path.join(dp_repo, "links"))
        os.symlink("../../dp.toml", os.path.join(dp_repo, "metadata/evil.json"))
        for link in (os.path.join(site_repo, "links"), os.path.join(site_repo, "metadata/evil.json"),
                     os.path.join(dp_repo, "links"), os.path.join(dp_repo, "metadata/evil.json")):
            self.addCleanup(os.unlink, link)
        self.baseline = self._snapshot()
        secrets = [b"[site]", b"PRIVATE KEY", b"SQLite format 3", b"depot_dp_", b"compression_level",
                   self.site.admin_token.encode(), self.tok["dp"].encode()]
        with open(os.path.join(self.dp.data, "dp.toml"), "rb") as f:
            secrets.append(f.read()[:40])
        for server, base in (("site", self.site.url), ("dp", self.dp.url)):
            for target in cases:
                for method in ("GET", "HEAD"):
                    def send(base=base, target=target, method=method):
                        st, raw, h = http_request(base, method, target)
                        if method == "HEAD" and 400 <= st < 500:
                            # HEAD has no body to check the error form in: only the status counts.
                            raw = b'{"error":{"code":"%s","message":"head"}}' % DOC_CODES.get(st, "x").encode()
                        return st, raw, h
                    self.refused(f"{server}: {method} {target}", send, None, [], secrets)
            # Files in the tree are read-only to HTTP.
            for method in ("PUT", "DELETE", "POST", "PATCH"):
                for target in ("/repo/metadata/root.json", "/repo/metadata/timestamp.json", "/repo/../site.toml"):
                    self.refused(f"{server}: {method} {target}", lambda b=base, m=method, t=target: http_request(b, m, t),
                                 (405, 404, 413), [], secrets)
                    self.refused(f"{server}: {method} {target} with a body",
                                 lambda b=base, m=method, t=target: http_request(b, m, t, body=b"{}"),
                                 (405, 404, 413), [], secrets)
        # The DP has no API: nothing there takes a body or answers for the site.
        for target in ("/api/v1/dp/report", "/api/v1/tokens", "/api/v1/agent/enroll"):
            self.refused(f"dp: POST {target}", lambda t=target: http_request(self.dp.url, "POST", t, body={"x": 1}),
                         None, [], secrets)
            self.refused(f"dp: GET {target}", lambda t=target: http_request(self.dp.url, "GET", t), 404, [], secrets)
        # A chunk id that is not one, and a manifest name off the pattern, are plain 404s
        # on the DP (no pull-through of arbitrary names).
        for target in ("/repo/chunks/00/" + "g" * 64, "/repo/chunks/../" + "0" * 64,
                       "/repo/targets/tools/../../../dp.toml", "/repo/targets/../../dp.toml",
                       "/repo/chunks/ab/" + "ab" * 32 + "/../../../../dp.toml"):
            self.refused(f"dp: GET {target}", lambda t=target: http_request(self.dp.url, "GET", t), 404, [], secrets)

    # ------------------------------------------------------------------ manifests

    @classmethod
    def _manifest_of(cls, package, version):
        """The exact manifest bytes the site serves, found through its TUF metadata."""
        ts = cls._get("/repo/metadata/timestamp.json")["signed"]
        snap = cls._get(f"/repo/metadata/{ts['meta']['snapshot.json']['version']}.snapshot.json")["signed"]
        targets = cls._get(f"/repo/metadata/{snap['meta']['targets.json']['version']}.targets.json")["signed"]
        sha = targets["targets"][f"{package}/{version}.json"]["hashes"]["sha256"]
        st, raw, _ = http_request(cls.site.url, "GET", f"/repo/targets/{package}/{sha}.{version}.json")
        assert st == 200 and hashlib.sha256(raw).hexdigest() == sha
        return raw

    def test_manifests_with_unsafe_paths_or_bad_fields_are_refused(self):
        base = json.loads(self.valid_manifest)

        def dump(m):
            return json.dumps(m, sort_keys=True, separators=(",", ":")).encode()

        def idx(m, path):
            return [i for i, e in enumerate(m["entries"]) if e["path"] == path][0]

        def with_entry(at, **fields):
            """Changes the entry at path `at` (kept in place: the check of its path comes first)."""
            def f(m):
                m["entries"][idx(m, at)].update(fields)
            return f

        def insert_after(after, entry):
            def f(m):
                m["entries"].insert(idx(m, after) + 1, entry)
            return f

        empty_file = dict(base["entries"][idx(base, "empty.txt")])
        tool = base["entries"][idx(base, "bin/tool")]
        one_chunk = [e for e in base["entries"] if e["type"] == "file" and len(e.get("chunks", [])) == 1][0]

        # The valid manifest as this test re-serialises it is accepted (as a new package,
        # so nothing else moves): the refusals below are due to the mutation alone.
        ctl = copy.deepcopy(base)
        ctl["package"]["name"] = "bi-control"
        st, raw, _ = http_request(self.site.url, "POST", "/api/v1/packages/bi-control/versions?create=1",
                                  body=dump(ctl), headers={"Authorization": "Bearer " + self.tok["operator"]})
        self.assertEqual(st, 201, raw)
        self.baseline = self._snapshot()

        def set_chunk(e, i, cid):
            def f(m):
                ent = m["entries"][idx(m, e)]
                ent["chunks"][i][0] = cid
            return f

        def set_key(*path_value):
            *path, value = path_value

            def f(m):
                cur = m
                for k in path[:-1]:
                    cur = cur[k]
                cur[path[-1]] = value
            return f

        def delete_key(*path):
            def f(m):
                cur = m
                for k in path[:-1]:
                    cur = cur[k]
                del cur[path[-1]]
            return f

        mutations = [
            ("entry path ../x", with_entry("empty.txt", path="../x"), ["../x"]),
            ("entry path /abs", with_entry("empty.txt", path="/abs"), ["/abs"]),
            ("entry path a/../../b", with_entry("empty.txt", path="a/../../b"), ["a/../../b"]),
            ("entry path bin/../../etc/passwd", with_entry("empty.txt", path="bin/../../etc/passwd"), ["bin/../../etc/passwd"]),
            ("entry path ..", with_entry("empty.txt", path=".."), [".."]),
            ("entry path ./empty.txt", with_entry("empty.txt", path="./empty.txt"), ["./empty.txt"]),
            ("entry path with an empty component", with_entry("empty.txt", path="bin//x"), ["bin//x"]),
            ("entry path with a trailing slash", with_entry("empty.txt", path="empty.txt/"), ["empty.txt/"]),
            ("entry path with a backslash", with_entry("empty.txt", path="..\\x"), ["backslash"]),
            ("entry path with NUL", with_entry("empty.txt", path="em\u0000pty.txt"), ["NUL"]),
            ("entry path with a newline", with_entry("empty.txt", path="em\npty.txt"), ["control"]),
            ("empty entry path", with_entry("empty.txt", path=""), ["path"]),
            ("entry path of 4097 bytes", with_entry("empty.txt", path="e" * 4097), ["4096"]),
            ("entry path component of 256 bytes", with_entry("empty.txt", path="e" * 256), ["255"]),
            ("duplicate path", insert_after("empty.txt", dict(empty_file)), ["empty.txt"]),
            ("duplicate path with another type", insert_after("empty.txt", {"path": "empty.txt", "type": "dir", "mode": 493}),
             ["empty.txt"]),
            ("entries out of order", lambda m: m["entries"].insert(idx(m, "empty.txt"), m["entries"].pop(idx(m, "etc"))),
             ["order"]),
            ("entry under a symlink", insert_after("mod1-link", {**empty_file, "path": "mod1-link/evil"}),
             ["mod1-link/evil"]),
            ("entry without its parent dir", insert_after("empty.txt", {**empty_file, "path": "empty.txt2/x"}),
             ["empty.txt2/x"]),
            ("symlink escaping with ..", with_entry("etc/tool-link", target="../../outside"), ["etc/tool-link"]),
            ("symlink to an absolute path", with_entry("etc/tool-link", target="/etc/passwd"), ["etc/tool-link"]),
            ("symlink escaping far", with_entry("mod1-link", target="../../../../../../etc/passwd"), ["mod1-link"]),
            ("symlink escaping midway", with_entry("mod1-link", target="src/../../x"), ["mod1-link"]),
            ("symlink escaping through another symlink",
             lambda m: (with_entry("etc/tool-link", target="..")(m), with_entry("mod1-link", target="etc/tool-link/..")(m)),
             ["mod1-link"]),
            ("symlink loop", lambda m: (with_entry("etc/tool-link", target="../mod1-link")(m),
                                        with_entry("mod1-link", target="etc/tool-link")(m)), ["symlink"]),
            ("empty symlink target", with_entry("mod1-link", target=""), ["mod1-link"]),
            ("symlink with NUL target", with_entry("mod1-link", target="src\u0000/x"), ["mod1-link"]),
            ("unknown top-level field", set_key(UNKNOWN, 1), [UNKNOWN]),
            ("unknown entry field", with_entry("empty.txt", **{UNKNOWN: 1}), [UNKNOWN]),
            ("unknown program field", lambda m: m["programs"][0].update({UNKNOWN: 1}), [UNKNOWN]),
            ("unknown package field", set_key("package", UNKNOWN, "x"), [UNKNOWN]),
            ("unknown chunker field", set_key("chunker", UNKNOWN, 1), [UNKNOWN]),
            ("version as a string", set_key("version", "1"), ["version"]),
            ("format as a string", set_key("format", "1"), ["format"]),
            ("mode as a string", with_entry("empty.txt", mode="420"), ["mode"]),
            ("size as a string", with_entry("empty.txt", size="0"), ["size"]),
            ("entries not a list", set_key("entries", {}), ["entries"]),
            ("programs not a list", set_key("programs", "install"), ["programs"]),
            ("chunk as an object", set_chunk("bin/tool", 0, {"id": 1}), ["chunk"]),
            ("missing entries", delete_key("entries"), ["entries"]),
            ("setuid mode", with_entry("bin/tool", mode=0o4755), ["bin/tool"]),
            ("negative mode", with_entry("bin/tool", mode=-1), ["mode"]),
            ("unknown entry type", with_entry("empty.txt", type="device"), ["device"]),
            ("format 2", set_key("format", 2), ["format"]),
            ("other package name", set_key("package", "name", "other"), ["other"]),
            ("package name ../tools", set_key("package", "name", "../tools"), ["../tools"]),
            ("other chunker", set_key("chunker", "avg", 32768), ["chunk"]),
            ("unknown chunker algorithm", set_key("chunker", "algorithm", "rabin"), ["rabin"]),
            ("chunk sizes not adding up", with_entry("bin/tool", size=tool["size"] + 1), ["bin/tool"]),
            ("a chunk the site lacks", set_chunk("bin/tool", 0, "0" * 64), ["0" * 16]),
            ("a chunk id that is not hex", set_chunk("bin/tool", 0, "../../../../etc/passwd"), ["chunk"]),
            ("a one-chunk file whose hash is not its chunk", with_entry(one_chunk["path"], sha256="1" * 64),
             [one_chunk["path"]]),
            ("program named ../x", lambda m: m["programs"][0].update({"name": "../x"}), ["../x"]),
            ("duplicate program", lambda m: m["programs"].append(dict(m["programs"][0])), ["install"]),
            ("program timeout 0", lambda m: m["programs"][0].update({"timeout_s": 0}), ["timeout"]),
            ("program with a NUL in its command", lambda m: m["programs"][0].update({"command": "sh\u0000-c"}), ["NUL"]),
            ("created not a time", set_key("created", "yesterday"), ["created"]),
        ]
        target = "/api/v1/packages/tools/versions"
        for label, mutate, mention in mutations:
            m = copy.deepcopy(base)
            mutate(m)
            self.refused(f"manifest: {label}", self.api("POST", target, "operator", dump(m)), (400, 404, 422), mention)
            # The same with ?create=1 under a fresh name is refused as well.
            m2 = copy.deepcopy(m)
            if isinstance(m2.get("package"), dict) and m2["package"].get("name") == "tools":
                m2["package"]["name"] = "bi-fresh"
            self.refused(f"manifest (create): {label}",
                         self.api("POST", "/api/v1/packages/bi-fresh/versions?create=1", "operator", dump(m2)),
                         (400, 404, 422), mention)
        for raw, mention in ((b"", ""), (b"{", "JSON"), (b"[]", ""), (b'"x"', ""), (b"\xff", ""),
                             (deep_json('{"entries":', DEEP), ""), (self.valid_manifest[:-1], "JSON"),
                             (self.valid_manifest + b"x", "JSON")):
            self.refused(f"manifest: raw body {raw[:24]!r}", self.api("POST", target, "operator", raw), 400,
                         [mention] if mention else [])
        head = (f"POST {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {self.tok['operator']}\r\n"
                f"Content-Length: {(256 << 20) + 1}\r\n\r\n").encode()
        self.refused("manifest: over 256 MiB declared", lambda: raw_exchange(self.site.url, head), 413,
                     [str(256 << 20)])
        # A manifest whose package name differs from the URL (the URL is the one that counts).
        self.refused("manifest of tools sent for spare", self.api("POST", "/api/v1/packages/spare/versions", "operator",
                                                                  self.valid_manifest), 400, ["tools", "spare"])

    def test_chunk_uploads_with_bad_records(self):
        ct = {"Content-Type": "application/vnd.depot.chunks"}
        rec = b"\x00" * 32 + (100).to_bytes(4, "little") + (10).to_bytes(4, "little") + b"x" * 10
        big = b"\x00" * 32 + (1 << 30).to_bytes(4, "little") + (10).to_bytes(4, "little") + b"x" * 10
        cases = [
            ("a truncated record header", b"\x00" * 39, 400, ["truncated"]),
            ("a frame longer than the body", b"\x00" * 32 + (100).to_bytes(4, "little") + (1000).to_bytes(4, "little"),
             400, ["truncated"]),
            ("a frame that is not zstd", rec, (400, 422), ["0" * 16]),
            ("a chunk above the maximum size", big, 400, ["maximum"]),
        ]
        for label, body, status, mention in cases:
            self.refused(f"POST /api/v1/chunks: {label}",
                         self.api("POST", "/api/v1/chunks", "operator", body, headers=ct), status, mention)

    # ------------------------------------------------------------------ the CLI

    def cli_refused(self, label, args, mention, env=None, code=None):
        with self.subTest(label):
            before = self.baseline
            rc, out, err = run_depot(*args, check=False, env=env or self.site.cli_env(), timeout=120)
            after = self._snapshot()
            self.baseline = after
            problems = []
            if rc == 0 or (code is not None and rc != code):
                problems.append(f"exit code {rc} (expected {code or 'non-zero'})")
            for m in mention:
                if m.lower() not in err.lower():
                    problems.append(f"stderr does not name {m!r}: {err[-600:]!r}")
            if "Traceback" in err or "terminate called" in err or "Segmentation" in err:
                problems.append(f"stderr shows a crash: {err[-600:]!r}")
            problems += self.state_problems(before, after)
            if problems:
                self.fail("\n  ".join([label] + problems))

    def test_cli_reports_bad_input_clearly_and_changes_nothing(self):
        missing = self.path("no-such-dir")
        fake = "depot_admin_" + "0" * 64
        self.cli_refused("package create from a missing source dir",
                         ["package", "create", "newpkg", "--source", missing], [missing], code=1)
        self.cli_refused("package update from a missing source dir",
                         ["package", "update", "tools", "--source", missing], [missing], code=1)
        self.cli_refused("package create named ../evil", ["package", "create", "../evil", "--source", self.src],
                         ["../evil"])
        self.cli_refused("package create of an existing package", ["package", "create", "tools", "--source", self.src],
                         ["tools"], code=1)
        self.cli_refused("deploy to a missing collection",
                         ["deploy", "tools", "--program", "install", "--to", "no-such-collection"],
                         ["no-such-collection"], code=1)
        self.cli_refused("deploy a missing program", ["deploy", "tools", "--program", "nope", "--to", "linux"],
                         ["nope"], code=1)
        self.cli_refused("deploy with a bad deadline",
                         ["deploy", "tools", "--program", "install", "--to", "linux", "--deadline", "soonish"],
                         ["soonish"])
        self.cli_refused("dp add with a bad URL", ["dp", "add", "dpz", "--url", "not-a-url"], ["not-a-url"])
        self.cli_refused("dp add with an ftp URL", ["dp", "add", "dpz", "--url", "ftp://dp:21"], ["ftp://dp:21"])
        self.cli_refused("dp add with a bad boundary",
                         ["dp", "add", "dpz", "--url", "http://127.0.0.1:9", "--boundary", "10.0.0.0/99"],
                         ["10.0.0.0/99"])
        self.cli_refused("dp add named ../dp", ["dp", "add", "../dp", "--url", "http://127.0.0.1:9"], ["../dp"])
        self.cli_refused("collection with a bad rule", ["collection", "create", "c-bad", "--rule", "os =="], ["rule"])
        self.cli_refused("distribute to a missing DP", ["distribute", "tools", "--to", "no-such-dp"], ["no-such-dp"])
        self.cli_refused("an unknown --token",
                         ["package", "list", "--token", fake], ["token"], code=1)
        self.cli_refused("a malformed --token",
                         ["dp", "add", "dpz", "--url", "http://127.0.0.1:9", "--token", "garbage"], ["token"], code=1)
        self.cli_refused("a revoked --token",
                         ["collection", "create", "c-rev", "--rule", 'os == "x"', "--token", self.tok["revoked"]],
                         ["revoked"], code=1)
        self.cli_refused("a read-only --token on an admin command",
                         ["token", "create", "--role", "admin", "--token", self.tok["read-only"]], ["read-only"], code=1)
        self.cli_refused("a DP token for the admin CLI",
                         ["deploy", "tools", "--program", "install", "--to", "linux", "--token", self.tok["dp"]],
                         ["dp"], code=1)
        env = self.site.cli_env(token=fake)
        self.cli_refused("an unknown DEPOT_TOKEN", ["package", "delete", "spare"], ["token"], env=env, code=1)
        env = self.site.cli_env()
        del env["DEPOT_TOKEN"]
        self.cli_refused("no token at all", ["package", "delete", "spare"], ["token"], env=env)
        self.cli_refused("a site URL that is not one", ["package", "list", "--site", "notaurl"], ["notaurl"])
        with self.subTest("a token among unexpected arguments is not echoed"):
            secret = "depot_admin_" + "ab" * 32
            rc, out, err = run_depot("package", "list", "extra-arg", secret, check=False, env=self.site.cli_env())
            self.assertNotEqual(rc, 0)
            self.assertIn("extra-arg", err)
            self.assertNotIn("ab" * 32, err + out)
            self.assertIn("depot_admin_<redacted>", err)
        # --json: the error is one JSON document on stdout as well.
        with self.subTest("--json error document"):
            rc, out, err = run_depot("--json", "deploy", "tools", "--program", "install", "--to", "no-such-collection",
                                     check=False, env=self.site.cli_env())
            self.assertEqual(rc, 1)
            doc = json.loads(out)
            self.assertEqual(doc["error"]["code"], "NotFound")
            self.assertIn("no-such-collection", doc["error"]["message"])


if __name__ == "__main__":
    unittest.main()
