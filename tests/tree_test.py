"""Real and adversarial source trees round-trip byte-exact: names users have (a
directory `a/` beside `a.txt`, spaces, UTF-8, dots, dashes), modes, empty files and
directories, symlinks to files and directories, through `repo add` + `repo fetch`
and through `package create` / `package update` + an agent install.

The random trees come from a fixed seed in CI. Any seed by hand:
    DEPOT_TREE_SEED=123 DEPOT_TREE_COUNT=50 python3 -m unittest -v tree_test
"""
import os
import random
import shutil
import stat
import subprocess

from harness import AgentProcess, DepotTestCase, SiteProcess, describe_tree, run_depot, write

SEED = int(os.environ.get("DEPOT_TREE_SEED", "20261203"))
COUNT = int(os.environ.get("DEPOT_TREE_COUNT", "12"))

# Name parts chosen so that siblings share prefixes and differ by bytes on both sides
# of '/' (0x2f): ' ' '!' '-' '.' sort below it, digits, letters, '_', '~' and every
# UTF-8 byte above it.
PREFIXES = ["a", "a.b", "lib", "Doc", "x-y", "é", "日本", "данные", "Ωmega", "عربى", "1", "10", "_", "~x", "a a"]
SUFFIXES = ["", ".txt", "-b", " b", "_b", "~", "1", "10", "0", ".d", ".tar.gz", "é", "語", "!", "+", "..",
            "...x", " (copy)", "ü", "🎉"]


