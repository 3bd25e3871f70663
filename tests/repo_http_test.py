"""depot repo: build a repository, serve it with a real nginx, fetch it back over
HTTP byte for byte (modes, symlinks, empty files and dirs), update it with only
changed chunks transferred, and detect damage."""
import json
import os
import subprocess
import sys
import unittest

from harness import DepotTestCase, Nginx, describe_tree, free_port, make_tree, run_depot, write, HERE


class RepoOverHttpTest(DepotTestCase):
    def setUp(self):
        super().setUp()
        self.src = self.path("src")
        make_tree(self.src)
        self.repo = self.path("repo")
        run_depot("repo", "init", self.repo)
        self.trust = os.path.join(self.repo, "repo/metadata/root.json")
        _, self.v1, _ = run_depot("repo", "add", self.repo, "--package", "tools", "--source",
                                  self.src, "--program", "install=./bin/tool --install",
                                  "--timeout", "install=10m", "--reboot-codes", "install=194",
                                  json_out=True)
        self.nginx = Nginx(os.path.join(self.repo, "repo"), self.tmp)
        self.addCleanup(self.nginx.stop)

    def fetch(self, dest, *extra, check=True):
        return run_depot("repo", "fetch", self.nginx.url, "--package", "tools", "--dest",
                         self.path(dest), "--trust", self.trust, *extra, json_out=True,
                         check=check)

    def test_fetch_from_nginx_is_byte_for_byte(self):
        self.assertEqual(self.v1["version"], 1)
        self.assertGreater(self.v1["new_chunks"], 40)
        _, out, _ = self.fetch("out")
        self.assertEqual(out["version"], 1)
        self.assertEqual(out["manifest_id"], self.v1["manifest_id"])
        self.assertEqual(describe_tree(self.src), describe_tree(self.path("out")))
        # Every request nginx saw was for the public layout.
        with open(os.path.join(self.nginx.dir, "access.log")) as f:
            paths = [line.split('"')[1].split()[1] for line in f if '"GET' in line]
        self.assertTrue(all(p.startswith(("/metadata/", "/targets/", "/chunks/")) for p in paths),
                        paths[:5])

    def test_update_transfers_only_changed_chunks(self):
        self.fetch("v1", "--cache", self.path("cache"))
        # Edit 4 KiB in the middle of the 3 MiB binary and append to one text file.
        tool = os.path.join(self.src, "bin/tool")
        with open(tool, "r+b") as f:
            f.seek(1 << 20)
            f.write(os.urandom(4096))
        with open(os.path.join(self.src, "src/mod0/file0.txt"), "ab") as f:
            f.write(b" appended")
        _, v2, _ = run_depot("repo", "add", self.repo, "--package", "tools", "--source", self.src,
                             json_out=True)
        self.assertEqual(v2["version"], 2)
        self.assertLessEqual(v2["new_chunks"], 3)
        self.assertLess(v2["new_bytes"], 600 * 1024)
        _, out, _ = self.fetch("v2", "--cache", self.path("cache"))
        self.assertEqual(out["version"], 2)
        self.assertLessEqual(out["fetched_chunks"], 3)
        # Metadata, manifest and the changed chunks: a fraction of the 3 MiB binary.
        self.assertLess(out["transfer_bytes"], 800 * 1024)
        self.assertEqual(describe_tree(self.src), describe_tree(self.path("v2")))
        # An explicit older version still comes back exactly.
        _, old, _ = self.fetch("old", "--version", "1", "--cache", self.path("cache"))
        self.assertEqual(old["version"], 1)
        self.assertEqual(old["fetched_chunks"], 0)

    def test_list_and_verify_and_damage(self):
        _, listing, _ = run_depot("repo", "list", self.repo, json_out=True)
        self.assertEqual([(v["package"], v["version"]) for v in listing["versions"]], [("tools", 1)])
        rc, report, _ = run_depot("repo", "verify", self.repo, json_out=True)
        self.assertEqual(rc, 0)
        self.assertTrue(report["ok"])
        # Damage one chunk file on disk.
        chunks = os.path.join(self.repo, "repo/chunks")
        victim = None
        for sub in sorted(os.listdir(chunks)):
            names = os.listdir(os.path.join(chunks, sub))
            if names:
                victim = os.path.join(chunks, sub, names[0])
                break
        with open(victim, "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 2] ^= 0xff
            f.seek(0)
            f.write(data)
        rc, report, _ = run_depot("repo", "verify", self.repo, json_out=True, check=False)
        self.assertEqual(rc, 3)
        self.assertFalse(report["ok"])
        objects = [d["object"] for d in report["damage"]]
        self.assertIn("chunks/" + os.path.relpath(victim, chunks), objects)
        # A fetch now fails cleanly, naming the chunk, and leaves no destination.
        rc, err, stderr = self.fetch("broken", check=False)
        self.assertEqual(rc, 1)
        self.assertEqual(err["error"]["code"], "Corruption")
        self.assertIn(os.path.basename(victim), stderr)
        self.assertFalse(os.path.exists(self.path("broken")))

    def test_key_rotation_is_followed_and_root_key_can_be_offline(self):
        first_root = os.path.join(self.repo, "repo/metadata/1.root.json")
        # With the root key offline, versions can still be added...
        keys = os.path.join(self.repo, "keys")
        offline = self.path("offline-root.pem")
        os.rename(os.path.join(keys, "root.pem"), offline)
        run_depot("repo", "add", self.repo, "--package", "tools", "--source", self.src)
        # ...but not keys rotated: the error says where the key must go back.
        rc, _, stderr = run_depot("repo", "rotate-keys", self.repo, "timestamp", check=False)
        self.assertEqual(rc, 1)
        self.assertIn("root.pem", stderr)
        os.rename(offline, os.path.join(keys, "root.pem"))
        run_depot("repo", "rotate-keys", self.repo, "root", "targets", "snapshot", "timestamp")
        _, v3, _ = run_depot("repo", "add", self.repo, "--package", "tools", "--source", self.src,
                             json_out=True)
        self.assertEqual(v3["version"], 3)
        # A client pinned to the very first root follows the rotation chain.
        _, out, _ = run_depot("repo", "fetch", self.nginx.url, "--package", "tools", "--dest",
                              self.path("out"), "--trust", first_root, json_out=True)
        self.assertEqual(out["version"], 3)
        self.assertEqual(describe_tree(self.src), describe_tree(self.path("out")))
        rc, report, _ = run_depot("repo", "verify", self.repo, json_out=True)
        self.assertTrue(report["ok"], report)

    def test_wrong_trust_root_is_refused(self):
        other = self.path("other")
        run_depot("repo", "init", other)
        rc, err, _ = run_depot("repo", "fetch", self.nginx.url, "--package", "tools", "--dest",
                               self.path("out"), "--trust",
                               os.path.join(other, "repo/metadata/root.json"),
                               json_out=True, check=False)
        self.assertEqual(rc, 1)
        self.assertFalse(os.path.exists(self.path("out")))

    def test_bad_input_gets_clear_errors(self):
        rc, err, _ = run_depot("repo", "add", self.repo, "--package", "../evil", "--source",
                               self.src, json_out=True, check=False)
        self.assertEqual(rc, 1)
        self.assertEqual(err["error"]["code"], "InvalidArgument")
        self.assertIn("package name", err["error"]["message"])
        rc, _, stderr = run_depot("repo", "add", self.repo, "--package", "x", "--source",
                                  self.src, "--program", "noequals", check=False)
        self.assertEqual(rc, 1)
        self.assertIn("NAME=VALUE", stderr)
        rc, _, _ = run_depot("repo", "frobnicate", check=False)
        self.assertEqual(rc, 2)
        rc, _, stderr = run_depot("repo", "fetch", self.nginx.url, "--package", "tools",
                                  "--dest", self.path("x"), "--trust", self.path("nope.json"),
                                  check=False)
        self.assertEqual(rc, 1)
        self.assertIn("nope.json", stderr)
        # An existing destination is refused and left alone.
        write(self.path("taken/mine"), b"keep")
        rc, _, _ = self.fetch("taken", check=False)
        self.assertEqual(rc, 1)
        with open(self.path("taken/mine"), "rb") as f:
            self.assertEqual(f.read(), b"keep")


class FaultyServerTest(DepotTestCase):
    """A server that serves bad chunk bytes: depot rejects them, retries, reports,
    and never materialises or caches anything unverified."""

    def setUp(self):
        super().setUp()
        self.src = self.path("src")
        make_tree(self.src, big_mib=1)
        self.repo = self.path("repo")
        run_depot("repo", "init", self.repo)
        run_depot("repo", "add", self.repo, "--package", "tools", "--source", self.src)
        self.trust = os.path.join(self.repo, "repo/metadata/root.json")

    def serve(self, mode):
        port = free_port()
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "fault_server.py"),
                                 os.path.join(self.repo, "repo"), str(port), mode],
                                stdout=subprocess.PIPE, text=True)
        self.addCleanup(proc.kill)
        self.assertEqual(proc.stdout.readline().strip(), "ready")
        return f"http://127.0.0.1:{port}"

    def fetch_fails(self, mode, code):
        url = self.serve(mode)
        cache = self.path("cache-" + mode)
        # It gives up (run_depot's timeout bounds a hang); after how many tries and how
        # long a wait is fetch_test.cc's, on a manual clock.
        rc, err, stderr = run_depot("repo", "fetch", url, "--package", "tools", "--dest",
                                    self.path("out-" + mode), "--trust", self.trust, "--cache",
                                    cache, json_out=True, check=False, timeout=120)
        self.assertEqual(rc, 1, stderr)
        self.assertEqual(err["error"]["code"], code, err)
        self.assertIn("chunk", err["error"]["message"])
        self.assertFalse(os.path.exists(self.path("out-" + mode)))
        self.assertFalse([n for n in os.listdir(self.tmp) if "staging" in n])
        return cache, stderr

    def test_corrupt_bytes_are_rejected_and_never_cached(self):
        cache, stderr = self.fetch_fails("corrupt", "Corruption")
        self.assertIn("do not hash to the id", stderr)
        chunks = os.path.join(cache, "chunks")
        self.assertEqual(sum(len(os.listdir(os.path.join(chunks, d))) for d in os.listdir(chunks)), 0)

    def test_truncated_responses_are_retried_then_fail(self):
        _, stderr = self.fetch_fails("truncate", "Unavailable")
        self.assertIn("fetch.retry", stderr)

    def test_endless_response_is_cut_off(self):
        _, stderr = self.fetch_fails("endless", "Corruption")
        self.assertIn("longer than", stderr)

    def test_missing_chunks(self):
        self.fetch_fails("missing", "NotFound")

    def test_healthy_server_after_faults_completes_from_cache(self):
        self.fetch_fails("truncate", "Unavailable")
        url = self.serve("ok")
        _, out, _ = run_depot("repo", "fetch", url, "--package", "tools", "--dest",
                              self.path("out"), "--trust", self.trust, "--cache",
                              self.path("cache-truncate"), json_out=True)
        self.assertEqual(describe_tree(self.src), describe_tree(self.path("out")))


if __name__ == "__main__":
    unittest.main()
