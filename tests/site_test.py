"""Site server tests with real processes: `depot site serve` on loopback with a real
SQLite catalog and content library, the real CLI, and the DP and agent APIs driven
over HTTP exactly as DPs and agents will drive them."""
import calendar
import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest

from harness import (ChangesWhenRead, DEPOT, DepotTestCase, SiteProcess, describe_tree, make_tree, metric, run_depot,
                     wait_until, write)


class SiteTest(DepotTestCase):
    def setUp(self):
        super().setUp()
        self.site = SiteProcess(self.tmp)
        self.addCleanup(self.site.stop)

    def create_package(self, name="tools", src=None, program="install=sh -c true", **kw):
        src = src or self.path("src-" + name)
        if not os.path.exists(src):
            make_tree(src, big_mib=2)
        args = ["package", "create", name, "--source", src]
        if program:
            args += ["--program", program]
        return self.site.cli(*args, **kw)

    def test_create_update_uploads_only_changed_chunks_and_serves_a_verifiable_repository(self):
        src = self.path("src")
        make_tree(src, big_mib=4)
        v1 = self.create_package(src=src)
        self.assertEqual(v1["version"], 1)
        self.assertGreater(v1["uploaded_chunks"], 10)
        with open(os.path.join(src, "src/mod1/file1.txt"), "ab") as f:
            f.write(b"one more line\n")
        v2 = self.site.cli("package", "update", "tools", "--source", src)
        self.assertEqual(v2["version"], 2)
        self.assertEqual(v2["uploaded_chunks"], 1, "only the edited file's chunk is new")
        # Anyone can fetch and verify it from the site's /repo/ with the pinned root.
        status, root, _ = self.site.api("GET", "/repo/metadata/1.root.json")
        self.assertEqual(status, 200)
        trust = self.path("root.json")
        with open(trust, "w") as f:
            import json
            json.dump(root, f)
        # The served root must be byte-exact: fetch raw.
        import urllib.request
        with urllib.request.urlopen(self.site.url + "/repo/metadata/1.root.json") as r, open(trust, "wb") as f:
            f.write(r.read())
        run_depot("repo", "fetch", self.site.url + "/repo", "--package", "tools", "--dest", self.path("out"),
                  "--trust", trust)
        self.assertEqual(describe_tree(src), describe_tree(self.path("out")))
        show = self.site.cli("package", "show", "tools")
        self.assertEqual([v["version"] for v in show["versions"]], [2, 1])

    def test_create_refuses_existing_and_update_refuses_missing(self):
        self.create_package()
        code, out, err = self.create_package(check=False)
        self.assertEqual(code, 1)
        self.assertIn("already exists", err)
        code, out, err = self.site.cli("package", "update", "nope", "--source", self.path("src-tools"), check=False)
        self.assertEqual(code, 1)
        self.assertIn("does not exist", err)
        # Each refusal is a status message (1005) with its reason.
        rejected = self.site.cli("messages", "--code", "1005")["messages"]
        self.assertEqual([m["package"] for m in rejected], ["tools", "nope"])
        self.assertIn("already exists", rejected[0]["params"]["error"])
        self.assertIn("does not exist", rejected[1]["text"])

    def test_update_carries_programs_over_and_refuses_to_orphan_a_deployment(self):
        src = self.path("src")
        make_tree(src, big_mib=1)
        self.site.cli("package", "create", "tools", "--source", src, "--program", "install=sh ./setup.sh",
                      "--timeout", "install=10m", "--reboot-codes", "install=194", "--program", "check=true")
        self.site.cli("collection", "create", "all", "--rule", 'os == "linux"')
        dep = self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")

        def programs():
            status, body, _ = self.site.api("GET", "/api/v1/packages/tools/programs", token=self.site.admin_token)
            self.assertEqual(status, 200, body)
            return {p["name"]: p for p in body["programs"]}, body["version"]

        # No program flag: everything carries over, timeouts and exit codes included.
        v2 = self.site.cli("package", "update", "tools", "--source", src)
        got, version = programs()
        self.assertEqual(version, 2)
        self.assertEqual(sorted(got), ["check", "install"])
        self.assertEqual(got["install"]["command"], "sh ./setup.sh")
        self.assertEqual(got["install"]["timeout_s"], 600)
        self.assertEqual(got["install"]["exit_codes"]["reboot"], [194])
        self.assertEqual(sorted(p["name"] for p in v2["programs"]), ["check", "install"])
        # The human summary names the new version's programs.
        code, out, err = run_depot("package", "update", "tools", "--source", src, check=False,
                                   env=self.site.cli_env())
        self.assertEqual(code, 0, err)
        self.assertIn("install: sh ./setup.sh  (timeout 10m, success 0, reboot 194)", out)

        # --program changes one command and keeps its settings; the other program stays.
        self.site.cli("package", "update", "tools", "--source", src, "--program", "install=sh ./setup.sh --v2")
        got, version = programs()
        self.assertEqual((version, got["install"]["command"], got["install"]["timeout_s"]),
                         (4, "sh ./setup.sh --v2", 600))
        self.assertIn("check", got)

        # Taking away the program deployment `dep` runs is refused, naming it...
        code, out, err = self.site.cli("package", "update", "tools", "--source", src, "--remove-program", "install",
                                       check=False)
        self.assertEqual(code, 1)
        self.assertIn(f"deployment {dep['id']} (program `install`", err)
        self.assertIn("--force", err)
        self.assertEqual(programs()[1], 4, "no version was created")
        # ...unless forced; a deployment pinned to a version, or a program nobody runs, is no obstacle.
        forced = self.site.cli("package", "update", "tools", "--source", src, "--remove-program", "install",
                               "--force")
        self.assertEqual([o["deployment"] for o in forced["orphaned_deployments"]], [dep["id"]])
        self.assertEqual(sorted(programs()[0]), ["check"])
        self.site.cli("package", "update", "tools", "--source", src, "--remove-program", "check", "--program",
                      "install=true", "--force")
        self.assertEqual(sorted(programs()[0]), ["install"])
        # Unknown names are refused before anything is uploaded.
        code, _, err = self.site.cli("package", "update", "tools", "--source", src, "--remove-program", "nope",
                                     check=False)
        self.assertEqual(code, 1)
        self.assertIn("'nope'", err)

    def test_timestamp_lifetime_is_a_site_setting(self):
        self.site.stop()
        cfg = os.path.join(self.site.data, "site.toml")
        text = open(cfg).read()
        self.assertIn('timestamp_lifetime = "7d"', text)
        open(cfg, "w").write(text.replace('timestamp_lifetime = "7d"', 'timestamp_lifetime = "2h"'))
        self.site.start()

        def expires_in():
            _, ts, _ = self.site.api("GET", "/repo/metadata/timestamp.json")
            return calendar.timegm(time.strptime(ts["signed"]["expires"], "%Y-%m-%dT%H:%M:%SZ")) - time.time()
        # Re-signed at start (by the background worker) with the new lifetime.
        left = wait_until(lambda: (lambda s: s if s < 3 * 3600 else None)(expires_in()), "a 2h timestamp")
        self.assertGreater(left, 2 * 3600 - 600)

    def test_global_flags_are_accepted_anywhere_on_the_line(self):
        self.create_package()
        env = self.site.cli_env()
        for args in (["package", "list", "--json"], ["--json", "package", "list"], ["package", "--json", "list"],
                     ["package", "list", "--log-level", "debug", "--json"]):
            code, out, err = run_depot(*args, check=False, env=env)
            self.assertEqual(code, 0, f"{args}: {err}")
            self.assertEqual([p["name"] for p in json.loads(out)["packages"]], ["tools"], args)
        code, _, err = run_depot("package", "list", "--log-level", "loud", check=False, env=env)
        self.assertEqual(code, 2)
        self.assertIn("--log-level", err)
        code, _, err = run_depot("package", "list", "--no-such-flag", check=False, env=env)
        self.assertEqual(code, 2)

    def test_concurrent_updates_get_distinct_versions(self):
        self.create_package()
        srcs = []
        for i in range(3):
            s = self.path(f"src{i}")
            make_tree(s, seed=10 + i, big_mib=1)
            srcs.append(s)
        procs = [subprocess.Popen([os.environ["DEPOT_BIN"], "--json", "package", "update", "tools", "--source", s],
                                  env=self.site.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for s in srcs]
        versions = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            self.assertEqual(p.returncode, 0, err)
            import json
            versions.append(json.loads(out)["version"])
        self.assertEqual(sorted(versions), [2, 3, 4])
        show = self.site.cli("package", "show", "tools")
        self.assertEqual(sorted(v["version"] for v in show["versions"]), [1, 2, 3, 4])

    def test_source_file_changing_during_create_fails_naming_it_and_creates_nothing(self):
        src = self.path("src")
        make_tree(src, big_mib=1)
        path = os.path.join(src, "bin/growing.log")
        write(path, b"x" * (8 << 20))

        def append(f):
            f.seek(0, os.SEEK_END)
            f.write(b"y" * 4096)
        # It grows whenever it is being read.
        with ChangesWhenRead(path, append) as writer:
            code, out, err = self.site.cli("package", "create", "busy", "--source", src, check=False, timeout=300)
        self.assertGreater(writer.changes, 0)
        self.assertNotEqual(code, 0)
        self.assertIn("bin/growing.log", err)
        self.assertEqual(self.site.cli("package", "list")["packages"], [])
        # Once the writer stopped, the same command succeeds.
        self.assertEqual(self.site.cli("package", "create", "busy", "--source", src)["version"], 1)

    def test_sigterm_is_graceful_and_a_restart_loses_nothing(self):
        self.create_package()
        self.assertEqual(self.site.stop(), 0)
        self.site.start()
        show = self.site.cli("package", "show", "tools")
        self.assertEqual(show["versions"][0]["version"], 1)
        v2 = self.site.cli("package", "update", "tools", "--source", self.path("src-tools"))
        self.assertEqual(v2["version"], 2)
        self.assertEqual(v2["uploaded_chunks"], 0)

    def test_kill_during_upload_then_retry_completes(self):
        src = self.path("src")
        make_tree(src, big_mib=24)
        p = subprocess.Popen([os.environ["DEPOT_BIN"], "--json", "package", "create", "big", "--source", src],
                             env=self.site.cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # Kill the site while chunks are flowing in.
        wait_until(lambda: metric(self.site.url, "depot_site_chunks_received_total") > 0, "the first chunks received",
                   interval=0.01)
        self.site.kill()
        p.communicate(timeout=120)
        self.assertNotEqual(p.returncode, 0)
        self.site.start()
        self.assertEqual(self.site.cli("package", "list")["packages"], [])
        out = self.site.cli("package", "create", "big", "--source", src)
        self.assertEqual(out["version"], 1)
        run_depot("repo", "verify", self.site.data + "/library")

    def test_delete_removes_package_from_signed_targets_assignments_and_policies(self):
        self.create_package()
        dp = self.site.cli("dp", "add", "dp1", "--url", "http://127.0.0.1:9")
        self.site.cli("distribute", "tools", "--to", "dp1")
        _, a, _ = self.site.api("GET", "/api/v1/dp/assignment", token=dp["token"])
        self.assertEqual(len(a["versions"]), 1)
        enroll = self.site.cli("token", "create", "--role", "enroll", "--uses", "1")
        status, client, _ = self.site.api("POST", "/api/v1/agent/enroll", token=enroll["token"],
                                          body={"name": "pc1", "attributes": {"os": "linux"}})
        self.assertEqual(status, 201)
        self.site.cli("collection", "create", "linux", "--rule", 'os == "linux"')
        self.site.cli("deploy", "tools", "--program", "install", "--to", "linux", "--required")
        _, policy, _ = self.site.api("GET", "/api/v1/agent/policy", token=client["token"])
        self.assertEqual(len(policy["deployments"]), 1)
        out = self.site.cli("package", "delete", "tools")
        self.assertEqual(out["versions_retired"], 1)
        _, a, _ = self.site.api("GET", "/api/v1/dp/assignment", token=dp["token"])
        self.assertEqual(a["versions"], [])
        _, policy, _ = self.site.api("GET", "/api/v1/agent/policy", token=client["token"])
        self.assertEqual(policy["deployments"], [])
        code, _, err = run_depot("repo", "fetch", self.site.url + "/repo", "--package", "tools", "--dest",
                                 self.path("out"), "--trust", self.site.data + "/library/repo/metadata/1.root.json",
                                 check=False)
        self.assertNotEqual(code, 0)
        msgs = self.site.cli("messages", "--package", "tools")["messages"]
        self.assertIn(1002, [m["code"] for m in msgs])

    def test_dp_assignment_long_poll_reports_backoff_and_one_message_per_failing_record(self):
        self.create_package()
        dp = self.site.cli("dp", "add", "dp1", "--url", "http://127.0.0.1:9", "--group", "eu")
        self.site.cli("dp", "add", "dp2", "--url", "http://127.0.0.1:9", "--group", "eu")
        self.site.cli("distribute", "tools", "--to", "eu")
        status, a, h = self.site.api("GET", "/api/v1/dp/assignment", token=dp["token"])
        self.assertEqual(status, 200)
        self.assertEqual(a["versions"][0]["state"], "pending")
        etag = h["etag"]
        # Nothing changes: the long poll ends with 304. (That it is parked for `wait`
        # seconds is site_test.cc's AssignmentLongPoll..., on the handler itself.)
        status, _, _ = self.site.api("GET", "/api/v1/dp/assignment?wait=1", token=dp["token"],
                                     headers={"If-None-Match": etag})
        self.assertEqual(status, 304)
        # A new version wakes a parked poll: one that would otherwise end with 304 after
        # 120 s answers 200 with the new version.
        connections = "depot_site_http_connections"
        wait_until(lambda: metric(self.site.url, connections) == 1, "only the /metrics request connected")
        result = {}

        def poll():
            result["r"] = self.site.api("GET", "/api/v1/dp/assignment?wait=120", token=dp["token"],
                                        headers={"If-None-Match": etag}, timeout=180)
        t = threading.Thread(target=poll)
        t.start()
        wait_until(lambda: metric(self.site.url, connections) == 2, "the long poll at the site")
        with open(self.path("src-tools/new.txt"), "w") as f:
            f.write("v2")
        self.site.cli("package", "update", "tools", "--source", self.path("src-tools"))
        t.join(180)
        self.assertFalse(t.is_alive())
        status, a, h = result["r"]
        self.assertEqual(status, 200)
        self.assertEqual([v["version"] for v in a["versions"]], [1, 2])
        # Failures back off per record and are one message whose count grows.
        for i in range(3):
            status, r, _ = self.site.api("POST", "/api/v1/dp/report", token=dp["token"], body={"versions": [
                {"package": "tools", "version": 1, "state": "failed", "error": "upstream timed out"}]})
            self.assertEqual(status, 200, r)
        show = self.site.cli("dp", "show", "dp1")
        rec = [v for v in show["versions"] if v["version"] == 1][0]
        self.assertEqual(rec["state"], "failed")
        self.assertEqual(rec["attempts"], 3)
        other = self.site.cli("dp", "show", "dp2")
        self.assertTrue(all(v["state"] == "pending" and v["attempts"] == 0 for v in other["versions"]),
                        "no other DP's records change")
        msgs = [m for m in self.site.cli("messages", "--code", "2005")["messages"]]
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0]["count"], 3)
        _, a, _ = self.site.api("GET", "/api/v1/dp/assignment", token=dp["token"])
        v1 = [v for v in a["versions"] if v["version"] == 1][0]
        self.assertIn("retry_at_ms", v1)
        status, _, _ = self.site.api("POST", "/api/v1/dp/report", token=dp["token"], body={"versions": [
            {"package": "tools", "version": 1, "state": "ready", "bytes_done": 10, "bytes_total": 10}]})
        self.assertEqual(self.site.cli("dp", "show", "dp1")["versions"][0]["state"], "ready")
        # Removing a DP cancels its work and its credential at once.
        self.site.cli("dp", "remove", "dp1")
        status, _, _ = self.site.api("GET", "/api/v1/dp/assignment", token=dp["token"])
        self.assertEqual(status, 401)

    def test_unreachable_dp_is_probed_with_backoff_that_touches_nothing_else(self):
        # Compressed time: a DP counts as silent after 5 s, probes back off from 200 ms.
        # (5 s, not less: `alive` must poll within it of being added, and under the ASan
        # build on a loaded machine the CLI round trips alone took over 2 s.)
        # (When each probe is due -- the backoff itself -- is schedule_test.cc's, on a
        # manual clock.)
        self.site.stop()
        cfg = os.path.join(self.site.data, "site.toml")
        text = open(cfg).read()
        text = text.replace('dp_offline_after = "5m"', 'dp_offline_after = "5s"')
        text = text.replace('probe_base = "1m"', 'probe_base = "200ms"')
        open(cfg, "w").write(text)
        self.site.start()
        self.site.cli("dp", "add", "dead", "--url", "http://127.0.0.1:9")
        alive = self.site.cli("dp", "add", "alive", "--url", "http://127.0.0.1:9")
        stop = threading.Event()

        def keep_polling():
            # As a DP does: one long poll (here of 1 s) after the other.
            etag = ""
            while not stop.is_set():
                _, _, h = self.site.api("GET", "/api/v1/dp/assignment?wait=1", token=alive["token"],
                                        headers={"If-None-Match": etag})
                etag = h.get("etag", etag)
        dps = lambda: {d["name"]: d for d in self.site.cli("dp", "list")["dps"]}
        t = threading.Thread(target=keep_polling)
        t.start()
        try:
            # Two probe passes found the dead DP silent; `alive`, as old, was there for both.
            wait_until(lambda: dps()["dead"]["probe_attempts"] >= 2, "a second probe of the dead DP", interval=0.2)
        finally:
            stop.set()
            t.join()
        now = dps()
        attempts = now["dead"]["probe_attempts"]
        self.assertEqual(now["alive"]["probe_attempts"], 0)
        msgs = self.site.cli("messages", "--code", "2006")["messages"]
        self.assertEqual([m["dp"] for m in msgs], ["dead"], "one record for the dead DP, its count grows")
        self.assertIn("DP dead has never polled its assignment and does not answer", msgs[0]["text"])
        # The prober goes on: a probe may land between reading the DP and its record.
        attempts_after = dps()["dead"]["probe_attempts"]
        self.assertTrue(attempts <= msgs[0]["count"] <= attempts_after, (msgs[0], attempts, attempts_after))

    def test_enrollment_rules_deployments_and_policy_etag(self):
        self.create_package()
        # Boundaries match the address the site sees (127.0.0.1 here), not the ones an
        # agent claims for itself (`ips`): "claimed" holds only pc1's claimed address.
        dp_near = self.site.cli("dp", "add", "near", "--url", "http://127.0.0.1:9", "--boundary", "127.0.0.0/8")
        dp_claimed = self.site.cli("dp", "add", "claimed", "--url", "http://127.0.0.1:9", "--boundary", "10.1.0.0/16")
        dp_far = self.site.cli("dp", "add", "far", "--url", "http://127.0.0.1:9")
        self.site.cli("distribute", "tools", "--to", "near", "claimed", "far")
        for dp in (dp_near, dp_claimed, dp_far):
            self.site.api("POST", "/api/v1/dp/report", token=dp["token"],
                          body={"versions": [{"package": "tools", "version": 1, "state": "ready"}]})
        enroll = self.site.cli("token", "create", "--role", "enroll", "--uses", "2")
        _, c1, _ = self.site.api("POST", "/api/v1/agent/enroll", token=enroll["token"], body={
            "name": "pc1", "attributes": {"os": "linux", "ips": ["10.1.2.3"], "tags": {"site": "berlin"}}})
        _, c2, _ = self.site.api("POST", "/api/v1/agent/enroll", token=enroll["token"], body={
            "name": "pc2", "attributes": {"os": "windows", "ips": ["192.168.1.2"]}})
        self.assertIn("trusted_root", c1)
        col = self.site.cli("collection", "create", "berlin-linux", "--rule", 'os == "linux" and tag.site == "berlin"')
        self.assertEqual(col["members"], 1)
        dep = self.site.cli("deploy", "tools", "--program", "install", "--to", "berlin-linux", "--required",
                            "--deadline", "+2h", "--window", "22:00+4h@Europe/Berlin")
        status, p1, h = self.site.api("GET", "/api/v1/agent/policy", token=c1["token"])
        self.assertEqual(status, 200)
        d = p1["deployments"][0]
        self.assertEqual((d["package"], d["version"], d["program"], d["kind"]), ("tools", 1, "install", "required"))
        self.assertEqual([s["name"] for s in d["sources"]], ["near", "claimed", "far", "TST"],
                         "boundary DP, other DPs, site")
        self.assertEqual([s["in_boundary"] for s in d["sources"]], [True, False, False, False])
        self.assertEqual(d["windows"][0]["tz"], "Europe/Berlin")
        status, _, _ = self.site.api("GET", "/api/v1/agent/policy", token=c1["token"], headers={"If-None-Match": h["etag"]})
        self.assertEqual(status, 304)
        _, p2, _ = self.site.api("GET", "/api/v1/agent/policy", token=c2["token"])
        self.assertEqual(p2["deployments"], [])
        # A client whose attributes change leaves the rule collection, and its policy follows.
        status, _, _ = self.site.api("POST", "/api/v1/agent/attributes", token=c1["token"],
                                     body={"attributes": {"os": "linux", "ips": ["10.1.2.3"], "tags": {"site": "paris"}}})
        self.assertEqual(status, 200)
        status, p1, _ = self.site.api("GET", "/api/v1/agent/policy", token=c1["token"], headers={"If-None-Match": h["etag"]})
        self.assertEqual(status, 200)
        self.assertEqual(p1["deployments"], [])
        # An agent sees only its own policy: there is no way to ask for another's.
        status, _, _ = self.site.api("GET", "/api/v1/clients", token=c1["token"])
        self.assertEqual(status, 403)
        # Status reports are deduplicated by sequence number and counted per deployment.
        self.site.cli("collection", "set-rule", "berlin-linux", 'os == "linux"')
        body = {"messages": [{"seq": 1, "code": 4006, "package": "tools", "version": 1, "deployment": dep["id"],
                              "params": {"exit_code": "0"}}],
                "deployments": [{"deployment": dep["id"], "seq": 5, "state": "succeeded", "version": 1, "exit_code": 0}]}
        status, r, _ = self.site.api("POST", "/api/v1/agent/status", token=c1["token"], body=body)
        self.assertEqual(status, 200, r)
        status, r, _ = self.site.api("POST", "/api/v1/agent/status", token=c1["token"], body=body)
        self.assertEqual(r["messages"]["duplicates"], 1)
        self.assertEqual(r["deployments"]["stale"], 1)
        # A client the deployment does not target cannot report on it (answered, dropped).
        status, r, _ = self.site.api("POST", "/api/v1/agent/status", token=c2["token"], body={
            "deployments": [{"deployment": dep["id"], "seq": 1, "state": "failed", "version": 1, "exit_code": 1}]})
        self.assertEqual(status, 200, r)
        self.assertEqual(r["deployments"], {"applied": 0, "stale": 0, "not_targeted": 1})
        show = self.site.cli("deployment", "show", str(dep["id"]))
        self.assertEqual(show["clients"]["succeeded"], 1)
        self.assertEqual(show["clients"]["targeted"], 1)
        self.assertEqual(len(self.site.cli("messages", "--code", "4006")["messages"]), 1)
        status = self.site.cli("status")
        self.assertEqual(status["deployments"][0]["clients"]["succeeded"], 1)
        # Agents may not post another component's messages.
        status, r, _ = self.site.api("POST", "/api/v1/agent/status", token=c1["token"],
                                     body={"messages": [{"seq": 9, "code": 2004}]})
        self.assertEqual(status, 400)

    def test_messages_dated_ahead_of_the_site_are_marked_and_found_by_client_name(self):
        enroll = self.site.cli("token", "create", "--role", "enroll", "--uses", "2")
        _, pc, _ = self.site.api("POST", "/api/v1/agent/enroll", token=enroll["token"],
                                 body={"name": "pc-ahead", "attributes": {"os": "linux"}})
        now_ms = int(time.time() * 1000)
        week = 8 * 86400 * 1000
        body = {"messages": [{"seq": 1, "code": 4001, "time_ms": now_ms + week, "package": "tools", "version": 1},
                             {"seq": 2, "code": 4001, "time_ms": now_ms, "package": "tools", "version": 1}]}
        status, r, _ = self.site.api("POST", "/api/v1/agent/status", token=pc["token"], body=body)
        self.assertEqual(status, 200, r)
        # By name, as `client show` takes it.
        got = self.site.cli("messages", "--client", "pc-ahead", "--code", "4001")["messages"]
        self.assertEqual(len(got), 2)
        ahead = [m for m in got if "reported_time" in m["params"]]
        self.assertEqual(len(ahead), 1, got)
        self.assertIn(ahead[0]["params"]["clock_ahead"][:3], ("7d ", "8d "))
        # Dated when it arrived, not a week from now.
        arrived = time.strptime(ahead[0]["time"], "%Y-%m-%dT%H:%M:%SZ")
        self.assertLess(abs(calendar.timegm(arrived) * 1000 - now_ms), 3600 * 1000)
        warn = self.site.cli("messages", "--code", "5009")["messages"]
        self.assertEqual(len(warn), 1)
        self.assertIn("client " + pc["client"], warn[0]["text"])
        self.assertEqual(warn[0]["client"], pc["client"])
        # An unknown name is an error that says so, not an empty list.
        code, _, err = self.site.cli("messages", "--client", "nobody", check=False)
        self.assertEqual(code, 1)
        self.assertIn("no client with id or name `nobody`", err)

    def test_status_counts_every_silent_client_and_names_the_longest_silent(self):
        self.site.stop()
        cfg = os.path.join(self.site.data, "site.toml")
        with open(cfg) as f:
            text = f.read()
        self.assertIn('\noffline_after = "', text)
        with open(cfg, "w") as f:
            # Long enough that a client which just polled is still "seen" by the next
            # status call even under ASan on a loaded machine.
            f.write(re.sub(r'\noffline_after = "[^"]*"', '\noffline_after = "5s"', text))
        self.site.start()
        enroll = self.site.cli("token", "create", "--role", "enroll", "--uses", "104")
        tokens = {}
        for i in range(104):
            status, c, _ = self.site.api("POST", "/api/v1/agent/enroll", token=enroll["token"],
                                         body={"name": f"pc{i:03d}", "attributes": {"os": "linux"}})
            self.assertEqual(status, 201, c)
            tokens[f"pc{i:03d}"] = c["token"]
        wait_until(lambda: self.site.cli("status")["clients"]["offline"] == 104, "all 104 silent for 5 s",
                   interval=0.2)

        def check_in():  # pc103 checks in again: only the other 103 are silent
            status, _, _ = self.site.api("GET", "/api/v1/agent/policy", token=tokens["pc103"])
            self.assertEqual(status, 200)
        check_in()
        st = self.site.cli("status")
        self.assertEqual(st["clients"]["total"], 104)
        self.assertEqual(st["clients"]["offline"], 103)
        names = [c["name"] for c in st["clients"]["offline_list"]]
        self.assertEqual(len(names), 100)
        self.assertNotIn("pc103", names)
        check_in()
        code, out, err = run_depot("status", check=False, env=self.site.cli_env())
        self.assertEqual(code, 0, err)
        self.assertIn("104 enrolled, 103 not seen recently", out)
        self.assertIn("... 3 more", out)

    def test_retention_keeps_newest_and_pinned_versions(self):
        self.site.stop()
        cfg = os.path.join(self.site.data, "site.toml")
        text = open(cfg).read().replace("keep_versions = 5", "keep_versions = 2")
        open(cfg, "w").write(text)
        self.site.start()
        src = self.path("src")
        make_tree(src, big_mib=1)
        self.create_package(src=src)
        self.site.cli("collection", "create", "all", "--rule", 'os != "none"')
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--version", "1")
        for i in range(3):
            with open(os.path.join(src, "v.txt"), "w") as f:
                f.write(str(i))
            self.site.cli("package", "update", "tools", "--source", src)
        states = {v["version"]: v["state"] for v in self.site.cli("package", "show", "tools")["versions"]}
        self.assertEqual(states, {1: "active", 2: "retired", 3: "active", 4: "active"})

    def test_deleted_content_is_collected_after_the_grace_period_and_shared_chunks_stay(self):
        self.site.stop()
        cfg = os.path.join(self.site.data, "site.toml")
        import re
        text = re.sub(r'gc_grace = "[^"]*"', 'gc_grace = "2s"', open(cfg).read())
        open(cfg, "w").write(text)
        self.site.start()
        a, b = self.path("a"), self.path("b")
        make_tree(a, seed=1, big_mib=2)
        make_tree(b, seed=1, big_mib=2)
        write(os.path.join(a, "only-a.bin"), os.urandom(300000))
        self.create_package("pa", src=a)
        self.create_package("pb", src=b)
        chunks_dir = os.path.join(self.site.data, "library/repo/chunks")
        count = lambda: sum(len(fs) for _, _, fs in os.walk(chunks_dir))
        before = count()
        self.site.cli("package", "delete", "pa")
        # Not at the deletion; not before the grace period is over either, which is
        # schedule_test.cc's (on a manual clock).
        self.assertEqual(count(), before, "nothing is collected at the deletion")
        msgs = wait_until(lambda: self.site.cli("messages", "--code", "1004")["messages"],
                          "the collection report (1004)", timeout=30, interval=0.2)
        self.assertEqual(len(msgs), 1)
        self.assertLess(count(), before)
        # pb shares every chunk but only-a.bin's: it stays intact and fetchable.
        run_depot("repo", "verify", self.site.data + "/library")
        run_depot("repo", "fetch", self.site.url + "/repo", "--package", "pb", "--dest", self.path("out"),
                  "--trust", self.site.data + "/library/repo/metadata/1.root.json")
        self.assertEqual(describe_tree(b), describe_tree(self.path("out")))

    def test_tls_with_a_private_ca(self):
        site = SiteProcess(self.tmp, code="SEC", init_args=["--make-ca"])
        self.addCleanup(site.stop)
        self.assertTrue(site.url.startswith("https://"))
        # The CA key signed the site's certificate and was never written down.
        self.assertEqual(sorted(os.listdir(os.path.join(site.data, "tls"))), ["ca.pem", "site.key", "site.pem"])
        # An agent given the CA as a relative path keeps trusting it when started elsewhere.
        rel = os.path.relpath(site.ca, self.tmp)
        token = site.cli("token", "create", "--role", "enroll", "--uses", "1")["token"]
        data = self.path("agent-rel")
        p = subprocess.run([DEPOT, "agent", "run", "--once", "--data", data, "--site", site.url,
                            "--enroll-token", token, "--name", "relca", "--ca", rel],
                           cwd=self.tmp, capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 4, p.stderr)  # enrolled, reached the site: nothing to do
        with open(os.path.join(data, "agent.json")) as f:
            self.assertEqual(json.load(f)["ca"], site.ca)
        p = subprocess.run([DEPOT, "agent", "run", "--once", "--data", data], cwd="/",
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 4, p.stderr)
        self.assertEqual(site.cli("package", "list")["packages"], [])
        env = site.cli_env()
        del env["DEPOT_CA"]
        code, _, err = run_depot("package", "list", check=False, env=env)
        self.assertNotEqual(code, 0)
        self.assertIn("certificate", err.lower())


if __name__ == "__main__":
    unittest.main()
