"""kill -9 in the middle of `repo add` and `repo fetch`: afterwards nothing is
half-written or corrupt, the next run converges, and garbage is collectable."""
import glob
import os
import signal
import subprocess
import sys
import unittest

from harness import DEPOT, DepotTestCase, HERE, describe_tree, free_port, make_tree, run_depot, wait_until


def wait_for(predicate, what):
    # Looks often: the moment to kill at is short.
    return wait_until(predicate, what, interval=0.005)


def temp_files(root):
    return [p for p in glob.glob(os.path.join(root, "**", ".*"), recursive=True) if ".tmp." in p]


class CrashTest(DepotTestCase):
    def setUp(self):
        super().setUp()
        self.src = self.path("src")
        make_tree(self.src, big_mib=48)
        self.repo = self.path("repo")
        run_depot("repo", "init", self.repo)
        self.trust = os.path.join(self.repo, "repo/metadata/root.json")

    def serve(self, mode):
        """Serves the repository through fault_server.py in MODE; returns its URL."""
        port = free_port()
        server = subprocess.Popen([sys.executable, os.path.join(HERE, "fault_server.py"),
                                   os.path.join(self.repo, "repo"), str(port), mode],
                                  stdout=subprocess.PIPE, text=True)
        self.addCleanup(server.stdout.close)
        self.addCleanup(server.wait)
        self.addCleanup(server.kill)
        self.assertEqual(server.stdout.readline().strip(), "ready")
        return f"http://127.0.0.1:{port}"

    def test_kill_during_add_leaves_no_version_and_converges(self):
        chunks = os.path.join(self.repo, "repo/chunks")
        proc = subprocess.Popen([DEPOT, "repo", "add", self.repo, "--package", "tools",
                                 "--source", self.src, "--threads", "1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # Kill it once it has written chunk temp files, before it could sign anything.
        wait_for(lambda: len(temp_files(chunks)) > 5 or proc.poll() is not None, "chunk temp files of the add")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode == 0:
            self.skipTest("repo add finished before it could be killed")
        _, listing, _ = run_depot("repo", "list", self.repo, json_out=True)
        self.assertEqual(listing["versions"], [])
        rc, report, _ = run_depot("repo", "verify", self.repo, json_out=True)
        self.assertTrue(report["ok"], report)
        # The next add succeeds; gc sweeps what the killed one left.
        _, v1, _ = run_depot("repo", "add", self.repo, "--package", "tools", "--source", self.src,
                             json_out=True)
        self.assertEqual(v1["version"], 1)
        _, gc, _ = run_depot("repo", "gc", self.repo, json_out=True)
        self.assertEqual(temp_files(os.path.join(self.repo, "repo")), [])
        self.assertEqual(gc["chunks_removed"], 0)  # every chunk stored is one v1 uses
        rc, report, _ = run_depot("repo", "verify", self.repo, json_out=True)
        self.assertTrue(report["ok"], report)

    def test_kill_during_fetch_leaves_dest_untouched_and_resumes(self):
        run_depot("repo", "add", self.repo, "--package", "tools", "--source", self.src)
        # The server serves 64 chunks (more than the downloader hands its workers at once),
        # then stalls: the fetch cannot finish before the kill.
        url = self.serve("stall-after-64")
        cache = self.path("cache")
        dest = self.path("out")
        args = [DEPOT, "repo", "fetch", url, "--package", "tools", "--dest", dest, "--trust",
                self.trust, "--cache", cache, "--parallel", "2"]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        staging = lambda: glob.glob(self.path(".out.depot-staging-*"))
        cached = lambda: [p for p in glob.glob(os.path.join(cache, "chunks", "*", "*"))
                          if not os.path.basename(p).startswith(".")]
        # Kill it once verified chunks have been committed to the cache.
        wait_for(lambda: cached() or proc.poll() is not None, "a verified chunk in the fetch's cache")
        self.assertIsNone(proc.poll(), "the fetch ended although the server stalls")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        self.assertFalse(os.path.exists(dest))
        self.assertTrue(staging(), "expected the killed fetch's staging directory")
        # Whatever reached the cache is complete and verified; the next fetch re-verifies
        # and uses it, fetching only the rest, and sweeps the killed fetch's leftovers.
        url = self.serve("ok")
        _, out, _ = run_depot("repo", "fetch", url, "--package", "tools", "--dest", dest,
                              "--trust", self.trust, "--cache", cache, json_out=True)
        self.assertEqual(describe_tree(self.src), describe_tree(dest))
        self.assertGreater(out["cache_chunks"], 0)
        self.assertEqual(out["cache_chunks"] + out["fetched_chunks"], out["chunks"])
        self.assertEqual(staging(), [], "the killed fetch's staging directory was not removed")
        self.assertEqual(temp_files(cache), [])


if __name__ == "__main__":
    unittest.main()
