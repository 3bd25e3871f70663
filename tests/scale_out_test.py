"""Scale-out (docs/scale-out.md): one site served by several `site serve` processes on
one PostgreSQL catalog and one content library. Processes are killed at the named
crash points, during long polls and while holding background leases: the survivors
finish the work, versions stay contiguous, no status message is lost or doubled, and
DPs and agents given several --site URLs (or a balancer) carry on."""
import os
import threading

from cluster import Balancer, SiteCluster
from harness import (AgentProcess, DepotTestCase, DpProcess, HERE, SiteProcess, describe_tree, free_port, make_tree,
                     metric, new_postgres_catalog, run_depot, site_root_json, wait_until)

KILLED = -9


def crash_env(point):
    return dict(os.environ, DEPOT_CRASH_AT=point)


class ScaleOutTest(DepotTestCase):
    def setUp(self):
        super().setUp()
        # gc_grace 8s: housekeeping (and its lease) every 2 s.
        self.cluster = SiteCluster(self.tmp, n=3, settings={"gc_grace": "8s"})
        self.addCleanup(self.cluster.stop)
        self.a, self.b, self.c = self.cluster.nodes
        self.src = self.path("src")
        make_tree(self.src, seed=41, big_mib=2)

    def edit(self, text):
        with open(os.path.join(self.src, "src/mod0/file0.txt"), "ab") as f:
            f.write(text.encode())

    def versions(self, node):
        return [v["version"] for v in node.cli("package", "show", "tools")["versions"]]

    def assert_contiguous_with_one_message_each(self, node):
        versions = sorted(self.versions(node))
        self.assertEqual(versions, list(range(versions[0], versions[-1] + 1)), versions)
        created = [m for m in node.cli("messages", "--code", "1001", "--limit", "1000")["messages"]]
        per_version = {}
        for m in created:
            v = m.get("version")
            per_version[v] = per_version.get(v, 0) + m.get("count", 1)
        for v in range(1, versions[-1] + 1):
            self.assertEqual(per_version.get(v), 1, f"version {v}: {created}")
        return versions[-1]

    def no_reservation_left(self):
        return self.cluster.query("SELECT COUNT(*) FROM versions WHERE state = 'publishing'") == [["0"]]

    def spread_dps_and_agents(self):
        """Two DPs and three agents, each given every process, a different one first."""
        a, b, c = self.a, self.b, self.c
        a.cli("package", "create", "tools", "--source", self.src, "--program", "install=true")
        b.cli("collection", "create", "all", "--rule", 'os == "linux"')
        dps = []
        for name, first in (("dp1", a), ("dp2", c)):
            # Registered through `first`, which it is given first; then the others.
            dp = DpProcess(first, self.tmp, name, port=free_port(),
                           extra=["--retry-base", "1s", *self.cluster.site_flags(first)])
            self.addCleanup(dp.stop)
            dps.append(dp)
        b.cli("distribute", "tools", "--to", "dp1", "--to", "dp2")
        agents = []
        for i, first in enumerate((a, b, c)):
            ag = AgentProcess(first, self.tmp, f"pc{i}",
                              extra=["--poll-interval", "1", "--retry-base", "1s", *self.cluster.site_flags(first)])
            ag.start()
            self.addCleanup(ag.stop)
            agents.append(ag)
        b.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        return dps, agents

    def test_kills_at_every_crash_point_leave_the_survivors_finishing_the_work(self):
        a, b, c = self.a, self.b, self.c
        # Uploads through a, admin calls through b, DPs and agents spread over all three.
        dps, agents = self.spread_dps_and_agents()

        # kill -9 of the uploading process at each named point; the survivors finish.
        uploader = [a, b, c]
        for i, point in enumerate(["site.version_reserved", "tuf.before_timestamp", "site.version_signed"]):
            with self.subTest(point=point):
                node = uploader[i]
                survivor = uploader[(i + 1) % 3]
                node.stop()
                node.restart(env=crash_env(point))
                self.edit(f"{point}\n")
                code, _, _ = node.cli("package", "update", "tools", "--source", self.src, check=False)
                self.assertNotEqual(code, 0)
                self.assertEqual(node.wait_exit(), KILLED, f"{node.name} did not reach {point}")
                # A survivor resolves what the dead process left once its lease lapses.
                wait_until(self.no_reservation_left, f"reservation of {point} resolved", timeout=30)
                latest = self.assert_contiguous_with_one_message_each(survivor)
                if latest != i + 2:
                    # Not signed before the kill: nothing of it shows; the update again.
                    self.assertEqual(survivor.cli("package", "update", "tools", "--source", self.src)["version"],
                                     i + 2)
                self.assertEqual(self.assert_contiguous_with_one_message_each(survivor), i + 2)
                node.restart()

        # kill -9 during long polls: dp1's assignment poll is parked at a.
        a.stop(sig=9)
        self.edit("while a is dead\n")
        self.assertEqual(b.cli("package", "update", "tools", "--source", self.src)["version"], 5)
        for dp in dps:
            dp.site = b  # where the test asks about it
            dp.wait_state("tools", 5, timeout=60)
        a.restart()

        self.kill_the_housekeeping_lease_holder()

        # Every agent installs the newest version, each message once.
        self.assert_installed_everywhere_with_each_message_once(agents, 5)

    def kill_the_housekeeping_lease_holder(self):
        """kill -9 of the process holding the background leases: another takes them."""
        def holder():
            rows = self.cluster.query(
                "SELECT l.holder, p.url FROM leases l JOIN site_processes p ON p.id = l.holder "
                "WHERE l.name = 'housekeeping' AND l.expires_at > "
                "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)")
            live = {n.url: n for n in self.cluster.nodes if n.alive()}
            return (rows[0][0], live[rows[0][1]]) if rows and rows[0][1] in live else None
        held_by, owner = wait_until(holder, "the housekeeping lease held by a live process", timeout=30)
        owner.stop(sig=9)
        wait_until(lambda: (holder() or (held_by,))[0] != held_by, "the housekeeping lease taken over",
                   timeout=30)
        owner.restart()

    def assert_installed_everywhere_with_each_message_once(self, agents, version):
        b = self.b
        for ag in agents:
            ag.wait(lambda s: s["installed"] == {"tools": version}, f"version {version} installed", timeout=90)
        self.assertEqual(self.assert_contiguous_with_one_message_each(b), version)
        for ag in agents:
            msgs = b.cli("messages", "--client", ag.client(), "--code", "4006", "--limit", "1000")["messages"]
            versions = [m.get("version") for m in msgs]
            self.assertEqual(len(versions), len(set(versions)), msgs)
            self.assertTrue(all(m.get("count", 1) == 1 for m in msgs), msgs)
            self.assertIn(version, versions)
        # The library verifies whole.
        code, report, _ = run_depot("repo", "verify", os.path.join(self.cluster.data, "library"), json_out=True,
                                    check=False)
        self.assertEqual(code, 0, report)

    def test_two_updates_at_once_through_two_processes_are_two_signed_versions(self):
        self.a.cli("package", "create", "tools", "--source", self.src, "--program", "install=true")
        results = {}
        srcs = {}
        for node in (self.a, self.b):
            srcs[node.name] = self.path("src-" + node.name)
            make_tree(srcs[node.name], seed=ord(node.name), big_mib=2)

        def update(node):
            results[node.name] = node.cli("package", "update", "tools", "--source", srcs[node.name])
        threads = [threading.Thread(target=update, args=(n,)) for n in (self.a, self.b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(sorted(r["version"] for r in results.values()), [2, 3])
        self.assertEqual(self.assert_contiguous_with_one_message_each(self.c), 3)
        # Both are signed: an independent TUF client (tuf-js) walks the metadata from c.
        root = site_root_json(self.c, self.path("root.json"))
        for r in results.values():
            import subprocess
            p = subprocess.run(["node", os.path.join(HERE, "node", "tuf_conformance.mjs"), self.c.url + "/repo",
                                root, r["target"]], capture_output=True, text=True, timeout=120)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn(r["manifest_id"], p.stdout)
        # And each version's content is what its process uploaded.
        for node in (self.a, self.b):
            version = results[node.name]["version"]
            dest = self.path("fetched-" + node.name)
            run_depot("repo", "fetch", self.c.url + "/repo", "--package", "tools", "--version", str(version),
                      "--dest", dest, "--trust", root)
            self.assertEqual(describe_tree(srcs[node.name]), describe_tree(dest))

    def test_a_change_through_one_process_reaches_caches_and_long_polls_of_another(self):
        a, b = self.a, self.b
        a.cli("package", "create", "tools", "--source", self.src, "--program", "install=true")
        # A DP that knows only b, long-polling there for up to two minutes.
        dp = DpProcess(b, self.tmp, "dp1", port=free_port(), extra=["--poll-wait", "120s"])
        self.addCleanup(dp.stop)
        wait_until(lambda: metric(b.url, "depot_site_http_long_polls") == 1, "the DP's poll parked at b")
        # Assigned through a: the parked poll at b wakes (well before its two minutes).
        a.cli("distribute", "tools", "--to", "dp1")
        dp.wait_state("tools", 1, timeout=60)
        dp.stop()
        # An idle agent that knows only b, its poll held there up to 100 s (and polling
        # hourly otherwise): a deployment made through a reaches it at once.
        a.cli("collection", "create", "all", "--rule", 'os == "linux"')
        ag = AgentProcess(b, self.tmp, "pc1", extra=["--poll-interval", "3600", "--long-poll", "100s"])
        ag.start()
        self.addCleanup(ag.stop)
        wait_until(lambda: metric(b.url, "depot_site_http_long_polls") == 1, "the agent's poll held at b")
        a.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        ag.wait(lambda s: s["installed"] == {"tools": 1}, "installed through a change made at a", timeout=60)
        # A token b has cached stops working there as soon as a revokes it.
        token = a.cli("token", "create", "--role", "read-only")
        status, _, _ = b.api("GET", "/api/v1/packages", token=token["token"])
        self.assertEqual(status, 200)
        a.cli("token", "revoke", str(token["id"]))
        # b's cache would keep the entry 5 s: refused sooner, the notification did it.
        wait_until(lambda: b.api("GET", "/api/v1/packages", token=token["token"])[0] == 401,
                   "the revocation reached b's token cache", timeout=4)

    def test_agents_and_dps_behind_a_balancer_carry_on_when_a_process_dies(self):
        a, b = self.a, self.b
        balancer = Balancer(self.tmp, [a.url, b.url])
        self.addCleanup(balancer.stop)
        a.cli("package", "create", "tools", "--source", self.src, "--program", "install=true")
        a.cli("collection", "create", "all", "--rule", 'os == "linux"')
        # The site tells DPs and agents the balancer's address, as an operator's would.
        front = SiteNodeView(a, balancer.url)
        dp = DpProcess(front, self.tmp, "dp1", port=free_port(), extra=["--retry-base", "1s"])
        self.addCleanup(dp.stop)
        ag = AgentProcess(front, self.tmp, "pc1", extra=["--poll-interval", "1", "--retry-base", "1s"])
        ag.start()
        self.addCleanup(ag.stop)
        a.cli("distribute", "tools", "--to", "dp1")
        a.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        ag.wait(lambda s: s["installed"] == {"tools": 1}, "version 1 installed", timeout=60)
        a.stop(sig=9)
        self.edit("behind the balancer\n")
        self.assertEqual(b.cli("package", "update", "tools", "--source", self.src)["version"], 2)
        dp.site = b
        dp.wait_state("tools", 2, timeout=60)
        ag.wait(lambda s: s["installed"] == {"tools": 2}, "version 2 installed through b", timeout=60)


class ChildClusterTest(DepotTestCase):
    def active(self, node):
        code, out, _ = node.cli("package", "show", "tools", check=False)
        return sorted(v["version"] for v in out.get("versions", []) if v.get("state") == "active") if code == 0 else []

    def test_a_child_site_of_two_processes_keeps_its_link_when_its_holder_dies(self):
        top = SiteProcess(self.tmp, code="TOP")
        self.addCleanup(top.stop)
        token = top.cli("child", "add", "KID")["token"]
        child = SiteCluster(self.tmp, n=2, code="KID", init_args=["--parent", top.url, "--parent-token", token])
        self.addCleanup(child.stop)
        src = self.path("src")
        make_tree(src, seed=61, big_mib=1)
        top.cli("package", "create", "tools", "--source", src, "--program", "install=true")
        top.cli("distribute", "tools", "--to", "child:KID")
        for node in child.nodes:
            wait_until(lambda: self.active(node) == [1], f"v1 active at child process {node.name}", timeout=60)
        # One process drives the link: the lease's holder.
        rows = child.query("SELECT p.url FROM leases l JOIN site_processes p ON p.id = l.holder "
                           "WHERE l.name = 'parent_link'")
        self.assertEqual(len(rows), 1, rows)
        holder = [n for n in child.nodes if n.url == rows[0][0]][0]
        survivor = [n for n in child.nodes if n is not holder][0]
        holder.stop(sig=9)
        with open(os.path.join(src, "src/mod0/file0.txt"), "ab") as f:
            f.write(b"after the link holder died\n")
        self.assertEqual(top.cli("package", "update", "tools", "--source", src)["version"], 2)
        # The survivor takes the lease once it lapses and brings version 2.
        wait_until(lambda: 2 in self.active(survivor), "v2 active at the surviving child process", timeout=60)
        code, report, _ = run_depot("repo", "verify", os.path.join(child.data, "library"), json_out=True,
                                    check=False)
        self.assertEqual(code, 0, report)


class MigrateDbTest(DepotTestCase):
    # What every admin command answers, to compare before and after the move.
    COMMANDS = [("package", "list"), ("package", "show", "tools"), ("dp", "list"), ("dp", "show", "dp1"),
                ("client", "list"), ("collection", "list"), ("deployment", "list"), ("token", "list"),
                ("status",)]

    def answers(self, site):
        out = {" ".join(c): site.cli(*c) for c in self.COMMANDS}
        # The admin token is used by these very commands: its last use moves on.
        for t in out["token list"]["tokens"]:
            for k in [k for k in t if k.startswith("last_used")]:
                del t[k]
        out["messages"] = site.cli("messages", "--limit", "1000")["messages"]
        return out

    def test_a_site_moved_to_postgresql_answers_every_admin_command_as_before(self):
        site = SiteProcess(self.tmp, code="MIG", sqlite=True)
        self.addCleanup(site.stop)
        src = self.path("src")
        make_tree(src, seed=51, big_mib=1)
        site.cli("package", "create", "tools", "--source", src, "--program", "install=true")
        site.cli("collection", "create", "all", "--rule", 'os == "linux"')
        dp = DpProcess(site, self.tmp, "dp1", port=free_port())
        site.cli("distribute", "tools", "--to", "dp1")
        dp.wait_state("tools", 1)
        agent = AgentProcess(site, self.tmp, "pc1")
        site.cli("deploy", "tools", "--program", "install", "--to", "all", "--required")
        code, err = agent.once()
        self.assertEqual(code, 0, err)
        dp.stop()
        # Restarted: what the site kept in memory (last seen times) is in the catalog.
        listen = site.url.split("://", 1)[1]
        site.stop()
        site.start(["--listen", listen])
        target = new_postgres_catalog()
        # Refused while the site runs, naming it; nothing switched.
        code, out, _ = run_depot("site", "migrate-db", "--data", site.data, "--to", target, check=False,
                                 json_out=True)
        self.assertNotEqual(code, 0)
        self.assertIn("the site is running", out["error"]["message"])
        before = self.answers(site)
        site.stop()
        _, report, _ = run_depot("site", "migrate-db", "--data", site.data, "--to", target, json_out=True)
        self.assertTrue(report["verified"])
        self.assertGreater(report["tables"]["messages"], 0)
        with open(os.path.join(site.data, "site.toml")) as f:
            self.assertIn("[catalog]", f.read())
        site.db = target
        site.start(["--listen", listen])
        after = self.answers(site)
        # The restart posts its own "site started" message; everything before is identical.
        after["messages"] = [m for m in after["messages"] if m["id"] <= max(x["id"] for x in before["messages"])]
        for key in before:
            self.assertEqual(before[key], after[key], key)
        # New rows continue after the copied ones, and the site works on.
        with open(os.path.join(src, "src/mod0/file0.txt"), "ab") as f:
            f.write(b"after the move\n")
        self.assertEqual(site.cli("package", "update", "tools", "--source", src)["version"], 2)
        code, err = agent.once()
        self.assertEqual(code, 0, err)
        self.assertEqual(agent.status()["installed"], {"tools": 2})
        # A second move is refused: the catalog is in PostgreSQL now.
        site.stop()
        code, out, _ = run_depot("site", "migrate-db", "--data", site.data, "--to", new_postgres_catalog(),
                                 check=False, json_out=True)
        self.assertNotEqual(code, 0)
        self.assertIn("already in PostgreSQL", out["error"]["message"])


class SiteNodeView:
    """A site process seen through another URL (the balancer): what DpProcess and
    AgentProcess need of a site."""

    def __init__(self, node, url):
        self.node = node
        self.url = url
        self.ca = ""

    def cli(self, *args, **kwargs):
        return self.node.cli(*args, **kwargs)
