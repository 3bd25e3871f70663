"""kill -9 at named crash points (DEPOT_CRASH_AT, src/core/crash_point.h) of the site
during an upload, of a DP during sync, of an agent during download and install: after
a restart everything converges, nothing corrupt is stored or installed, and no program
runs twice after it succeeded."""
import os

from harness import (AgentProcess, DepotTestCase, DpProcess, SiteProcess, describe_tree, free_port, make_tree,
                     metric, run_depot, site_root_json, site_with, wait_until)

KILLED = -9


def crash_env(point):
    return dict(os.environ, DEPOT_CRASH_AT=point)


class KillTest(DepotTestCase):
    def fetch_equals(self, site, url, src, dest):
        run_depot("repo", "fetch", url, "--package", "tools", "--dest", dest,
                  "--trust", site_root_json(site, dest + ".root.json"))
        self.assertEqual(describe_tree(src), describe_tree(dest))

    def test_site_killed_during_upload_and_commit_converges(self):
        src = self.path("src")
        make_tree(src, seed=21, big_mib=6)
        for i, point in enumerate(["site.chunks_stored", "site.version_reserved", "site.version_signed",
                                   "tuf.before_timestamp"]):
            with self.subTest(point=point):
                work = self.path(f"w{i}")
                os.makedirs(work)
                site = SiteProcess(work, env=crash_env(point))
                self.addCleanup(site.stop)
                code, out, err = site.cli("package", "create", "tools", "--source", src, "--program",
                                          "install=true", check=False)
                self.assertNotEqual(code, 0, "the site died under the upload")
                self.assertEqual(site.wait_exit(), KILLED, f"the site did not reach {point}")
                site.env = None
                site.start()
                # Chunks the dead site had staged but not committed are swept after restart.
                chunks_dir = os.path.join(site.data, "library", "repo", "chunks")
                def temp_files():
                    return [f for _, _, files in os.walk(chunks_dir) for f in files if f.startswith(".")]
                # The sweep is the restarted site's first pass over the store; the filter
                # it fills is ready when the pass is done.
                wait_until(lambda: metric(site.url, "depot_site_chunk_filter_ready") == 1,
                           "the restarted site's pass over the store", timeout=20)
                self.assertEqual(temp_files(), [], point)
                # Whatever was left: the library verifies, and a listed version is whole.
                code, report, _ = run_depot("repo", "verify", os.path.join(site.data, "library"), json_out=True,
                                            check=False)
                self.assertEqual(code, 0, report)
                listed = site.cli("package", "list")["packages"]
                if listed:
                    # Signed before the kill: the restart finished it (version 1, with its message).
                    self.assertEqual([(p["name"], p["latest_version"]) for p in listed], [("tools", 1)])
                else:
                    # Not signed: nothing of it is visible; the same command now succeeds.
                    self.assertEqual(site.cli("package", "create", "tools", "--source", src, "--program",
                                              "install=true")["version"], 1)
                self.assertEqual([v["version"] for v in site.cli("package", "show", "tools")["versions"]], [1])
                self.assertEqual(len(site.cli("messages", "--code", "1001")["messages"]), 1)
                self.fetch_equals(site, site.url + "/repo", src, os.path.join(work, "fetched"))
                # And the next version is 2, never a reused number.
                with open(os.path.join(src, "src/mod0/file0.txt"), "ab") as f:
                    f.write(b"more\n")
                self.assertEqual(site.cli("package", "update", "tools", "--source", src)["version"], 2)
                site.stop()

    def test_dp_killed_during_sync_converges(self):
        site = site_with(self.tmp, {"retry_base": "200ms"})
        self.addCleanup(site.stop)
        src = self.path("src")
        make_tree(src, seed=22, big_mib=12)
        site.cli("package", "create", "tools", "--source", src, "--program", "install=true")
        for point in ["mirror.chunks_committed", "dp.before_publish", "dp.published"]:
            with self.subTest(point=point):
                name = point.replace(".", "-").replace("_", "-")
                dp = DpProcess(site, self.tmp, name, port=free_port(), env=crash_env(point))
                self.addCleanup(dp.stop)
                site.cli("distribute", "tools", "--to", name)
                self.assertEqual(dp.wait_exit(), KILLED, f"the DP did not reach {point}")
                targets = os.path.join(dp.data, "repo", "targets")
                published = [f for _, _, fs in os.walk(targets) for f in fs] if os.path.isdir(targets) else []
                if point != "dp.published":
                    self.assertEqual(published, [], "nothing published before every chunk is in")
                dp.restart()
                dp.wait_state("tools", 1)
                code, report, _ = run_depot("dp", "verify", "--data", dp.data, json_out=True, check=False)
                self.assertEqual(code, 0, report)
                self.fetch_equals(site, dp.url + "/repo", src, self.path(f"fetched-{name}"))
                dp.stop()

    def test_agent_killed_during_download_and_install_converges_and_runs_once(self):
        site = site_with(self.tmp, {"retry_base": "200ms"})
        self.addCleanup(site.stop)
        site.cli("collection", "create", "all", "--rule", 'os == "linux"')
        src = self.path("src")
        make_tree(src, seed=23, big_mib=4)
        runs = self.path("runs.log")
        # Each run appends the agent's directory name (content/tools/1 is three levels down).
        site.cli("package", "create", "tools", "--source", src, "--program",
                 f'install=echo "$(basename "$(dirname "$(dirname "$(dirname "$PWD")")")")" >> {runs}')
        dp = DpProcess(site, self.tmp, "dp1", port=free_port())
        self.addCleanup(dp.stop)
        site.cli("distribute", "tools", "--to", "dp1")
        dp.wait_state("tools", 1)
        dep = site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        points = ["agent.download_recorded", "agent.program_started", "agent.program_exited",
                  "agent.succeeded_recorded"]
        for i, point in enumerate(points):
            with self.subTest(point=point):
                a = AgentProcess(site, self.tmp, f"pc{i}", extra=("--poll-interval", "1", "--retry-base", "1s"))
                code, err = a.once(env=crash_env(point))
                self.assertEqual(code, KILLED, f"the agent did not reach {point}: {err}")
                code, err = a.once()
                self.assertIn(code, (0, 4), err)
                st = a.status()
                self.assertEqual(st["installed"], {"tools": 1}, st)
                self.assertEqual(st["deployments"][0]["state"], "succeeded", st)
                self.assertEqual(describe_tree(src), describe_tree(os.path.join(a.data, "content", "tools", "1")))
                code, _ = a.once()
                self.assertEqual(code, 4, "nothing left to do")
                with open(runs) as f:
                    self.assertEqual(f.read().split().count(f"agent-pc{i}"), 1, "the program ran exactly once")
        counts = site.cli("deployment", "show", str(dep["id"]))["clients"]
        self.assertEqual(counts["succeeded"], len(points), counts)


if __name__ == "__main__":
    import unittest
    unittest.main()
