"""A tree of sites (docs/hierarchy.md), with real processes on loopback: a top site,
children that pull from it, a grandchild, each with DPs and agents. Content and work
flow down, status flows up, links are observable and obey their schedules."""
import collections
import json
import os
import re
import urllib.request

from harness import (AccessLog, AgentProcess, DepotTestCase, DpProcess, SiteProcess, free_port, make_tree,
                     site_root_json, wait_until)


class HierarchyTest(DepotTestCase):
    # ------------------------------------------------------------------ helpers

    def top(self, code="TOP", extra=()):
        site = SiteProcess(self.tmp, code)
        self.addCleanup(site.stop)
        if extra:
            site.stop()
            site.start(extra)
        return site

    def child(self, parent, code, all_packages=False, extra=(), add=(), settings=None):
        args = ["child", "add", code] + (["--all-packages"] if all_packages else []) + list(add)
        token = parent.cli(*args)["token"]
        site = SiteProcess(self.tmp, code, init_args=("--parent", parent.url, "--parent-token", token))
        self.addCleanup(site.stop)
        if extra or settings:
            site.stop()
            cfg = os.path.join(site.data, "site.toml")
            with open(cfg) as f:
                text = f.read()
            for key, value in (settings or {}).items():
                text, n = re.subn(rf'^{key} = "[^"]*"', f'{key} = "{value}"', text, flags=re.M)
                assert n == 1, key
            with open(cfg, "w") as f:
                f.write(text)
            site.start(extra)
        return site

    def program(self):
        runs = self.path("runs.log")
        return f"install=echo $DEPOT_PACKAGE-$DEPOT_VERSION >> {runs}"

    def agent(self, site, name):
        a = AgentProcess(site, self.tmp, name, extra=("--poll-interval", "1", "--retry-base", "1s"))
        self.addCleanup(a.stop)
        return a

    def dp(self, site, name, **kw):
        d = DpProcess(site, self.tmp, name, **kw)
        self.addCleanup(d.stop)
        return d

    def active_versions(self, site, package):
        code, out, _ = site.cli("package", "show", package, check=False)
        if code != 0:
            return []
        return sorted(v["version"] for v in out.get("versions", []) if v.get("state") == "active")

    def wait_version(self, site, package, version, timeout=60):
        wait_until(lambda: version in self.active_versions(site, package),
                   f"{package} v{version} active at {site.data}", timeout, interval=0.1)

    # ------------------------------------------------------------------ tests

    def test_three_tiers_deployment_installs_everywhere_and_reports_to_the_top(self):
        top = self.top()
        b = self.child(top, "B", all_packages=True)
        c = self.child(top, "C", all_packages=True)
        d = self.child(b, "D", all_packages=True)
        src = self.path("src")
        make_tree(src, seed=3, big_mib=1)
        top.cli("package", "create", "tools", "--source", src, "--program", self.program())
        top.cli("collection", "create", "linux", "--rule", 'os == "linux"')
        for site in (b, c, d):
            self.wait_version(site, "tools", 1)
        # Each tier has its own DP, distributed to by its own operator.
        dps = {}
        for site, name in ((top, "dp-top"), (b, "dp-b"), (c, "dp-c"), (d, "dp-d")):
            dps[name] = self.dp(site, name)
            site.cli("distribute", "tools", "--to", name)
        for site, name in ((top, "dp-top"), (b, "dp-b"), (c, "dp-c"), (d, "dp-d")):
            dps[name].wait_state("tools", 1)
        agents = [self.agent(site, "pc-" + site.data[-1]) for site in (top, b, c, d)]
        dep = top.cli("deploy", "tools", "--program", "install", "--to", "linux", "--required")
        dep_id = dep["id"]
        # The deployment flows down to every tier with the top's id.
        for site in (b, c, d):
            wait_until(lambda s=site: any(x["id"] == dep_id for x in s.cli("deployment", "list")["deployments"]),
                       "deployment at " + site.data, 30, interval=0.1)
        for a in agents:
            code, err = a.once()
            self.assertEqual(code, 0, err)
            self.assertEqual(a.deployment("tools")["state"], "succeeded", a.status())
        # Results of every tier appear at the top, grouped by site.
        def at_top():
            shown = top.cli("deployment", "show", str(dep_id))
            sites = {r.get("site", "") for r in shown["reports"] if r["state"] == "succeeded"}
            return shown if sites >= {"", "B", "C", "B/D"} else None
        shown = wait_until(at_top, "results of every tier at the top", 30, interval=0.2)
        self.assertEqual(len([r for r in shown["reports"] if r["state"] == "succeeded"]), 4, shown)
        clients = top.cli("client", "list")["clients"]
        self.assertEqual(sorted(c.get("site", "") for c in clients), ["", "B", "B/D", "C"], clients)
        # Each link's health is in /metrics at both ends.
        def metrics(site):
            with urllib.request.urlopen(site.url + "/metrics") as r:
                return r.read().decode()
        self.assertIn('depot_site_child_link_up{child="B",state="active"} 1', metrics(top))
        self.assertIn('depot_site_child_link_up{child="D",state="active"} 1', metrics(b))
        self.assertIn('depot_site_parent_link{value="versions_behind",state="active"} 0', metrics(d))
        self.assertIn('depot_site_dp_probe_attempts{dp="dp-d"} 0', metrics(d))
        # The grandchild's agent pinned the top's root, byte for byte, and the grandchild
        # serves the top's metadata unchanged: a child never re-signs.
        top_root = site_root_json(top, self.path("top-root.json"))
        with open(top_root, "rb") as f, open(os.path.join(agents[3].data, "trusted_root.json"), "rb") as g:
            self.assertEqual(f.read(), g.read())
        with open(site_root_json(d, self.path("d-root.json")), "rb") as f, open(top_root, "rb") as g:
            self.assertEqual(f.read(), g.read())
        # Its timestamp (maybe one refresh behind the top's) is signed by the top's key.
        with urllib.request.urlopen(top.url + "/repo/metadata/timestamp.json") as t, \
                urllib.request.urlopen(d.url + "/repo/metadata/timestamp.json") as g:
            top_key = json.loads(t.read())["signatures"][0]["keyid"]
            self.assertEqual(json.loads(g.read())["signatures"][0]["keyid"], top_key)
        # A child refuses what only the top makes.
        code, _, err = d.cli("package", "create", "x", "--source", src, check=False)
        self.assertNotEqual(code, 0)
        self.assertIn("child site", err)
        # Status messages of the subtree are at the top, by site.
        msgs = top.cli("messages", "--from-site", "B/D", "--limit", "1000")["messages"]
        self.assertTrue(any(m["code"] == 4006 for m in msgs), msgs)

    def test_delete_at_the_top_disappears_from_every_tier(self):
        logs = {code: self.path(code + "-access.log") for code in ("top", "B", "D")}
        top = self.top(extra=("--access-log", logs["top"]))
        b = self.child(top, "B", extra=("--access-log", logs["B"]))
        d = self.child(b, "D", all_packages=True, extra=("--access-log", logs["D"]))
        src = self.path("src")
        make_tree(src, seed=4, big_mib=1)
        top.cli("package", "create", "tools", "--source", src, "--program", self.program())
        top.cli("distribute", "tools", "--to", "child:B")
        self.wait_version(d, "tools", 1)
        dp_d = self.dp(d, "dp-d")
        d.cli("distribute", "tools", "--to", "dp-d")
        dp_d.wait_state("tools", 1)
        top.cli("package", "delete", "tools")
        for site in (b, d):
            wait_until(lambda s=site: s.cli("package", "show", "tools", check=False)[0] != 0 or
                       not self.active_versions(s, "tools"), "tools gone at " + site.data, 30, interval=0.1)
        # The grandchild's DP drops it from its assignment and purges it (its own rules).
        wait_until(lambda: dp_d.record("tools", 1) is None, "the DP's record of tools gone", 30, interval=0.1)
        # Afterwards nobody asks for it: another package goes all the way down (every
        # tier polls, copies and reports again) and no access log names tools.
        marks = {code: AccessLog(path).mark() for code, path in logs.items()}
        other = self.path("other")
        make_tree(other, seed=41, big_mib=1)
        top.cli("package", "create", "other", "--source", other, "--program", self.program())
        top.cli("distribute", "other", "--to", "child:B")
        self.wait_version(d, "other", 1)
        d.cli("distribute", "other", "--to", "dp-d")
        dp_d.wait_state("other", 1)
        for code, path in logs.items():
            asked = [r["target"] for r in AccessLog(path).since(marks[code]) if "tools" in r["target"]]
            self.assertEqual(asked, [], code)

    def test_window_closed_moves_nothing_until_it_opens_then_the_rate_holds(self):
        access = self.path("top-access.log")
        top = self.top(extra=("--access-log", access))
        # A window that is certainly closed now: one minute, twelve hours away.
        import datetime
        now = datetime.datetime.now(datetime.timezone.utc)
        closed = (now + datetime.timedelta(hours=12)).strftime("%H:%M") + "+1m"
        b = self.child(top, "B", all_packages=True, add=("--window", closed))
        src = self.path("src")
        make_tree(src, seed=5, big_mib=1)
        mark = AccessLog(access).mark()
        top.cli("package", "create", "tools", "--source", src, "--program", self.program())
        # The feed and metadata move (the child knows the version) but no chunk does.
        wait_until(lambda: b.cli("status")["hierarchy"]["parent"].get("versions_behind") == 1,
                   "the child sees one version behind", 30, interval=0.1)
        chunk_requests = [r for r in AccessLog(access).since(mark) if "/repo/chunks" in r["target"]]
        self.assertEqual(chunk_requests, [])
        self.assertEqual(self.active_versions(b, "tools"), [])
        # Open it (applies without a restart) with a window that is open now in Kolkata
        # (UTC+05:30) and would be closed read as UTC: the version arrives.
        import zoneinfo
        kolkata = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Kolkata")) - datetime.timedelta(minutes=5)
        top.cli("child", "set", "B", "--window", kolkata.strftime("%H:%M") + "+1h@Asia/Kolkata")
        self.wait_version(b, "tools", 1)

    def test_dp_schedule_window_and_rate_apply_without_restart(self):
        """A DP's link has a schedule too: set at the site, carried in its assignment."""
        import datetime
        import zoneinfo
        from harness import metric
        access = self.path("site-access.log")
        site = self.top(extra=("--access-log", access))
        now = datetime.datetime.now(datetime.timezone.utc)
        closed = (now + datetime.timedelta(hours=12)).strftime("%H:%M") + "+1m"
        dp = self.dp(site, "dp1", add=("--window", closed))
        src = self.path("src")
        os.makedirs(src)
        with open(os.path.join(src, "big.bin"), "wb") as f:
            f.write(os.urandom(12 << 20))
        mark = AccessLog(access).mark()
        site.cli("package", "create", "tools", "--source", src, "--program", self.program())
        site.cli("distribute", "tools", "--to", "dp1")
        # The DP holds the version, knows its window is closed, and copies nothing.
        wait_until(lambda: metric(dp.url, "depot_dp_versions", '{state="pending"}') == 1 and
                   metric(dp.url, "depot_dp_window_open") == 0 and
                   "dp.window_closed" in open(dp.log.name).read(),
                   "the DP waiting for its window", 30, interval=0.1)
        self.assertEqual([r for r in AccessLog(access).since(mark) if "/repo/chunks" in r["target"]], [])
        self.assertEqual(metric(dp.url, "depot_dp_sync_bytes_total"), 0)
        self.assertEqual(site.cli("dp", "show", "dp1")["schedule"]["windows"][0]["duration_s"], 60)
        # Open it at a low rate (both apply at the next poll, no restart), close it
        # mid-copy: the copy pauses, not fails, and resumes where it stopped.
        kolkata = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Kolkata")) - datetime.timedelta(minutes=5)
        site.cli("dp", "set", "dp1", "--max-rate", str(2 << 20),
                 "--window", kolkata.strftime("%H:%M") + "+1h@Asia/Kolkata")
        wait_until(lambda: (dp.record("tools", 1) or {}).get("bytes_done", 0) >= (1 << 20), "copy under way",
                   30, interval=0.05)
        self.assertEqual(metric(dp.url, "depot_dp_max_rate_bytes"), 2 << 20)
        site.cli("dp", "set", "dp1", "--window", closed)
        wait_until(lambda: "dp.sync_paused" in open(dp.log.name).read(), "the copy paused", 30, interval=0.05)
        rec = dp.record("tools", 1)
        self.assertEqual((rec["state"], rec["attempts"]), ("syncing", 0), rec)
        site.cli("dp", "set", "dp1", "--window", "none", "--max-rate", "0")
        dp.wait_state("tools", 1)
        self.assertEqual(dp.record("tools", 1)["attempts"], 0)
        self.assertEqual(metric(dp.url, "depot_dp_max_rate_bytes"), 0)
        # What was verified before the pause was kept: the resumed copy fetched only
        # the rest (the counter counts completed copies).
        fetched = metric(dp.url, "depot_dp_sync_bytes_total")
        self.assertGreater(fetched, 0)
        self.assertLessEqual(fetched, (12 << 20) - (1 << 20), fetched)
        # A bad window is refused, naming the fix; the DP's schedule is unchanged.
        code, _, err = site.cli("dp", "set", "dp1", "--window", "25:00+1h", check=False)
        self.assertNotEqual(code, 0)
        self.assertIn("HH:MM", err)
        code, _, err = site.cli("dp", "set", "nosuch", "--max-rate", "1MiB", check=False)
        self.assertNotEqual(code, 0)
        self.assertIn("dp list", err)

    def test_rate_limit_holds_over_64_mib(self):
        top = self.top()
        rate = 16 << 20
        b = self.child(top, "B", all_packages=True, add=("--max-rate", str(rate)))
        src = self.path("src")
        os.makedirs(src)
        with open(os.path.join(src, "big.bin"), "wb") as f:
            f.write(os.urandom(64 << 20))
        top.cli("package", "create", "tools", "--source", src, "--program", self.program())
        import time
        t0 = time.monotonic()
        self.wait_version(b, "tools", 1, timeout=120)
        took = time.monotonic() - t0
        # 64 MiB at 16 MiB/s: at least 4 s less a quarter-second burst (the limiter's
        # allowance), i.e. the rate held within 10 %.
        self.assertGreaterEqual(took, (64 << 20) / (rate * 1.10), took)

    def test_kill_9_during_sync_and_report_converges(self):
        top = self.top()
        b = self.child(top, "B", all_packages=True, add=("--max-rate", str(8 << 20)))
        src = self.path("src")
        os.makedirs(src)
        with open(os.path.join(src, "big.bin"), "wb") as f:
            f.write(os.urandom(24 << 20))
        top.cli("package", "create", "tools", "--source", src, "--program", self.program())
        top.cli("collection", "create", "linux", "--rule", 'os == "linux"')
        dep = top.cli("deploy", "tools", "--program", "install", "--to", "linux", "--required")["id"]
        # Killed mid-copy (the rate makes it take ~3 s).
        wait_until(lambda: b.cli("status")["hierarchy"]["parent"].get("versions_behind") == 1,
                   "copy under way", 30, interval=0.05)
        b.kill()
        b.start()
        self.wait_version(b, "tools", 1, timeout=120)
        a = self.agent(b, "pc-b")
        code, err = a.once()
        self.assertEqual(code, 0, err)
        # Killed right after the agent's report, before or while it goes up.
        b.kill()
        b.start()
        def reported():
            reps = [r for r in top.cli("deployment", "show", str(dep))["reports"] if r.get("site") == "B"]
            return reps if reps and reps[0]["state"] == "succeeded" else None
        reps = wait_until(reported, "the report at the top", 30, interval=0.2)
        self.assertEqual(len(reps), 1, reps)
        # Nothing lost, nothing counted twice: the top holds exactly the child's own
        # messages, each once, with the child's counts.
        def same_messages():
            at_b = sorted((m["code"], m["text"], m["count"])
                          for m in b.cli("messages", "--from-site", ".", "--limit", "10000")["messages"])
            at_top = sorted((m["code"], m["text"], m["count"])
                            for m in top.cli("messages", "--from-site", "B", "--limit", "10000")["messages"])
            return at_b if at_b == at_top else None
        wait_until(same_messages, "the child's messages at the top, each once", 30, interval=0.2)

    def test_seed_002_dead_dp_under_a_child_costs_nothing_above_it(self):
        """SMS: one unreachable DP made the parent re-send a package to every child
        site each hour. Here a dead DP under child B is B's business alone."""
        access = self.path("top-access.log")
        top = self.top(extra=("--access-log", access))
        # Probes back off fast; the live DP answers them (it listens where it says).
        fast = {"dp_offline_after": "1s", "probe_base": "200ms", "probe_max": "1s", "retry_base": "200ms"}
        b = self.child(top, "B", all_packages=True, settings=fast)
        c = self.child(top, "C", all_packages=True)
        live = self.dp(b, "b-live", port=free_port())
        b.cli("dp", "add", "b-dead", "--url", "http://127.0.0.1:9")  # never runs
        b.cli("distribute", "tools", "--to", "b-live", "b-dead", check=False)
        src = self.path("src")
        make_tree(src, seed=6, big_mib=1)
        top.cli("package", "create", "tools", "--source", src, "--program", self.program())
        b.cli("distribute", "tools", "--to", "b-live", "b-dead")
        for v in range(2, 6):
            with open(os.path.join(src, "version.txt"), "w") as f:
                f.write(f"v{v}\n")
            top.cli("package", "update", "tools", "--source", src, "--program", self.program())
        for v in range(1, 6):
            self.wait_version(c, "tools", v)
            self.wait_version(b, "tools", v)
        for v in (3, 4, 5):  # retention keeps the newest five; older ones may be retiring
            live.wait_state("tools", v)
        # No failed attempt anywhere above the dead DP.
        self.assertEqual([r for r in b.cli("dp", "show", "b-live")["versions"] if r["attempts"] > 0], [])
        for site in (b, c):
            self.assertEqual(site.cli("messages", "--code", "6008")["messages"], [])
        # The top sent each manifest at most once to each child.
        served = collections.Counter(r["target"] for r in AccessLog(access).since(0)
                                     if r["target"].startswith("/repo/targets/"))
        self.assertTrue(served, "no manifest was served")
        self.assertLessEqual(max(served.values()), 2, served)
        # The dead DP is one record with a count, visible at the top.
        def one_record():
            m = top.cli("messages", "--from-site", "B", "--code", "2006")["messages"]
            return m if len(m) == 1 and m[0]["count"] >= 2 else None
        try:
            wait_until(one_record, "one growing 2006 record of the dead DP at the top", 30, interval=0.2)
        except AssertionError:
            raise AssertionError(f"at B: {b.cli('messages', '--code', '2006')['messages']}; at the top: "
                                 f"{top.cli('messages', '--code', '2006')['messages']}") from None

    def test_child_offline_catches_up_with_only_missing_chunks_and_siblings_unaffected(self):
        """A child down while a day's worth of versions is published (more than the top
        keeps): back up, it converges to exactly the top's active versions by itself,
        moving only the chunks it lacks; its sibling is unaffected meanwhile."""
        top = self.top()
        b = self.child(top, "B", all_packages=True)
        c = self.child(top, "C", all_packages=True)
        src = self.path("src")
        make_tree(src, seed=7, big_mib=2)
        top.cli("package", "create", "tools", "--source", src, "--program", self.program())
        self.wait_version(b, "tools", 1)
        self.wait_version(c, "tools", 1)
        b.stop()
        for v in range(2, 9):  # keep_versions is 5: the top retires 1-3 meanwhile
            with open(os.path.join(src, "version.txt"), "w") as f:
                f.write(f"v{v}\n")
            top.cli("package", "update", "tools", "--source", src, "--program", self.program())
            self.wait_version(c, "tools", v)  # the sibling keeps up throughout
        top_active = self.active_versions(top, "tools")
        self.assertEqual(top_active, [4, 5, 6, 7, 8])
        b.start()
        wait_until(lambda: self.active_versions(b, "tools") == top_active, "B converges to the top", 60,
                   interval=0.2)
        self.assertEqual(self.active_versions(c, "tools"), top_active)
        moved = {m["version"]: int(m["params"]["transfer_bytes"])
                 for m in b.cli("messages", "--code", "6006", "--limit", "1000")["messages"]}
        # Version 1 moved the whole tree; each later one only its changed chunks.
        for v in top_active:
            self.assertLess(moved[v], moved[1] / 20, moved)
        self.assertEqual([ch["health"] for ch in top.cli("child", "list")["children"]], ["active", "active"])
