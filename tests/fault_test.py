"""Faults of the machine under a DP: its disk fills during a sync (a small tmpfs holds
its data directory). It reports it clearly, never publishes or serves a partial
object, and recovers by itself when space returns."""
import glob
import hashlib
import os
import subprocess
import urllib.error
import urllib.request

from harness import (DepotTestCase, DpProcess, describe_tree, free_port, make_tree, run_depot, site_root_json,
                     site_with, wait_until)


def zstd_decompress(path):
    return subprocess.run(["zstd", "-dc", path], capture_output=True, check=True).stdout


class DiskFullTest(DepotTestCase):
    def mount_tmpfs(self, path, size):
        os.makedirs(path)
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", path], capture_output=True,
                           text=True)
        if p.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here (needs root / CAP_SYS_ADMIN): {p.stderr.strip()}")
        self.addCleanup(subprocess.run, ["umount", "-l", path])

    @staticmethod
    def get(url):
        try:
            with urllib.request.urlopen(url, timeout=30) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def test_dp_disk_fills_reports_serves_nothing_partial_and_recovers(self):
        site = site_with(self.tmp, {"retry_base": "200ms"})
        self.addCleanup(site.stop)
        src = self.path("src")
        make_tree(src, seed=31, big_mib=12)
        site.cli("package", "create", "tools", "--source", src, "--program", "install=true")
        data = os.path.join(self.tmp, "dp-small")
        self.mount_tmpfs(data, "5m")
        dp = DpProcess(site, self.tmp, "small", port=free_port(), extra=("--retry-base", "1s"))
        self.addCleanup(dp.stop)
        site.cli("distribute", "tools", "--to", "small")

        rec = dp.wait_state("tools", 1, state="failed", timeout=60)
        self.assertIn("No space left", rec.get("last_error", "") + str(rec), rec)

        def failures():
            with open(dp.log.name) as f:
                return f.read().count("dp.sync_failed")
        wait_until(lambda: failures() >= 3, "two retries that find the disk still full", timeout=60)
        self.assertEqual(dp.stop(), 0)  # a graceful stop delivers the DP's outbox
        full = site.cli("messages", "--code", "3005")["messages"]
        self.assertEqual(len(full), 1, "one disk-full record however many retries found the disk still full")
        self.assertEqual(full[0]["dp"], "small")
        self.assertIn("No space left", full[0]["text"])
        dp.restart()

        # Nothing partial: no manifest published, every stored chunk whole, nothing
        # unpublished served.
        self.assertEqual(glob.glob(os.path.join(data, "repo", "targets", "**", "*.json"), recursive=True), [])
        stored = [p for p in glob.glob(os.path.join(data, "repo", "chunks", "*", "*")) if ".tmp" not in p]
        for p in stored:
            self.assertEqual(hashlib.sha256(zstd_decompress(p)).hexdigest(), os.path.basename(p), p)
        code, report, _ = run_depot("dp", "verify", "--data", data, json_out=True, check=False)
        self.assertEqual(code, 0, report)
        # What it does serve of the unfinished version (pull-through of assigned objects)
        # is verified first: the manifest hashes to its id, each chunk to its name.
        manifest_id = site.cli("package", "show", "tools")["versions"][0]["manifest_id"]
        status, body = self.get(dp.url + f"/repo/targets/tools/{manifest_id}.1.json")
        if status == 200:
            self.assertEqual(hashlib.sha256(body).hexdigest(), manifest_id)
        have = {os.path.basename(p) for p in stored}
        library = glob.glob(os.path.join(site.data, "library", "repo", "chunks", "*", "*"))
        missing = [os.path.basename(p) for p in library if os.path.basename(p) not in have][:8]
        self.assertTrue(missing)
        for cid in missing:
            status, body = self.get(dp.url + f"/repo/chunks/{cid[:2]}/{cid}")
            if status == 200:
                out = subprocess.run(["zstd", "-dc"], input=body, capture_output=True, check=True).stdout
                self.assertEqual(hashlib.sha256(out).hexdigest(), cid)
            else:
                self.assertIn(status, (404, 503, 507), cid)
        self.assertEqual(self.get(dp.url + "/repo/chunks/00/" + "0" * 64)[0], 404)

        # Space returns: the DP finishes by itself, and serves exactly the version.
        subprocess.run(["mount", "-o", "remount,size=64m", data], check=True)
        dp.wait_state("tools", 1, timeout=120)
        dest = self.path("fetched")
        run_depot("repo", "fetch", dp.url + "/repo", "--package", "tools", "--dest", dest,
                  "--trust", site_root_json(site, self.path("root.json")))
        self.assertEqual(describe_tree(src), describe_tree(dest))
        code, report, _ = run_depot("dp", "verify", "--data", data, json_out=True, check=False)
        self.assertEqual(code, 0, report)


if __name__ == "__main__":
    import unittest
    unittest.main()