def random_tree(root, rng, max_depth=4):
    """Builds a random tree under `root`; returns the number of entries made."""
    os.makedirs(root, exist_ok=True)
    made = 0
    files, dirs = [], []

    def fill(d, depth):
        nonlocal made
        prefix = rng.choice(PREFIXES)
        names = set()
        for _ in range(rng.randint(1 if depth else 4, 7)):
            name = prefix + rng.choice(SUFFIXES)
            if rng.random() < 0.2:
                name = rng.choice(PREFIXES) + rng.choice(SUFFIXES)
            if name in (".", "..") or name in names:
                continue
            names.add(name)
        for name in sorted(names):
            full = os.path.join(d, name)
            kind = rng.random()
            if depth < max_depth and kind < 0.35:
                os.mkdir(full)
                dirs.append(full)
                made += 1
                if rng.random() < 0.85:  # the rest stay empty
                    fill(full, depth + 1)
            else:
                size = rng.choice([0, 0, 1, 17, 4096, 70_000, 300_000])
                # Some files repeat others' bytes: chunks shared within the tree.
                data = rng.randbytes(size) if rng.random() < 0.8 else (b"same" * (size // 4))
                write(full, data, rng.choice([0o644, 0o755, 0o600, 0o444, 0o700]))
                files.append(full)
                made += 1

    fill(root, 0)
    # Symlinks inside the tree, to files and to directories, from anywhere in it.
    for _ in range(rng.randint(1, 4)):
        target = rng.choice(files + dirs) if files or dirs else None
        if target is None:
            break
        at_dir = rng.choice([root] + dirs)
        name = rng.choice(PREFIXES) + rng.choice([".link", "-link", " link", "→"])
        link = os.path.join(at_dir, name)
        if os.path.lexists(link):
            continue
        os.symlink(os.path.relpath(target, at_dir), link)
        made += 1
    # Directory modes last (a read-only directory would refuse the entries above).
    for d in sorted(dirs, key=len, reverse=True):
        os.chmod(d, rng.choice([0o755, 0o750, 0o700, 0o555]))
    return made


def names_in(root):
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        out += dirnames + filenames
    return out


def copy_real(src, dest):
    """A copy of a real directory with its modes and symlinks (`cp -a`)."""
    subprocess.run(["cp", "-a", src, dest], check=True)


class TreeTest(DepotTestCase):
    def test_random_trees_round_trip_through_repo_add_and_fetch(self):
        rng = random.Random(SEED)
        repo = self.path("repo")
        run_depot("repo", "init", repo)
        trust = os.path.join(repo, "repo/metadata/root.json")
        entries = names = 0
        for i in range(COUNT):
            src = self.path(f"src{i}")
            entries += random_tree(src, rng)
            names += len(set(names_in(src)))
            pkg = f"tree{i}"
            run_depot("repo", "add", repo, "--package", pkg, "--source", src)
            dest = self.path(f"out{i}")
            run_depot("repo", "fetch", os.path.join(repo, "repo"), "--package", pkg, "--dest", dest,
                      "--trust", trust)
            self.assertEqual(describe_tree(src), describe_tree(dest), f"seed {SEED}, tree {i}")
        rc, report, _ = run_depot("repo", "verify", repo, json_out=True)
        self.assertEqual(rc, 0, report)
        print(f"\nseed {SEED}: {COUNT} trees, {entries} entries, {names} distinct names")

    def test_random_trees_round_trip_through_a_site_and_an_agent(self):
        rng = random.Random(SEED + 1)
        site = SiteProcess(self.tmp)
        self.addCleanup(site.stop)
        site.cli("collection", "create", "all", "--rule", 'os == "linux"')
        agent = AgentProcess(site, self.tmp, "pc1")
        self.addCleanup(agent.stop)
        trees = {}
        for i in range(max(1, COUNT // 2)):
            src = self.path(f"src{i}")
            random_tree(src, rng)
            pkg = f"tree{i}"
            site.cli("package", "create", pkg, "--source", src, "--program", "install=true")
            site.cli("deploy", pkg, "--program", "install", "--to", "all", "--required")
            trees[pkg] = src
        code, err = agent.once()
        self.assertEqual(code, 0, err)
        for pkg, src in trees.items():
            got = os.path.join(agent.data, "content", pkg, "1")
            self.assertEqual(describe_tree(src), describe_tree(got), f"seed {SEED + 1}, {pkg}")

    def test_real_directories_package_install_and_update(self):
        # Copies of this machine's documentation and headers: the names, modes and
        # links real packages ship (a copy of /usr/share/doc/git failed on main).
        src = self.path("src")
        os.mkdir(src)
        copied = []
        for real in ["/usr/share/doc", "/usr/include/openssl", "/usr/include/linux", "/usr/include/CLI"]:
            if os.path.isdir(real):
                copy_real(real, os.path.join(src, real.strip("/").replace("/", "-")))
                copied.append(real)
        self.assertTrue(copied, "no real directory to copy on this machine")
        site = SiteProcess(self.tmp)
        self.addCleanup(site.stop)
        site.cli("collection", "create", "all", "--rule", 'os == "linux"')
        site.cli("package", "create", "real", "--source", src, "--program", "install=true")
        site.cli("deploy", "real", "--program", "install", "--to", "all", "--required")
        agent = AgentProcess(site, self.tmp, "pc1")
        self.addCleanup(agent.stop)
        code, err = agent.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(describe_tree(src), describe_tree(os.path.join(agent.data, "content/real/1")))

        # What an operator does next: the tree changes (a directory appears beside a
        # same-prefix file, a file becomes a directory, one goes away) and the package is
        # updated without repeating its programs.
        doc = os.path.join(src, "usr-share-doc")
        victim = sorted(n for n in os.listdir(doc) if os.path.isdir(os.path.join(doc, n))
                        and not os.path.islink(os.path.join(doc, n)))[0]
        write(os.path.join(doc, "a.txt"), b"file\n")
        write(os.path.join(doc, "a/b"), b"dir entry\n")
        write(os.path.join(doc, "a-b/c d/é.txt"), b"utf-8\n")
        shutil.rmtree(os.path.join(doc, victim))
        os.symlink("a", os.path.join(doc, victim))
        site.cli("package", "update", "real", "--source", src)
        code, err = agent.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(describe_tree(src), describe_tree(os.path.join(agent.data, "content/real/2")))
        self.assertEqual(agent.status()["installed"], {"real": 2})


if __name__ == "__main__":
    import unittest
    unittest.main()
