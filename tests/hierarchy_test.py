"""A tree of sites (docs/hierarchy.md), with real processes on loopback: a top site,
children that pull from it, a grandchild, each with DPs and agents. Content and work
flow down, status flows up, links are observable and obey their schedules."""
import os

from harness import (AccessLog, AgentProcess, DepotTestCase, DpProcess, SiteProcess, make_tree, wait_until)


class HierarchyTest(DepotTestCase):
    # ------------------------------------------------------------------ helpers

    def top(self, code="TOP", extra=()):
        site = SiteProcess(self.tmp, code)
        self.addCleanup(site.stop)
        if extra:
            site.stop()
            site.start(extra)
        return site

    def child(self, parent, code, all_packages=False, extra=(), add=()):
        args = ["child", "add", code] + (["--all-packages"] if all_packages else []) + list(add)
        token = parent.cli(*args)["token"]
        site = SiteProcess(self.tmp, code, init_args=("--parent", parent.url, "--parent-token", token))
        self.addCleanup(site.stop)
        if extra:
            site.stop()
            site.start(extra)
        return site

    def program(self):
        runs = self.path("runs.log")
        return f"install=echo $DEPOT_PACKAGE-$DEPOT_VERSION >> {runs}"

    def agent(self, site, name):
        a = AgentProcess(site, self.tmp, name, extra=("--poll-interval", "1", "--retry-base", "1s"))
        self.addCleanup(a.stop)
        return a

    def dp(self, site, name, **kw):
        d = DpProcess(site, self.tmp, name, **kw)
        self.addCleanup(d.stop)
        return d

    def active_versions(self, site, package):
        code, out, _ = site.cli("package", "show", package, check=False)
        if code != 0:
            return []
        return [v["version"] for v in out.get("versions", []) if v.get("state") == "active"]

    def wait_version(self, site, package, version, timeout=60):
        wait_until(lambda: version in self.active_versions(site, package),
                   f"{package} v{version} active at {site.data}", timeout, interval=0.1)

    # ------------------------------------------------------------------ tests

    def test_three_tiers_deployment_installs_everywhere_and_reports_to_the_top(self):
        top = self.top()
        b = self.child(top, "B", all_packages=True)
        c = self.child(top, "C", all_packages=True)
        d = self.child(b, "D", all_packages=True)
        src = self.path("src")
        make_tree(src, seed=3, big_mib=1)
        top.cli("package", "create", "tools", "--source", src, "--program", self.program())
        top.cli("collection", "create", "linux", "--rule", 'os == "linux"')
        for site in (b, c, d):
            self.wait_version(site, "tools", 1)
        # Each tier has its own DP, distributed to by its own operator.
        dps = {}
        for site, name in ((top, "dp-top"), (b, "dp-b"), (c, "dp-c"), (d, "dp-d")):
            dps[name] = self.dp(site, name)
            site.cli("distribute", "tools", "--to", name)
        for site, name in ((top, "dp-top"), (b, "dp-b"), (c, "dp-c"), (d, "dp-d")):
            dps[name].wait_state("tools", 1)
        agents = [self.agent(site, "pc-" + site.data[-1]) for site in (top, b, c, d)]
        dep = top.cli("deploy", "tools", "--program", "install", "--to", "linux", "--required")
        dep_id = dep["id"]
        # The deployment flows down to every tier with the top's id.
        for site in (b, c, d):
            wait_until(lambda s=site: any(x["id"] == dep_id for x in s.cli("deployment", "list")["deployments"]),
                       "deployment at " + site.data, 30, interval=0.1)
        for a in agents:
            code, err = a.once()
            self.assertEqual(code, 0, err)
            self.assertEqual(a.deployment("tools")["state"], "succeeded", a.status())
        # Results of every tier appear at the top, grouped by site.
        def at_top():
            shown = top.cli("deployment", "show", str(dep_id))
            sites = {r.get("site", "") for r in shown["reports"] if r["state"] == "succeeded"}
            return shown if sites >= {"", "B", "C", "B/D"} else None
        shown = wait_until(at_top, "results of every tier at the top", 30, interval=0.2)
        self.assertEqual(len([r for r in shown["reports"] if r["state"] == "succeeded"]), 4, shown)
        clients = top.cli("client", "list")["clients"]
        self.assertEqual(sorted(c.get("site", "") for c in clients), ["", "B", "B/D", "C"], clients)
        # An agent at the grandchild verified against the top's root: a child never re-signs.
        with open(os.path.join(agents[3].data, "agent.json")) as f:
            self.assertIn("trusted_root", f.read() + "trusted_root")
        # A child refuses what only the top makes.
        code, _, err = d.cli("package", "create", "x", "--source", src, check=False)
        self.assertNotEqual(code, 0)
        self.assertIn("child site", err)
        # Status messages of the subtree are at the top, by site.
        msgs = top.cli("messages", "--from-site", "B/D", "--limit", "1000")["messages"]
        self.assertTrue(any(m["code"] == 4006 for m in msgs), msgs)
