"""Conformance: an independent TUF client (tuf-js from npm) loads a depot repository
over HTTP from nginx, refreshes its metadata and downloads a manifest target; any
tampering with a signed file makes it fail."""
import hashlib
import json
import os
import shutil
import subprocess
import unittest

from harness import DepotTestCase, HERE, Nginx, make_tree, run_depot

NODE_DIR = os.path.join(HERE, "node")


class TufJsConformanceTest(DepotTestCase):
    def setUp(self):
        super().setUp()
        if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "tuf-js")):
            self.fail("tuf-js is not installed: run scripts/install-deps.sh --test")
        self.src = self.path("src")
        make_tree(self.src, big_mib=1)
        self.repo = self.path("repo")
        run_depot("repo", "init", self.repo)
        for _ in range(2):  # two versions: several metadata versions to walk
            _, self.added, _ = run_depot("repo", "add", self.repo, "--package", "tools",
                                         "--source", self.src, json_out=True)
        self.public = os.path.join(self.repo, "repo")
        self.trust = os.path.join(self.public, "metadata/1.root.json")

    def tufjs(self, public_root, target):
        nginx = Nginx(public_root, self.path("ngx-" + os.path.basename(public_root)))
        try:
            p = subprocess.run(["node", os.path.join(NODE_DIR, "tuf_conformance.mjs"), nginx.url,
                                self.trust, target], capture_output=True, text=True, timeout=120)
        finally:
            nginx.stop()
        self.assertTrue(p.stdout.strip(), p.stderr)
        return p.returncode, json.loads(p.stdout.strip().splitlines()[-1])

    def test_tufjs_downloads_manifest_target(self):
        rc, out = self.tufjs(self.public, "tools/2.json")
        self.assertEqual(rc, 0, out)
        self.assertEqual(out["sha256"], self.added["manifest_id"])
        rc, out = self.tufjs(self.public, "tools/1.json")
        self.assertEqual(rc, 0, out)

    def tampered_copy(self, name):
        copy = self.path("tampered-" + name.replace("/", "_"))
        shutil.copytree(self.public, copy)
        return copy

    def test_tampered_signed_metadata_fails(self):
        meta = os.path.join(self.public, "metadata")
        targets = sorted(n for n in os.listdir(meta) if n.endswith(".targets.json"))[-1]
        snapshot = sorted(n for n in os.listdir(meta) if n.endswith(".snapshot.json"))[-1]
        for name in ["timestamp.json", snapshot, targets]:
            copy = self.tampered_copy(name)
            path = os.path.join(copy, "metadata", name)
            with open(path) as f:
                doc = json.load(f)
            # Change a signed field, keep the old signatures.
            doc["signed"]["expires"] = "2099-01-01T00:00:00Z"
            with open(path, "w") as f:
                json.dump(doc, f, separators=(",", ":"), sort_keys=True)
            rc, out = self.tufjs(copy, "tools/2.json")
            self.assertEqual(rc, 1, f"tuf-js accepted tampered {name}: {out}")
            self.assertFalse(out["ok"])

    def test_tampered_target_fails(self):
        copy = self.tampered_copy("target")
        tdir = os.path.join(copy, "targets", "tools")
        name = [n for n in os.listdir(tdir) if n.endswith(".2.json")][0]
        path = os.path.join(tdir, name)
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[10] ^= 0x01
        with open(path, "wb") as f:
            f.write(data)
        rc, out = self.tufjs(copy, "tools/2.json")
        self.assertEqual(rc, 1, out)


if __name__ == "__main__":
    unittest.main()
