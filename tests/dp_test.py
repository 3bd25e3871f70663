"""Distribution point tests with real processes: a site, one or more `depot dp serve`,
nginx, and a fault-injecting upstream, all on loopback."""
import hashlib
import http.client
import os
import signal
import subprocess
import sys
import unittest
import urllib.parse

from harness import (AccessLog, DepotTestCase, describe_tree, DpProcess, free_port, HERE, make_tree, Nginx,
                     run_depot, site_root_json, site_with, site_with_fast_retries, wait_until, write)


def http_get(url, path, headers=None, method="GET"):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.request(method, path, headers=headers or {})
    r = conn.getresponse()
    body = r.read()
    h = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, body, h


class DpTest(DepotTestCase):
    def setUp(self):
        super().setUp()
        self.site = site_with_fast_retries(self.tmp)
        self.addCleanup(self.site.stop)
        self.trust = site_root_json(self.site, self.path("root.json"))

    def dp(self, name, **kw):
        d = DpProcess(self.site, self.tmp, name, **kw)
        self.addCleanup(d.stop)
        return d

    def package(self, name="tools", big_mib=2, seed=1, program="install=sh -c true"):
        src = self.path("src-" + name)
        make_tree(src, seed=seed, big_mib=big_mib)
        out = self.site.cli("package", "create", name, "--source", src, "--program", program)
        return src, out

    def fetch(self, url, package, dest, **kw):
        return run_depot("repo", "fetch", url + "/repo", "--package", package, "--dest", dest, "--trust",
                         self.trust, **kw)

    def test_sync_publish_and_serve_byte_for_byte_also_through_nginx(self):
        src, _ = self.package()
        dp = self.dp("dp1")
        self.site.cli("distribute", "tools", "--to", "dp1")
        rec = dp.wait_state("tools", 1)
        self.assertEqual(rec["bytes_done"], rec["bytes_total"])
        self.fetch(dp.url, "tools", self.path("out"))
        self.assertEqual(describe_tree(src), describe_tree(self.path("out")))
        # What it served stays open for the next requests, and /metrics says how much.
        metrics = http_get(dp.url, "/metrics")[1].decode()
        kept = [l for l in metrics.splitlines() if l.startswith("depot_dp_kept_open_files ")]
        self.assertEqual(len(kept), 1, metrics)
        self.assertGreater(float(kept[0].split()[1]), 0)
        # The DP's directory is its URL layout: a plain nginx can serve it.
        ngx = Nginx(os.path.join(dp.data), self.tmp)
        self.addCleanup(ngx.stop)
        self.fetch(ngx.url, "tools", self.path("out-nginx"))
        self.assertEqual(describe_tree(src), describe_tree(self.path("out-nginx")))
        msgs = self.site.cli("messages", "--dp", "dp1")["messages"]
        self.assertIn(3001, [m["code"] for m in msgs])
        self.assertIn(2004, [m["code"] for m in msgs])

    def test_an_idle_long_poll_ending_unchanged_is_not_a_failure(self):
        # Long polls of 1 s that end with 304 (nothing changed) must not put the DP into
        # a failure backoff (here 60 s): a package assigned after a few of them arrives
        # within the next poll.
        access = AccessLog(self.path("site-access.log"))
        self.site.stop()
        self.site.start(("--access-log", access.path))
        dp = self.dp("idle", extra=("--poll-wait", "1s", "--retry-base", "60s"))
        # Three of its long polls have ended unchanged (304) at the site.
        wait_until(lambda: len([r for r in access.since() if r["target"].startswith("/api/v1/dp/assignment")
                                and r["status"] == 304]) >= 3, "three idle long polls answered 304")
        self.package()
        self.site.cli("distribute", "tools", "--to", "idle")
        dp.wait_state("tools", 1, timeout=20)
        with open(dp.log.name) as f:
            self.assertNotIn("assignment_failed", f.read())

    def test_range_requests_head_and_404(self):
        self.package()
        dp = self.dp("dp1")
        self.site.cli("distribute", "tools", "--to", "dp1")
        dp.wait_state("tools", 1)
        chunks = []
        for d, _, fs in os.walk(os.path.join(dp.data, "repo/chunks")):
            chunks += [os.path.join(d, f) for f in fs if not f.startswith(".")]
        path = max(chunks, key=os.path.getsize)
        body = open(path, "rb").read()
        n = len(body)
        rel = "/repo/chunks/" + os.path.relpath(path, os.path.join(dp.data, "repo/chunks"))
        st, b, h = http_get(dp.url, rel)
        self.assertEqual((st, b), (200, body))
        self.assertIn("immutable", h["cache-control"])
        st, b, h = http_get(dp.url, rel, {"Range": "bytes=0-0"})
        self.assertEqual((st, b, h["content-range"]), (206, body[:1], f"bytes 0-0/{n}"))
        st, b, _ = http_get(dp.url, rel, {"Range": f"bytes={n - 1}-{n - 1}"})
        self.assertEqual((st, b), (206, body[-1:]))
        st, b, _ = http_get(dp.url, rel, {"Range": "bytes=100-199"})
        self.assertEqual((st, b), (206, body[100:200]))
        st, b, _ = http_get(dp.url, rel, {"Range": "bytes=100-"})
        self.assertEqual((st, b), (206, body[100:]))
        st, b, _ = http_get(dp.url, rel, {"Range": "bytes=-10"})
        self.assertEqual((st, b), (206, body[-10:]))
        st, _, h = http_get(dp.url, rel, {"Range": f"bytes={n}-"})
        self.assertEqual(st, 416)
        self.assertEqual(h["content-range"], f"bytes */{n}")
        st, b, h = http_get(dp.url, rel, method="HEAD")
        self.assertEqual((st, b, h["content-length"]), (200, b"", str(n)))
        st, _, _ = http_get(dp.url, "/repo/chunks/00/" + "0" * 64)
        self.assertEqual(st, 404)
        st, _, _ = http_get(dp.url, "/repo/../state/state.db")
        self.assertEqual(st, 404)

    def test_sync_completes_while_a_reader_holds_the_old_version_open(self):
        src, _ = self.package()
        dp = self.dp("dp1")
        self.site.cli("distribute", "tools", "--to", "dp1")
        dp.wait_state("tools", 1)
        held = []
        for d, _, fs in os.walk(os.path.join(dp.data, "repo")):
            for f in fs:
                p = os.path.join(d, f)
                fh = open(p, "rb")
                held.append((p, fh, hashlib.sha256(open(p, "rb").read()).hexdigest()))
        self.addCleanup(lambda: [h[1].close() for h in held])
        with open(os.path.join(src, "src/mod0/file0.txt"), "ab") as f:
            f.write(b"version two\n")
        self.site.cli("package", "update", "tools", "--source", src)
        dp.wait_state("tools", 2)
        for p, fh, digest in held:
            if p.endswith("timestamp.json") or p.endswith("/root.json"):
                continue  # the two mutable names: replaced atomically, never rewritten
            self.assertEqual(hashlib.sha256(fh.read()).hexdigest(), digest, p + " was rewritten in place")
        self.fetch(dp.url, "tools", self.path("out"))
        self.assertEqual(describe_tree(src), describe_tree(self.path("out")))

    def site_bytes_sent(self):
        _, m, _ = self.site.api("GET", "/metrics")
        for line in m.decode().splitlines():
            if line.startswith("depot_site_http_response_bytes_total"):
                return int(float(line.split()[1]))
        return 0

    def test_kill_during_sync_then_restart_completes_without_refetching(self):
        src = self.path("src-big")
        write(os.path.join(src, "blob.bin"), os.urandom(24 << 20))
        self.site.cli("package", "create", "big", "--source", src)
        compressed = sum(os.path.getsize(os.path.join(d, f))
                         for d, _, fs in os.walk(os.path.join(self.site.data, "library/repo/chunks")) for f in fs)
        before = self.site_bytes_sent()
        # 8 MB/s: the 24 MiB copy takes ~3 s, long enough to kill it in the middle.
        dp = self.dp("dp1", extra=["--max-sync-rate", str(8 << 20), "--parallel", "4"])
        self.site.cli("distribute", "big", "--to", "dp1")
        # Kill it once a third of the copy has been reported.
        wait_until(lambda: (r := dp.record("big", 1)) and r["state"] == "syncing" and r["bytes_done"] > (8 << 20),
                   "8 MiB of the copy reported")
        dp.kill()
        dp.restart(extra=["--max-sync-rate", "0"])
        dp.wait_state("big", 1)
        fetched = self.site_bytes_sent() - before
        # At most what was in flight or not yet committed at the kill is fetched twice:
        # 4 chunk batches of <= 1 MiB (docs/api.md) plus one 4 MiB commit window, plus
        # metadata.
        slack = 4 * (1 << 20) + (4 << 20) + (512 << 10)
        self.assertLessEqual(fetched, compressed + slack, f"fetched {fetched} for {compressed} bytes of chunks")
        self.fetch(dp.url, "big", self.path("out"))
        self.assertEqual(describe_tree(src), describe_tree(self.path("out")))

    def fault_upstream(self, mode):
        port = free_port()
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "fault_server.py"),
                              os.path.join(self.site.data, "library"), str(port), mode],
                             stdout=subprocess.PIPE, text=True)
        self.addCleanup(p.kill)
        self.assertEqual(p.stdout.readline().strip(), "ready")
        return p, f"http://127.0.0.1:{port}"

    def test_corrupt_upstream_is_rejected_retried_reported_and_nothing_corrupt_is_stored(self):
        self.package()
        _, url = self.fault_upstream("corrupt-first")
        dp = self.dp("dp1", extra=["--upstream", url, "--retry-base", "200ms"])
        self.site.cli("distribute", "tools", "--to", "dp1")
        dp.wait_state("tools", 1, timeout=90)
        msgs = self.site.cli("messages", "--code", "3002")["messages"]
        self.assertGreater(len(msgs), 0, "each rejected object is reported")
        self.assertIn(url, msgs[0]["text"])
        code, _, err = run_depot("dp", "verify", "--data", dp.data, check=False)
        self.assertEqual(code, 0, err)

    def test_truncating_upstream_fails_with_backoff_then_recovers(self):
        self.package()
        p, url = self.fault_upstream("truncate")
        port = int(url.rsplit(":", 1)[1])
        dp = self.dp("dp1", extra=["--upstream", url, "--retry-base", "200ms"])
        self.site.cli("distribute", "tools", "--to", "dp1")
        rec = dp.wait_state("tools", 1, state="failed", timeout=90)
        self.assertGreaterEqual(rec["attempts"], 1)
        self.assertIn("next_retry", rec)
        msgs = self.site.cli("messages", "--code", "2005")["messages"]
        self.assertEqual(len(msgs), 1, "one message per failing record")
        p.kill()
        p.wait()
        ok = subprocess.Popen([sys.executable, os.path.join(HERE, "fault_server.py"),
                               os.path.join(self.site.data, "library"), str(port), "ok"], stdout=subprocess.PIPE, text=True)
        self.addCleanup(ok.kill)
        self.assertEqual(ok.stdout.readline().strip(), "ready")
        dp.wait_state("tools", 1, timeout=120)
        run_depot("dp", "verify", "--data", dp.data)

    def corrupt_one_chunk(self, dp):
        chunks = []
        for d, _, fs in os.walk(os.path.join(dp.data, "repo/chunks")):
            chunks += [os.path.join(d, f) for f in fs if not f.startswith(".")]
        victim = max(chunks, key=os.path.getsize)
        data = bytearray(open(victim, "rb").read())
        data[len(data) // 2] ^= 0xFF
        open(victim, "wb").write(bytes(data))
        return victim

    def test_verify_and_scrub_find_damage_repair_it_and_report_both(self):
        src, _ = self.package()
        dp = self.dp("dp1")
        self.site.cli("distribute", "tools", "--to", "dp1")
        dp.wait_state("tools", 1)
        dp.stop()
        victim = self.corrupt_one_chunk(dp)
        code, out, _ = run_depot("dp", "verify", "--data", dp.data, "--repair", json_out=True, check=False)
        self.assertEqual(code, 3)
        self.assertEqual(len(out["damage"]), 1)
        self.assertTrue(out["damage"][0]["repaired"])
        run_depot("dp", "verify", "--data", dp.data)
        codes = [m["code"] for m in self.site.cli("messages", "--dp", "dp1")["messages"]]
        self.assertIn(3003, codes)
        self.assertIn(3004, codes)
        # The scheduled scrub does the same on its own.
        dp.restart(extra=["--scrub-every", "1s"])
        victim = self.corrupt_one_chunk(dp)
        wait_until(lambda: len(self.site.cli("messages", "--code", "3004")["messages"]) >= 2,
                   "a second repair report (3004), from the scheduled scrub", timeout=30)
        self.fetch(dp.url, "tools", self.path("out"))
        self.assertEqual(describe_tree(src), describe_tree(self.path("out")))

    def test_the_first_scrub_pass_comes_soon_after_start_and_is_reported(self):
        self.package()
        dp = self.dp("dp1", extra=["--scrub-start", "1s"])
        self.site.cli("distribute", "tools", "--to", "dp1")
        dp.wait_state("tools", 1)
        dp.stop()
        self.corrupt_one_chunk(dp)
        before = len(self.site.cli("messages", "--dp", "dp1", "--code", "3008")["messages"])
        dp.restart()  # scrub_start is kept in dp.toml; scrub_every stays 24h
        passes = wait_until(lambda: self.site.cli("messages", "--dp", "dp1", "--code", "3008")["messages"][before:],
                            "a scrub pass report (3008) after the restart")
        p = passes[0]["params"]
        self.assertGreater(int(p["chunks"]), 0)
        self.assertEqual((p["damaged"], p["repaired"]), ("1", "1"), p)
        metrics = http_get(dp.url, "/metrics")[1].decode()
        self.assertIn("depot_dp_scrub_passes_total 1", metrics)

    def test_pull_through_serves_only_verified_assigned_objects(self):
        self.package(big_mib=8)
        # 64 KiB/s: the DP will not have synced the big file before we ask for it.
        dp = self.dp("dp1", extra=["--max-sync-rate", str(64 << 10), "--parallel", "1"])
        self.site.cli("distribute", "tools", "--to", "dp1")
        dp.wait_state("tools", 1, state="syncing")
        site_chunks = {}
        for d, _, fs in os.walk(os.path.join(self.site.data, "library/repo/chunks")):
            for f in fs:
                site_chunks[f] = os.path.join(d, f)
        dp_has = set()
        for d, _, fs in os.walk(os.path.join(dp.data, "repo/chunks")):
            dp_has.update(fs)
        missing = [c for c in site_chunks if c not in dp_has]
        self.assertTrue(missing)
        cid = missing[0]
        st, body, _ = http_get(dp.url, f"/repo/chunks/{cid[:2]}/{cid}")
        self.assertEqual(st, 200)
        self.assertEqual(body, open(site_chunks[cid], "rb").read())
        self.assertTrue(os.path.exists(os.path.join(dp.data, "repo/chunks", cid[:2], cid)), "stored after verifying")
        st, _, _ = http_get(dp.url, "/repo/chunks/ab/ab" + "1" * 62)
        self.assertEqual(st, 404, "not assigned: not fetched")

    def test_unassigned_content_is_deleted_after_grace_except_shared_chunks(self):
        src_a, _ = self.package("pa", seed=3)
        src_b = self.path("src-pb")
        make_tree(src_b, seed=3, big_mib=2)
        write(os.path.join(src_b, "only-b.bin"), os.urandom(200000))
        self.site.cli("package", "create", "pb", "--source", src_b)
        dp = self.dp("dp1", extra=["--gc-grace", "1s"])
        self.site.cli("distribute", "pa", "--to", "dp1")
        self.site.cli("distribute", "pb", "--to", "dp1")
        dp.wait_state("pa", 1)
        dp.wait_state("pb", 1)
        self.site.cli("distribute", "pb", "--to", "dp1", "--remove")
        wait_until(lambda: any(m["code"] == 3006 for m in self.site.cli("messages", "--dp", "dp1")["messages"]),
                   "the DP's purge report (3006)", timeout=30)
        self.assertFalse(os.path.exists(os.path.join(dp.data, "repo/targets/pb")) and
                         os.listdir(os.path.join(dp.data, "repo/targets/pb")))
        self.fetch(dp.url, "pa", self.path("out"))
        self.assertEqual(describe_tree(src_a), describe_tree(self.path("out")))
        run_depot("dp", "verify", "--data", dp.data)

    def test_a_dp_can_copy_from_a_parent_dp(self):
        src, _ = self.package()
        parent = self.dp("parent")
        self.site.cli("distribute", "tools", "--to", "parent")
        parent.wait_state("tools", 1)
        before = self.site_bytes_sent()
        child = self.dp("child", extra=["--upstream", parent.url])
        self.site.cli("distribute", "tools", "--to", "child")
        child.wait_state("tools", 1)
        self.assertLess(self.site_bytes_sent() - before, 1 << 20, "the chunks came from the parent")
        self.fetch(child.url, "tools", self.path("out"))
        self.assertEqual(describe_tree(src), describe_tree(self.path("out")))


class DpLivenessTest(DepotTestCase):
    """Whether a DP is alive comes from its own requests and answers only."""

    def test_a_stopped_dp_stays_offline_while_its_parked_long_poll_is_woken(self):
        site = site_with(self.tmp, {"retry_base": "200ms", "dp_offline_after": "1s", "probe_base": "200ms",
                                    "probe_timeout": "1s"})
        self.addCleanup(site.stop)
        src = self.path("src")
        make_tree(src, big_mib=1)
        site.cli("package", "create", "tools", "--source", src, "--program", "install=true")
        dp = DpProcess(site, self.tmp, "d1", port=free_port())
        self.addCleanup(dp.stop)
        site.cli("distribute", "tools", "--to", "d1")
        dp.wait_state("tools", 1)
        # Its assignment long poll is now parked on the site. Stop the process.
        pid = dp.proc.pid
        os.kill(pid, signal.SIGSTOP)
        self.addCleanup(lambda: os.kill(pid, signal.SIGCONT))

        def probes():
            msgs = site.cli("messages", "--dp", "d1", "--code", "2006")["messages"]
            return msgs[0]["count"] if msgs else 0

        def dp_row():
            return {d["name"]: d for d in site.cli("dp", "list")["dps"]}["d1"]

        wait_until(lambda: probes() >= 1, "the stopped DP reported unreachable (2006)")
        # Changes wake the parked poll: the site answers it into a socket nobody reads.
        for _ in range(3):
            with open(os.path.join(src, "src/mod1/file1.txt"), "ab") as f:
                f.write(b"more\n")
            site.cli("package", "update", "tools", "--source", src)
        seen = probes()
        # Two more failed probes after the wake-ups: the site looked again and again.
        wait_until(lambda: probes() >= seen + 2, "further probes of the stopped DP")
        self.assertEqual(site.cli("messages", "--dp", "d1", "--code", "2007")["messages"], [],
                         "a parked poll is not a sign of life")
        self.assertFalse(dp_row()["reachable"])
        # `depot status` names it, with since when and why, not only in a count.
        not_ready = site.cli("status")["dps_not_ready"]
        self.assertEqual([(d["name"], d["state"]) for d in not_ready], [("d1", "unreachable")])
        self.assertEqual(not_ready[0]["since"], dp_row()["last_seen"])
        self.assertTrue(not_ready[0]["detail"])
        code, out, _ = run_depot("status", env=site.cli_env())
        self.assertRegex(out, r"DPs not ready:\n  d1 +unreachable +since \d{4}-")
        # Resumed, its own requests bring it back.
        os.kill(pid, signal.SIGCONT)
        wait_until(lambda: site.cli("messages", "--dp", "d1", "--code", "2007")["messages"], "reachable again (2007)")
        wait_until(lambda: dp_row()["reachable"], "dp list says reachable")
        dp.wait_state("tools", 4)  # it catches up with the versions published meanwhile
        wait_until(lambda: site.cli("status")["dps_not_ready"] == [], "status: every DP ready")


if __name__ == "__main__":
    unittest.main()
