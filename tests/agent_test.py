"""Agent tests with real processes: a site, DPs (some behind fault-injecting servers)
and `depot agent` on loopback."""
import os
import shutil
import time

from harness import (AgentProcess, DepotTestCase, describe_tree, DpProcess, FaultServer, free_port, make_tree,
                     metric, run_depot, site_with_fast_retries, wait_until, write)


class AgentTest(DepotTestCase):
    def setUp(self):
        super().setUp()
        self.site = site_with_fast_retries(self.tmp)
        self.addCleanup(self.site.stop)
        self.site.cli("collection", "create", "all", "--rule", 'os == "linux"')
        self.runs = self.path("runs.log")

    # ------------------------------------------------------------------ helpers

    def program(self, extra=""):
        # Appends one line per run, outside the content directory, to count runs.
        return f"install=echo $DEPOT_PACKAGE-$DEPOT_VERSION-$DEPOT_DEPLOYMENT >> {self.runs}{extra}"

    def publish(self, src, update=False, program=None, name="tools"):
        return self.site.cli("package", "update" if update else "create", name, "--source", src,
                             "--program", program or self.program())

    def runs_logged(self):
        if not os.path.exists(self.runs):
            return []
        with open(self.runs) as f:
            return f.read().split()

    def agent(self, name="pc1", extra=()):
        a = AgentProcess(self.site, self.tmp, name, extra=("--poll-interval", "1", "--retry-base", "1s") + tuple(extra))
        self.addCleanup(a.stop)
        return a

    def dp(self, name, **kw):
        d = DpProcess(self.site, self.tmp, name, **kw)
        self.addCleanup(d.stop)
        return d

    def messages(self, agent, code=None):
        out = self.site.cli("messages", "--client", agent.client(), "--limit", "1000")["messages"]
        return [m for m in out if code is None or m["code"] == code]

    def content(self, agent, package, version):
        return os.path.join(agent.data, "content", package, str(version))

    # ------------------------------------------------------------------ tests

    def test_cold_install_and_update_fetch_only_changed_chunks_from_the_dp(self):
        src = self.path("src")
        make_tree(src, seed=1, big_mib=3)
        self.publish(src)
        dp = self.dp("near", port=free_port())
        self.site.cli("distribute", "tools", "--to", "near")
        dp.wait_state("tools", 1)
        dep = self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        a = self.agent()
        code, err = a.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(describe_tree(src), describe_tree(self.content(a, "tools", 1)))
        self.assertEqual(self.runs_logged(), [f"tools-1-{dep['id']}"])
        got = self.messages(a, 4002)[0]
        self.assertEqual(got["params"]["source"], dp.url + "/repo")
        self.assertEqual(a.status()["installed"], {"tools": 1})
        # The site's summary reflects the agent.
        counts = self.site.cli("deployment", "show", str(dep["id"]))
        self.assertEqual(counts["clients"]["succeeded"], 1, counts)

        # Nothing new: nothing happens, and the program does not run again.
        code, _ = a.once()
        self.assertEqual(code, 4)
        self.assertEqual(len(self.runs_logged()), 1)

        # Update: one small file changes; only its chunk moves.
        write(os.path.join(src, "src/mod1/file1.txt"), b"changed for version 2\n")
        self.publish(src, update=True)
        dp.wait_state("tools", 2)
        code, err = a.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(describe_tree(src), describe_tree(self.content(a, "tools", 2)))
        self.assertFalse(os.path.exists(self.content(a, "tools", 1)), "the previous version is removed after success")
        v2 = [m for m in self.messages(a, 4002) if m["version"] == 2][0]["params"]
        self.assertLess(int(v2["bytes_fetched"]), 100_000, v2)
        self.assertGreater(int(v2["bytes_from_cache"]), 3_000_000, v2)
        self.assertEqual(self.runs_logged(), [f"tools-1-{dep['id']}", f"tools-2-{dep['id']}"])

    def test_available_deployment_installs_only_on_request(self):
        src = self.path("src")
        make_tree(src, seed=2, big_mib=1)
        self.publish(src)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all")
        a = self.agent()
        code, _ = a.once()
        self.assertEqual(code, 4)
        self.assertEqual(a.deployment("tools")["state"], "waiting")
        self.assertEqual(self.runs_logged(), [])
        code, out, err = run_depot("agent", "install", "--data", a.data, "tools", check=False)
        self.assertEqual(code, 0, out + err)
        self.assertEqual(a.deployment("tools")["state"], "succeeded")
        self.assertEqual(len(self.runs_logged()), 1)
        code, out, err = run_depot("agent", "install", "--data", a.data, "nosuch", check=False)
        self.assertNotEqual(code, 0)
        self.assertIn("no available deployment of nosuch", out + err)

    def test_kill_during_download_resumes_from_cache(self):
        src = self.path("src")
        make_tree(src, seed=3, big_mib=4)
        self.publish(src)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        a = self.agent(extra=("--max-rate", "300000", "--parallel", "1"))
        a.start()
        a.wait(lambda s: s["deployments"] and s["deployments"][0]["bytes_done"] > 1_000_000, "download under way")
        a.kill()
        self.assertFalse(os.path.exists(self.content(a, "tools", 1)))
        code, err = a.once("--max-rate", "0", "--parallel", "8")
        self.assertEqual(code, 0, err)
        self.assertEqual(describe_tree(src), describe_tree(self.content(a, "tools", 1)))
        got = self.messages(a, 4002)[0]["params"]
        self.assertGreater(int(got["bytes_from_cache"]), 500_000, got)
        self.assertEqual(len(self.runs_logged()), 1)

    def test_kill_during_program_never_runs_it_twice(self):
        src = self.path("src")
        make_tree(src, seed=4, big_mib=1)
        self.publish(src, program=self.program("; sleep 3"))
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        a = self.agent()
        a.start()
        a.wait(lambda s: s["deployments"] and s["deployments"][0]["state"] == "installing", "installing")
        # The program has started (its first command ran) and is now in its `sleep 3`.
        wait_until(lambda: self.runs_logged(), "the program's first command")
        a.kill()  # the program keeps running without its agent
        code, err = a.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(a.deployment("tools")["state"], "succeeded")
        self.assertEqual(len(self.runs_logged()), 1)
        code, _ = a.once()
        self.assertEqual(code, 4)
        self.assertEqual(len(self.runs_logged()), 1)
        self.assertEqual(len(self.messages(a, 4006)), 1)

    def test_failing_sources_fall_back_in_order_and_each_is_reported(self):
        src = self.path("src")
        make_tree(src, seed=5, big_mib=1)
        self.publish(src)
        modes = {"a-down": None, "b-missing": "missing-version", "c-older": "ok", "d-corrupt": "corrupt",
                 "e-stall": "stall"}
        ports = {n: free_port() for n in modes}
        dps = {n: self.dp(n, url=f"http://127.0.0.1:{ports[n]}") for n in modes}
        for n in modes:
            self.site.cli("distribute", "tools", "--to", n)
        for d in dps.values():
            d.wait_state("tools", 1)
        # c-older will serve this copy: a mirror stuck at version 1.
        old = self.path("c-older-frozen")
        shutil.copytree(dps["c-older"].data, old, symlinks=True)
        write(os.path.join(src, "src/mod2/file2.txt"), b"version 2\n")
        self.publish(src, update=True)
        for d in dps.values():
            d.wait_state("tools", 2)
        for n, mode in modes.items():
            if mode:
                fs = FaultServer(old if n == "c-older" else dps[n].data, ports[n], mode)
                self.addCleanup(fs.stop)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        a = self.agent(extra=("--stall-timeout", "2s"))
        code, err = a.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(describe_tree(src), describe_tree(self.content(a, "tools", 2)))
        self.assertEqual(a.status()["installed"], {"tools": 2}, "never an older version")
        by_source = {}
        for m in self.messages(a):
            if "source" in m["params"]:
                by_source.setdefault(m["params"]["source"], set()).add(m["code"])
        url = lambda n: f"http://127.0.0.1:{ports[n]}/repo"
        self.assertIn(4003, by_source[url("a-down")], by_source)
        self.assertIn(4004, by_source[url("b-missing")], by_source)
        self.assertIn(4004, by_source[url("c-older")], by_source)
        self.assertIn(4012, by_source[url("d-corrupt")], by_source)
        self.assertIn(4003, by_source[url("e-stall")], by_source)
        self.assertIn(4002, by_source[self.site.url + "/repo"], by_source)
        stale = [m for m in self.messages(a, 4004) if m["params"]["source"] == url("b-missing")][0]
        self.assertEqual(stale["version"], 2)
        self.assertIn("needs package tools version 2", stale["text"])

    def test_deleted_package_is_never_requested_again_and_purged_after_grace(self):
        src = self.path("src")
        make_tree(src, seed=6, big_mib=1)
        self.publish(src)
        port = free_port()
        dp = self.dp("near", url=f"http://127.0.0.1:{port}")
        self.site.cli("distribute", "tools", "--to", "near")
        dp.wait_state("tools", 1)
        log = self.path("near-requests.log")
        fs = FaultServer(dp.data, port, "ok", log=log)
        self.addCleanup(fs.stop)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        a = self.agent(extra=("--purge-grace", "3s"))
        a.start()
        a.wait(lambda s: s["deployments"] and s["deployments"][0]["state"] == "succeeded", "installed")
        self.assertTrue(os.path.exists(self.content(a, "tools", 1)))
        # Version 2 replaces a file: version 1's chunk of it moves to the cache.
        write(os.path.join(src, "src/mod1/file1.txt"), b"version 2\n")
        self.publish(src, update=True)
        a.wait(lambda s: s["installed"] == {"tools": 2}, "version 2 installed", timeout=30)
        self.assertGreater(a.status()["cache"]["bytes"], 0)
        self.site.cli("package", "delete", "tools")
        a.wait(lambda s: all(d["removed"] for d in s["deployments"]), "deployment removed", timeout=20)
        seen = open(log).read()
        a.wait(lambda s: not s["deployments"] and s["cache"]["bytes"] == 0, "purged", timeout=30)
        self.assertFalse(os.path.exists(os.path.join(a.data, "content", "tools")))
        # Two more policy polls of the agent (the site's only agent), each a chance to
        # ask for the package again.
        polls = metric(self.site.url, "depot_site_policy_polls_total")
        wait_until(lambda: metric(self.site.url, "depot_site_policy_polls_total") >= polls + 2,
                   "two more policy polls of the agent")
        self.assertEqual(open(log).read(), seen, "no request for a deleted package after the poll")
        codes = {m["code"] for m in self.messages(a)}
        self.assertIn(4010, codes)
        self.assertIn(4011, codes)

    def test_cache_limit_holds_across_a_sequence_of_installs(self):
        limit = 2_500_000
        a = None
        for seed in (11, 12, 13):
            src = self.path(f"src{seed}")
            make_tree(src, seed=seed, big_mib=1)
            self.publish(src, update=a is not None)
            if a is None:
                self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
                a = self.agent(extra=("--cache-size", str(limit)))
            code, err = a.once()
            self.assertEqual(code, 0, err)
            cache = a.status()["cache"]
            self.assertLessEqual(cache["bytes"], limit, cache)
            if seed == 11:
                # The installed tree is the copy of its chunks: nothing is cached twice.
                self.assertEqual(cache["bytes"], 0, cache)
            else:
                self.assertGreater(cache["bytes"], 0, "the superseded version's chunks are cached")
        self.assertEqual(len(self.runs_logged()), 3)
        # Back to the second version's content (the most recently superseded): what
        # the cache holds of it is not downloaded again.
        first = self.path("src12")
        self.publish(first, update=True)
        code, err = a.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(describe_tree(first), describe_tree(self.content(a, "tools", 4)))
        got = [m for m in self.messages(a, 4002) if m["version"] == 4][0]["params"]
        self.assertGreater(int(got["bytes_from_cache"]), 0, got)
        self.assertLessEqual(a.status()["cache"]["bytes"], limit)

    def test_download_happens_outside_the_window_and_the_program_waits_for_it(self):
        src = self.path("src")
        make_tree(src, seed=8, big_mib=1)
        self.publish(src)
        # A one-hour window twelve hours from now, in UTC and in Tokyo time (the same
        # instant): it is closed now.
        later = time.gmtime(time.time() + 12 * 3600)
        tokyo = time.gmtime(time.time() + 21 * 3600)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required",
                      "--window", time.strftime("%H:%M", later) + "+1h@UTC",
                      "--window", time.strftime("%H:%M", tokyo) + "+1h@Asia/Tokyo")
        a = self.agent()
        code, err = a.once()
        self.assertEqual(code, 4, err)
        self.assertEqual(a.deployment("tools")["state"], "downloaded")
        self.assertTrue(os.path.exists(self.content(a, "tools", 1)))
        self.assertEqual(self.runs_logged(), [])
        # A window that is open now lets it install.
        now = time.gmtime(time.time() - 600)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required",
                      "--window", time.strftime("%H:%M", now) + "+1h@UTC")
        code, err = a.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(len(self.runs_logged()), 1)
        # The first deployment still holds the shared content for its own window.
        states = sorted(d["state"] for d in a.status()["deployments"])
        self.assertEqual(states, ["downloaded", "succeeded"])
        self.assertTrue(os.path.exists(os.path.join(self.content(a, "tools", 1), "bin/tool")))

    def test_program_missing_from_the_signed_manifest_is_refused(self):
        src = self.path("src")
        make_tree(src, seed=7, big_mib=1)
        self.publish(src)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        a = self.agent()
        code, err = a.once()
        self.assertEqual(code, 0, err)
        # Version 2 has no `install` program (forced: the site refuses to orphan the
        # deployment otherwise), but the deployment follows the newest version.
        self.site.cli("package", "update", "tools", "--source", src, "--program", "other=true",
                      "--remove-program", "install", "--force")
        code, err = a.once()
        self.assertEqual(code, 1, err)
        d = a.deployment("tools")
        self.assertEqual((d["state"], d["version"]), ("failed_final", 2))
        self.assertIn("not in the signed manifest", d["last_error"])
        self.assertFalse(os.path.exists(self.content(a, "tools", 2)))
        self.assertTrue(os.path.exists(self.content(a, "tools", 1)), "the installed version stays")
        self.assertEqual(len(self.runs_logged()), 1)
        self.assertTrue(any("not in the signed manifest" in m["text"] for m in self.messages(a, 4009)))


if __name__ == "__main__":
    import unittest
    unittest.main()
