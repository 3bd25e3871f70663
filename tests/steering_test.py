"""What agents report about a DP changes what the site offers: a DP that is stale or
serves bad bytes is withheld from policies after the first agent finds it, so the
next agent never touches it; the DP re-verifies and repairs the version and comes
back. Real site, DP, agents and a stoppable upstream on loopback."""
import glob
import os
import shutil

from harness import (AccessLog, AgentProcess, DepotTestCase, DpProcess, FaultServer, describe_tree, free_port,
                     make_tree, run_depot, site_root_json, site_with, wait_until, write)


class SteeringTest(DepotTestCase):
    def setUp(self):
        super().setUp()
        self.site = site_with(self.tmp, {"retry_base": "200ms"})
        self.addCleanup(self.site.stop)
        self.site.cli("collection", "create", "all", "--rule", 'os == "linux"')
        # The DP copies through an upstream the test can take away, so a repair can be
        # held back while the second agent runs.
        self.upstream_port = free_port()
        self.upstream = None
        self.upstream_up()
        self.dp_log = self.path("edge-access.log")
        self.dp = DpProcess(self.site, self.tmp, "edge", port=free_port(),
                            extra=["--upstream", self.upstream.url, "--retry-base", "200ms",
                                   "--access-log", self.dp_log])
        self.addCleanup(self.dp.stop)
        self.src = self.path("src")
        make_tree(self.src, big_mib=2)

    def upstream_up(self):
        self.upstream = FaultServer(os.path.join(self.site.data, "library"), self.upstream_port, "ok")
        self.addCleanup(self.upstream.stop)

    def upstream_down(self):
        self.upstream.stop()

    def agent(self, name):
        a = AgentProcess(self.site, self.tmp, name, extra=("--retry-base", "1s"))
        self.addCleanup(a.stop)
        return a

    def record(self, version):
        return self.dp.record("tools", version) or {}

    def sources_of(self, agent):
        policy = self.site.cli("client", "show", agent.client())["policy"]
        return [s["name"] for d in policy["deployments"] for s in d["sources"]]

    def second_agent_avoids_the_dp(self, version):
        """The record is withheld: a new agent's policy lacks the DP, and it installs
        without a single request to the DP."""
        log = AccessLog(self.dp_log)
        mark = log.mark()
        second = self.agent("pc2")
        code, err = second.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(second.status()["installed"], {"tools": version})
        self.assertNotIn("edge", self.sources_of(second))
        self.assertEqual([r for r in log.since(mark) if r["target"].startswith("/repo/")], [],
                         "the second agent never touched the withheld DP")
        self.assertEqual(self.site.cli("messages", "--client", second.client(), "--code", "4012")["messages"], [])
        self.assertEqual(self.site.cli("messages", "--client", second.client(), "--code", "4004")["messages"], [])

    def restored(self, version):
        self.upstream_up()
        wait_until(lambda: self.record(version).get("state") == "ready", "the DP re-verified and is ready", 90)
        restored = self.site.cli("messages", "--dp", "edge", "--code", "2011")["messages"]
        self.assertEqual(len(restored), 1, restored)
        verified = self.site.cli("messages", "--dp", "edge", "--code", "3007")["messages"]
        self.assertGreaterEqual(len(verified), 1)
        # Back in policies, and what it serves verifies.
        third = self.agent("pc3")
        third.once()
        self.assertIn("edge", self.sources_of(third))
        out = self.path("out")
        run_depot("repo", "fetch", self.dp.url + "/repo", "--package", "tools", "--version", str(version), "--dest",
                  out, "--trust", site_root_json(self.site, self.path("root.json")))
        self.assertEqual(describe_tree(self.src), describe_tree(out))
        return verified

    def test_a_dp_serving_bad_bytes_is_withheld_checked_at_once_and_restored_after_repair(self):
        self.site.cli("package", "create", "tools", "--source", self.src, "--program", "install=true")
        self.site.cli("distribute", "tools", "--to", "edge")
        self.dp.wait_state("tools", 1)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        # The DP's disk damages its largest chunk; its upstream is gone, so it cannot repair.
        self.upstream_down()
        chunk = max((p for p in glob.glob(os.path.join(self.dp.data, "repo/chunks/*/*"))
                     if not os.path.basename(p).startswith(".")), key=os.path.getsize)
        with open(chunk, "r+b") as f:
            f.seek(os.path.getsize(chunk) // 2)
            b = f.read(1)
            f.seek(-1, 1)
            f.write(bytes([b[0] ^ 0xFF]))
        chunk_id = os.path.basename(chunk)

        first = self.agent("pc1")
        code, err = first.once()
        self.assertEqual(code, 0, err)  # from the site, after the DP's bytes failed
        bad = self.site.cli("messages", "--client", first.client(), "--code", "4012")["messages"]
        self.assertEqual(len(bad), 1, bad)
        self.assertIn(chunk_id, bad[0]["params"]["chunks"])
        # Withheld at once, and the DP checks the named chunk straight away: removed,
        # so it is never served again.
        self.assertEqual(self.record(1)["state"], "verifying")
        self.assertIn("bad bytes", self.record(1)["withheld_because"])
        wait_until(lambda: not os.path.exists(chunk), "the DP removed the damaged chunk")
        wait_until(lambda: any(chunk_id in m["params"]["object"] for m in
                               self.site.cli("messages", "--dp", "edge", "--code", "3003")["messages"]),
                   "the DP reported the damaged chunk (3003)")
        withheld = self.site.cli("messages", "--code", "2010")["messages"]
        self.assertEqual([m["dp"] for m in withheld], ["edge"])
        status = self.site.cli("status")
        self.assertEqual([(d["name"], d["state"]) for d in status["dps_not_ready"]], [("edge", "withheld")])

        self.second_agent_avoids_the_dp(1)
        verified = self.restored(1)
        self.assertGreaterEqual(int(verified[-1]["params"]["repaired"]), 1)
        self.assertEqual(self.site.cli("status")["dps_not_ready"], [])

    def test_a_stale_dp_is_withheld_and_restored_once_it_is_current_again(self):
        self.site.cli("package", "create", "tools", "--source", self.src, "--program", "install=true")
        self.site.cli("distribute", "tools", "--to", "edge")
        self.dp.wait_state("tools", 1)
        metadata = os.path.join(self.dp.data, "repo/metadata")
        old = self.path("metadata-v1")
        shutil.copytree(metadata, old)
        write(os.path.join(self.src, "src/mod1/file1.txt"), b"version 2\n")
        self.site.cli("package", "update", "tools", "--source", self.src)
        self.dp.wait_state("tools", 2)
        self.site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        # The DP's public metadata goes back to before version 2 (a restore from an old
        # backup, a sync that lost its last step) while it still says ready.
        self.upstream_down()
        for name in os.listdir(old):
            tmp = os.path.join(metadata, "." + name + ".tmp")
            shutil.copyfile(os.path.join(old, name), tmp)
            os.replace(tmp, os.path.join(metadata, name))

        first = self.agent("pc1")
        code, err = first.once()
        self.assertEqual(code, 0, err)
        stale = self.site.cli("messages", "--client", first.client(), "--code", "4004")["messages"]
        self.assertEqual(len(stale), 1, stale)
        self.assertEqual(self.record(2)["state"], "verifying")
        self.assertEqual(self.record(1)["state"], "ready", "only the reported version is withheld")

        self.second_agent_avoids_the_dp(2)
        self.restored(2)
        with open(os.path.join(metadata, "timestamp.json"), "rb") as f:
            ours = f.read()
        _, theirs, _ = self.site.api("GET", "/repo/metadata/timestamp.json")
        import json
        self.assertEqual(json.loads(ours)["signed"]["version"], theirs["signed"]["version"])


if __name__ == "__main__":
    import unittest
    unittest.main()
