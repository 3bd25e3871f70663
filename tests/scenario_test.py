"""The five field failures of ../shared/seeds (DESIGN §1), each reproduced with real
processes on loopback -- site, DPs, agents, nginx -- and shown not to happen with
depot. docs/field-failures.md maps each report to its test here."""
import collections
import os
import shutil
import subprocess

from harness import (DEPOT, AccessLog, AgentProcess, ChangesWhenRead, DepotTestCase, DpProcess, Nginx, describe_tree,
                     free_port, make_tree, run_depot, site_root_json, site_with, wait_until, write)


class ScenarioTest(DepotTestCase):
    # ------------------------------------------------------------------ helpers

    def start_site(self, settings=None, extra=()):
        self.site = site_with(self.tmp, dict({"retry_base": "200ms"}, **(settings or {})), extra)
        self.addCleanup(self.site.stop)
        self.site.cli("collection", "create", "all", "--rule", 'os == "linux"')
        self.runs = self.path("runs.log")

    def program(self):
        # One line per run, outside the content directory, to count runs.
        return f"install=echo $DEPOT_PACKAGE-$DEPOT_VERSION >> {self.runs}"

    def runs_logged(self):
        if not os.path.exists(self.runs):
            return []
        with open(self.runs) as f:
            return f.read().split()

    def publish(self, src, update=False, name="tools"):
        return self.site.cli("package", "update" if update else "create", name, "--source", src,
                             "--program", self.program())

    def dp(self, name, **kw):
        d = DpProcess(self.site, self.tmp, name, **kw)
        self.addCleanup(d.stop)
        return d

    def agent(self, name="pc1", extra=()):
        a = AgentProcess(self.site, self.tmp, name,
                         extra=("--poll-interval", "1", "--retry-base", "1s") + tuple(extra))
        self.addCleanup(a.stop)
        return a

    def messages(self, **filters):
        args = ["messages", "--limit", "10000"]
        for k, v in filters.items():
            args += ["--" + k, str(v)]
        return self.site.cli(*args)["messages"]

    def content(self, agent, package, version):
        return os.path.join(agent.data, "content", package, str(version))

    @staticmethod
    def files_under(*parts):
        return [f for _, _, files in os.walk(os.path.join(*parts)) for f in files]

    def wait_for(self, pred, what, timeout=60):
        return wait_until(pred, what, timeout, interval=0.2)

    # ------------------------------------------------------------------ 000

    def test_000_stale_package_server(self):
        """ITMS: a client required version N sat in "Retrying Download" because its
        package server still had N-1 (a reader held a file open, so it never updated)."""
        self.start_site()
        src = self.path("src")
        make_tree(src, seed=11, big_mib=2)
        self.publish(src)
        near_port = free_port()
        near = self.dp("a-near", port=near_port, boundaries=["127.0.0.0/8"])
        far = self.dp("b-far", port=free_port())
        self.site.cli("distribute", "tools", "--to", "a-near", "b-far")
        near.wait_state("tools", 1)
        far.wait_state("tools", 1)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        a = self.agent()
        code, err = a.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(a.status()["installed"], {"tools": 1})
        near_url = f"http://127.0.0.1:{near_port}/repo"
        self.assertEqual(self.messages(code=4002)[0]["params"]["source"], near_url, "the boundary DP comes first")

        # A reader holds version 1's files open on the preferred DP while version 2 is
        # published: the DP's update still completes (nothing is rewritten in place).
        frozen = self.path("a-near-frozen-at-v1")
        shutil.copytree(near.data, frozen, symlinks=True)
        v1_files = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(near.data, "repo")) for f in fs
                    if "metadata" not in d]
        readers = [open(p, "rb") for p in v1_files]
        self.addCleanup(lambda: [r.close() for r in readers])
        before = {r.name: r.read() for r in readers}
        write(os.path.join(src, "src/mod3/file3.txt"), b"version 2 of this file\n")
        write(os.path.join(src, "bin/new-in-v2"), os.urandom(200_000), 0o755)
        self.publish(src, update=True)
        near.wait_state("tools", 2)
        far.wait_state("tools", 2)
        for r in readers:
            r.seek(0)
            self.assertEqual(r.read(), before[r.name], "a published file under a reader is never rewritten")

        # The ITMS failure itself: the preferred server answers with version 1 only (its
        # process gone, an old copy of its tree served on its address by nginx), while
        # the site believes it has version 2. The agent refuses version 1, reports the
        # stale server with both versions, and gets version 2 from the next source.
        near.stop()
        stale = Nginx(frozen, self.tmp, port=near_port)
        self.addCleanup(stale.stop)
        code, err = a.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(a.status()["installed"], {"tools": 2}, "version 2, never version 1 again")
        self.assertEqual(describe_tree(src), describe_tree(self.content(a, "tools", 2)))
        self.assertEqual(self.runs_logged(), ["tools-1", "tools-2"], "no second run of version 1")
        with open(stale.access_log) as f:
            self.assertIn("timestamp.json", f.read(), "the preferred (stale) server was asked first")
        stale_msgs = [m for m in self.messages(code=4004) if m["params"]["source"] == near_url]
        self.assertEqual(len(stale_msgs), 1, self.messages())
        self.assertEqual(stale_msgs[0]["version"], 2, stale_msgs)
        self.assertIn(f"needs package tools version 2 but {near_url} has only version 1", stale_msgs[0]["text"])
        got = [m for m in self.messages(code=4002) if m["version"] == 2]
        self.assertEqual(got[0]["params"]["source"], far.url + "/repo", "version 2 came from the next source")

        # The agent's report withheld the DP's copy of version 2 from every policy. The
        # DP returns: asked by the site, it re-verifies version 2, is restored, and a new
        # client gets it from there.
        self.assertEqual(near.record("tools", 2)["state"], "verifying")
        stale.stop()
        near.restart()
        near.wait_state("tools", 2)
        self.assertEqual(len(self.messages(code=2011)), 1, "restored once re-verified")
        b = self.agent("pc2")
        code, err = b.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(b.status()["installed"], {"tools": 2})
        mine = [m for m in self.messages(code=4002) if m.get("client") == b.client()]
        self.assertEqual(mine[0]["params"]["source"], near_url)

        # Stopped during an update, the site knows it lacks the new version: no agent is
        # sent there, they take it from the next DP, and the DP catches up when it returns.
        near.stop()
        write(os.path.join(src, "src/mod2/file2.txt"), b"version 3\n")
        self.publish(src, update=True)
        far.wait_state("tools", 3)
        self.assertEqual(near.record("tools", 3)["state"], "pending")
        for agent in (a, b):
            code, err = agent.once()
            self.assertEqual(code, 0, err)
            self.assertEqual(agent.status()["installed"], {"tools": 3})
        self.assertEqual([m for m in self.messages(code=4003) if m["params"]["source"] == near_url], [],
                         "the site never sends an agent to a DP that lacks the version")
        near.restart()
        near.wait_state("tools", 3)
        fetched = self.path("from-near")
        run_depot("repo", "fetch", near.url + "/repo", "--package", "tools", "--dest", fetched,
                  "--trust", site_root_json(self.site, self.path("root.json")))
        self.assertEqual(describe_tree(src), describe_tree(fetched), "the returned DP serves version 3")
        code, _ = a.once()
        self.assertEqual(code, 4, "nothing left to do")
        self.assertEqual(self.runs_logged(), ["tools-1", "tools-2", "tools-2", "tools-3", "tools-3"])

    # ------------------------------------------------------------------ 001

    def test_001_deleted_package_still_requested(self):
        """SMS CAP: clients kept asking access points for packages deleted at the site
        months before."""
        site_log = AccessLog(self.path("site-access.log"))
        self.start_site({"gc_grace": "2s"}, extra=("--access-log", site_log.path))
        dp_log = AccessLog(self.path("dp-access.log"))
        src = self.path("src")
        make_tree(src, seed=12, big_mib=1)
        self.publish(src)
        # Long polls of 1 s: the DP's polls show in the site's log as they end.
        dp = self.dp("dp1", port=free_port(), boundaries=["127.0.0.0/8"],
                     extra=("--access-log", dp_log.path, "--gc-grace", "2s", "--poll-wait", "1s"))
        self.site.cli("distribute", "tools", "--to", "dp1")
        dp.wait_state("tools", 1)
        objects = set(self.files_under(dp.data, "repo", "targets")) | set(self.files_under(dp.data, "repo", "chunks"))
        self.assertGreater(len(objects), 10)

        def requests_for_package(log, mark):
            # A chunk batch (POST .../chunks/batch) names its chunks in its body; the
            # package is the only one here, so any batch asks for its chunks.
            return [r for r in log.since(mark)
                    if any(o in r["target"] for o in objects) or r["target"].endswith("/chunks/batch")]

        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        a = self.agent(extra=("--purge-grace", "3s"))
        a.start()
        a.wait(lambda s: s["deployments"] and s["deployments"][0]["state"] == "succeeded", "installed")
        # The logs do see the package's objects while it exists: the agent's download
        # at the DP, the DP's copy at the site.
        self.assertTrue(requests_for_package(dp_log, 0), "the DP log records the agent's requests")
        self.assertTrue(requests_for_package(site_log, 0), "the site log records the DP's requests")

        self.site.cli("package", "delete", "tools")
        a.wait(lambda s: all(d["removed"] for d in s["deployments"]), "deployment removed at the next poll",
               timeout=20)
        marks = (site_log.mark(), dp_log.mark())
        # Polls go on; the agent and the DP purge after their grace periods; the site
        # collects the content after its own.
        a.wait(lambda s: not s["deployments"] and s["cache"]["bytes"] == 0, "agent purged", timeout=30)
        self.wait_for(lambda: not self.files_under(dp.data, "repo", "targets"), "DP purged")
        self.wait_for(lambda: self.messages(code=1004), "site collected the content", timeout=90)
        # A few more polls of the agent and of the DP, each a chance to ask for it again.
        mark = site_log.mark()
        polls = lambda target: len([r for r in site_log.since(mark) if r["target"].startswith(target)])
        self.wait_for(lambda: polls("/api/v1/agent/policy") >= 2 and polls("/api/v1/dp/assignment") >= 2,
                      "two more polls of the agent and of the DP")
        self.assertEqual(requests_for_package(site_log, marks[0]), [], "no request for the deleted package")
        self.assertEqual(requests_for_package(dp_log, marks[1]), [], "no request for the deleted package")
        self.assertTrue(site_log.since(marks[0]), "the site kept being polled (the log is live)")
        self.assertFalse(os.path.exists(os.path.join(a.data, "content", "tools")))
        self.assertEqual(os.listdir(os.path.join(dp.data, "repo", "targets")), [], "nothing of it left on the DP")
        codes = collections.Counter(m["code"] for m in self.messages())
        for code in (1002, 4010, 4011, 3006, 1004):  # deleted; agent removed + purged; DP purged; site collected
            self.assertEqual(codes[code], 1, (code, codes))

    # ------------------------------------------------------------------ 002

    def test_002_retry_storm(self):
        """SMS distribution manager: one dead DP made the package update retry hourly,
        each retry re-sending to every child site -- thousands of queued jobs."""
        # Compressed time: a DP silent for 1 s is probed, probes back off from 200 ms
        # to at most 1 s. (The backoff itself -- when each probe is due, not one per
        # poll or per version -- is schedule_test.cc's, on a manual clock.)
        self.start_site({"dp_offline_after": "1s", "probe_base": "200ms", "probe_max": "1s"})
        src = self.path("src")
        make_tree(src, seed=13, big_mib=1)
        self.publish(src)
        live = [self.dp(n, port=free_port()) for n in ("dp1", "dp2")]
        dead_url = f"http://127.0.0.1:{free_port()}"
        self.site.cli("dp", "add", "dead", "--url", dead_url)
        self.site.cli("distribute", "tools", "--to", "dp1", "dp2", "dead")
        probes = lambda name="dead": self.site.cli("dp", "show", name)["probe_attempts"]
        versions = 5
        for v in range(2, versions + 1):
            # Each version is published after one more failed probe of the dead DP.
            self.wait_for(lambda: probes() >= v - 1, f"probe {v - 1} of the dead DP")
            write(os.path.join(src, f"src/mod0/v{v}.txt"), f"version {v}\n".encode())
            self.publish(src, update=True)
        for d in live:
            for v in range(1, versions + 1):
                d.wait_state("tools", v)
        dead = self.site.cli("dp", "show", "dead")
        attempts = dead["probe_attempts"]
        self.assertGreaterEqual(attempts, versions - 1, dead)
        # One record per (version, DP); the dead DP's wait and touch nothing else.
        self.assertEqual(sorted(r["version"] for r in dead["versions"]), list(range(1, versions + 1)), dead)
        for d in live:
            recs = self.site.cli("dp", "show", d.name)["versions"]
            self.assertEqual(sorted((r["version"], r["state"], r["attempts"]) for r in recs),
                             [(v, "ready", 0) for v in range(1, versions + 1)], recs)
        msgs = self.messages()
        keys = collections.Counter((m["code"], m.get("dp"), m.get("package"), m.get("version"), m.get("client"))
                                   for m in msgs if m["code"] != 5001)  # each site start is its own event
        self.assertEqual([k for k, n in keys.items() if n > 1], [], "no status message is duplicated")
        unreachable = [m for m in msgs if m["code"] == 2006]
        # A probe may land between reading the DP and reading the messages.
        attempts_after = self.site.cli("dp", "show", "dead")["probe_attempts"]
        self.assertEqual([m["dp"] for m in unreachable], ["dead"], "one record for the dead DP")
        self.assertTrue(attempts <= unreachable[0]["count"] <= attempts_after,
                        ("the record's count is the retry count", unreachable, attempts, attempts_after))
        # Bounded: more probes (counted on that one record) add no messages.
        self.wait_for(lambda: probes() > attempts_after, "another probe of the dead DP")
        later = self.messages()
        self.assertEqual(len(later), len(msgs))

        # Removing the dead DP stops every attempt at once. A witness at the same dead
        # address marks the probe passes (with probe_max 1 s and passes 2 s apart, the
        # dead DP was due in every pass); added before the removal, so that it does not
        # take over the removed DP's id.
        self.site.cli("dp", "add", "witness", "--url", dead_url)
        dead_count = lambda: [m["count"] for m in self.messages(code=2006) if m["dp"] == "dead"]
        self.site.cli("dp", "remove", "dead")
        at_removal = dead_count()
        self.assertNotIn("dead", [d["name"] for d in self.site.cli("dp", "list")["dps"]])
        # A pass that ended after the removal: any pass in flight at the removal is over.
        seen = probes("witness")
        self.wait_for(lambda: probes("witness") > seen, "a probe pass after the removal")
        settled = dead_count()
        self.assertIn(settled[0] - at_removal[0], (0, 1), "at most the probe in flight at the removal is recorded")
        # The next pass began after that one ended, so after the removal: no probe of it.
        seen = probes("witness")
        self.wait_for(lambda: probes("witness") > seen, "the next probe pass")
        self.assertEqual(dead_count(), settled, "no probe after removal")
        self.assertEqual(len(self.messages(code=2009)), 1)

    # ------------------------------------------------------------------ 003

    def test_003_hash_mismatch_from_live_source(self):
        """SMS 2003: the source was edited after the package was built; a DP added later
        copied the live source, and clients failed the hash of the version they knew."""
        self.start_site()
        src = self.path("src")
        make_tree(src, seed=14, big_mib=2)
        v1 = self.publish(src)
        built = self.path("as-built-v1")
        shutil.copytree(src, built, symlinks=True)
        # Edited in place, the package not updated.
        with open(os.path.join(src, "bin/tool"), "r+b") as f:
            f.seek(1 << 20)
            f.write(os.urandom(64 << 10))
        write(os.path.join(src, "src/mod0/file0.txt"), b"edited after the build\n")
        self.assertNotEqual(describe_tree(src), describe_tree(built))

        new = self.dp("new", port=free_port(), boundaries=["127.0.0.0/8"])
        self.site.cli("distribute", "tools", "--to", "new")
        new.wait_state("tools", 1)
        code, out, _ = run_depot("--json", "dp", "verify", "--data", new.data, check=False)
        self.assertEqual(code, 0, out)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        a = self.agent()
        code, err = a.once()
        self.assertEqual(code, 0, err)
        got = [m for m in self.messages(code=4002) if m["version"] == 1][0]
        self.assertEqual(got["params"]["source"], new.url + "/repo", "installed from the new DP")
        self.assertEqual(describe_tree(self.content(a, "tools", 1)), describe_tree(built),
                         "exactly version 1's bytes, not the edited source")
        self.assertEqual(self.messages(code=4012), [], "no hash mismatch anywhere")

        # The edit becomes a version of its own, with its own hashes.
        v2 = self.publish(src, update=True)
        self.assertEqual(v2["version"], 2)
        self.assertNotEqual(v2["manifest_id"], v1["manifest_id"])
        new.wait_state("tools", 2)
        code, err = a.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(describe_tree(self.content(a, "tools", 2)), describe_tree(src))

    # ------------------------------------------------------------------ 004

    def test_004_source_in_use(self):
        """SMS: files in the source were locked or changing; the package silently never
        processed."""
        self.start_site()
        src = self.path("src")
        make_tree(src, seed=15, big_mib=1)
        busy = os.path.join(src, "logs/app.log")
        write(busy, b"x" * (4 << 20))
        written = [0]

        def overwrite(f):
            # Rewrites a block in place (the file keeps its size), whenever it is read.
            f.seek((written[0] * 4096) % (4 << 20))
            f.write(os.urandom(4096))
            written[0] += 1
        with ChangesWhenRead(busy, overwrite) as writer:
            code, out, err = self.site.cli("--log-level", "info", "package", "create", "tools", "--source", src,
                                           "--program", self.program(), check=False, timeout=300)
        self.assertGreater(writer.changes, 0)
        self.assertNotEqual(code, 0)
        self.assertIn("logs/app.log", out["error"]["message"])
        self.assertIn("changed while", out["error"]["message"])
        self.assertGreaterEqual(err.count("snapshot.file_changed"), 2, "it retried before giving up")
        self.assertEqual(self.site.cli("package", "list")["packages"], [], "no version")
        self.assertEqual(self.messages(code=1001), [], "and no status says otherwise")

        # An unreadable file: the same, with the cause. (Root reads everything, so the
        # command runs as nobody then.)
        locked = os.path.join(src, "etc/locked.db")
        write(locked, b"secret\n", 0o000)
        code, out, err = self.create_as_unprivileged(src)
        self.assertNotEqual(code, 0, out)
        self.assertIn("etc/locked.db", err)
        self.assertIn("ermission denied", err)
        self.assertEqual(self.site.cli("package", "list")["packages"], [])
        self.assertEqual(self.messages(code=1001), [])

        # Once the writer stopped and the file is readable, the same command succeeds.
        os.chmod(locked, 0o644)
        code, out, err = self.create_as_unprivileged(src)
        self.assertEqual(code, 0, err)
        v = self.site.cli("package", "show", "tools")["versions"]
        self.assertEqual([x["version"] for x in v], [1])
        self.assertEqual(len(self.messages(code=1001)), 1)

    def create_as_unprivileged(self, src):
        cmd = [DEPOT, "package", "create", "tools", "--source", src, "--program", self.program()]
        if os.geteuid() == 0:
            # Let `nobody` reach the source tree and read every file in it but the
            # locked one (the site's own files are left alone).
            os.chmod(self.tmp, 0o755)
            for d, dirs, files in os.walk(src):
                os.chmod(d, os.stat(d).st_mode | 0o005)
                for f in files:
                    p = os.path.join(d, f)
                    if not os.path.islink(p) and os.stat(p).st_mode & 0o777:
                        os.chmod(p, os.stat(p).st_mode | 0o004)
            cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=self.site.cli_env())
        return p.returncode, p.stdout, p.stderr


if __name__ == "__main__":
    import unittest
    unittest.main()
