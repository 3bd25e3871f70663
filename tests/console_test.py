"""The web console in a real headless Chromium (Debian's, driven by playwright-core)
against a real site, DP and agents.

Every test signs in, works through the pages the way an operator does, and ends
with no console error, exception or failed request in the page. Screenshots at
1280x800 (and one at phone width) are taken of each page; with
DEPOT_CONSOLE_SCREENSHOTS=DIR they are written there (docs/images/console is what
docs/console.md shows), else into the test's temp dir.
"""

import json
import os
import re
import signal
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import Browser, unavailable_reason  # noqa: E402
from harness import (AgentProcess, DepotTestCase, DpProcess, SiteProcess, free_port,  # noqa: E402
                     make_tree, site_with, wait_until)

MARKUP_NAME = '<img src=x onerror="window.__pwned=1"><b>kiosk</b>'


@unittest.skipIf(os.environ.get("DEPOT_SKIP_BROWSER") == "1", "DEPOT_SKIP_BROWSER=1")
class ConsoleTest(DepotTestCase):
    """One site for the whole class; the tests run in the order of their names."""

    @classmethod
    def setUpClass(cls):
        why = unavailable_reason()
        if why:
            raise AssertionError("the console tests need a browser: " + why)
        cls.tmpdir = tempfile.mkdtemp(prefix="depot-console-")
        cls.shots = os.environ.get("DEPOT_CONSOLE_SCREENSHOTS") or os.path.join(cls.tmpdir, "shots")
        os.makedirs(cls.shots, exist_ok=True)
        cls.site = site_with(cls.tmpdir, {"retry_base": "200ms", "dp_offline_after": "2s",
                                          "probe_base": "200ms", "probe_timeout": "1s"})
        cls.src = src = os.path.join(cls.tmpdir, "src")
        make_tree(src, big_mib=1)
        with open(os.path.join(src, "install.sh"), "w") as f:
            f.write("#!/bin/sh\necho installing demo\n")
        os.chmod(os.path.join(src, "install.sh"), 0o755)
        cls.site.cli("package", "create", "demo", "--source", src, "--program", "install=./install.sh",
                     "--description", "Demo <script>window.__pwned=1</script> package")
        cls.dp = DpProcess(cls.site, cls.tmpdir, "d1", groups=["berlin"], port=free_port())
        cls.site.cli("distribute", "demo", "--to", "d1")
        cls.dp.wait_state("demo", 1)
        # pc1 polls with long polls from the start; pc2 runs only when a test says.
        cls.pc1 = AgentProcess(cls.site, cls.tmpdir, "pc1")
        cls.pc1.start("--long-poll", "60s", "--poll-interval", "1s")
        cls.pc2 = AgentProcess(cls.site, cls.tmpdir, "pc2")
        code, err = cls.pc2.once()
        assert code in (0, 4), err
        wait_until(lambda: len(cls.site.cli("client", "list")["clients"]) == 2, "both agents enrolled")
        cls.readonly = cls.site.cli("token", "create", "--role", "read-only", "--name", "viewer")["token"]
        # A child site below this one (docs/hierarchy.md).
        token = cls.site.cli("child", "add", "B", "--all-packages")["token"]
        cls.child = SiteProcess(cls.tmpdir, "B", init_args=("--parent", cls.site.url, "--parent-token", token))
        cls.browser = Browser()

    @classmethod
    def tearDownClass(cls):
        cls.browser.close()
        for p in (cls.pc1, cls.dp, cls.child, cls.site):
            try:
                os.kill(p.proc.pid, signal.SIGCONT)
            except (ProcessLookupError, AttributeError):
                pass
            p.stop()

    def setUp(self):
        super().setUp()
        self.b = self.browser
        self.url = self.site.url + "/console/"

    def tearDown(self):
        problems = self.b.problems()
        self.assertEqual(problems, [], "the page logged errors")

    # -- helpers --------------------------------------------------------------

    def sign_in(self, token):
        """Signs out whoever is signed in (as a person does), then in with `token`."""
        self.b.goto(self.url)
        self.b.wait("#token, button:has-text('Sign out')")
        if self.b.count("button:has-text('Sign out')"):
            self.b.click("button", text="Sign out")
        self.b.wait("#token")
        self.b.fill("#token", token)
        self.b.press("Enter")
        self.b.wait("main h1", text="Overview")

    def open(self, route, heading):
        self.b.goto(self.url + "#/" + route)
        self.b.wait("main h1", text=heading)

    def shot(self, name):
        self.b.screenshot(os.path.join(self.shots, name + ".png"))

    # -- tests ------------------------------------------------------------------

    def test_01_sign_in_shows_the_overview_with_the_demo_package(self):
        self.b.goto(self.url)
        self.b.wait("#token")
        self.shot("sign-in")
        # A wrong token is refused with the site's reason, and nothing is kept.
        self.b.fill("#token", "depot_admin_" + "0" * 64)
        self.b.press("Enter")
        self.b.wait(".signin .error", text="refused")
        self.b.problems()  # the 401 of that attempt, logged by the browser
        self.assertIsNone(self.b.eval("sessionStorage.getItem('depot.token')"))
        self.sign_in(self.site.admin_token)
        self.b.wait("main a", text="demo")
        self.b.wait("main .cov", text="1/1 ready")
        self.assertIn("reachable", self.b.text("main section", text="Distribution points"))
        # The token is in this tab's sessionStorage, never in a cookie.
        self.assertEqual(self.b.eval("document.cookie"), "")
        self.assertEqual(self.b.eval("sessionStorage.getItem('depot.token')"), self.site.admin_token)
        self.shot("overview")

    def test_02_a_collection_from_a_rule_previews_its_clients_as_it_is_typed(self):
        self.sign_in(self.site.admin_token)
        self.open("collections", "Collections")
        self.b.fill("input[name=name]", "first")
        self.b.fill("textarea[name=rule]", 'name == "pc1"')
        self.b.wait(".preview [data-count='1']")
        self.b.wait(".preview a", text="pc1")
        self.b.fill("textarea[name=rule]", 'name in ["pc1", "pc2"]')
        self.b.wait(".preview [data-count='2']")
        # Half a rule is not an error of the page: the preview says what is missing.
        self.b.fill("textarea[name=rule]", 'name == ')
        self.b.wait(".preview .error", text="expected")
        self.b.fill("textarea[name=rule]", 'name == "pc1"')
        self.b.wait(".preview [data-count='1']")
        self.shot("collections")
        self.b.click("button", text="Create collection")
        self.b.wait("main td", text="first")
        col = {c["name"]: c for c in self.site.cli("collection", "list")["collections"]}["first"]
        self.assertEqual(col["members"], 1)

    def test_03_a_deployment_made_in_the_console_installs_and_its_bar_fills_live(self):
        self.sign_in(self.site.admin_token)
        self.open("package/demo", "Package")
        # The description's markup is text.
        self.assertIn("<script>", self.b.text("main .desc"))
        self.b.click("main a", text="Deploy this package")
        self.b.wait("main h1", text="New deployment")
        self.b.wait("select[name=program] option[value=install]", state="attached")
        self.b.select("select[name=collection]", "first")
        self.b.select("select[name=kind]", "required")
        self.shot("deploy")
        self.b.eval("window.__sameDocument = 'yes'")
        self.b.click("button", text="Deploy")
        self.b.wait("main h1", text="Deployment")
        # pc1 long-polls: it installs, and its reports move the bar to 100 % with no reload.
        self.b.wait(".bar[data-succeeded='100']", timeout_ms=120000)
        self.assertEqual(self.b.eval("window.__sameDocument"), "yes", "the page was reloaded")
        self.b.wait("dd[data-state='succeeded']", text="1")
        self.b.wait("main td a", text="pc1")
        # Any attribute the agents report can be a column.
        self.b.select("select[aria-label='Attribute column']", "os")
        self.b.wait("main th", text="os")
        self.b.wait("main tr:has-text('pc1') td", text="linux")
        dep = self.site.cli("deployment", "list")["deployments"][-1]
        self.assertEqual((dep["package"], dep["collection"], dep["kind"]), ("demo", "first", "required"))
        self.assertEqual(dep["clients"]["succeeded"], 1)
        self.shot("deployment")
        self.open("package/demo", "Package")
        self.b.wait("main td", text="26")  # nothing special: the page renders versions
        self.shot("package")

    def test_04_a_cancel_stops_a_second_agent_from_starting(self):
        self.site.cli("collection", "create", "second", "--rule", 'name == "pc2"')
        self.sign_in(self.site.admin_token)
        self.b.goto(self.url + "#/deployments/new?package=demo")
        self.b.wait("select[name=program] option[value=install]", state="attached")
        self.b.select("select[name=collection]", "second")
        self.b.select("select[name=kind]", "required")
        self.b.click("button", text="Deploy")
        self.b.wait("main h1", text="Deployment")
        self.b.click("button", text="Cancel deployment")
        self.b.click("button", text="Yes, cancel it")
        self.b.wait("main .titlebar .badge", text="cancelled")
        code, err = self.pc2.once()
        self.assertIn(code, (0, 4), err)
        self.assertIsNone(self.pc2.deployment("demo"), "pc2 started a cancelled deployment")
        self.assertFalse(os.path.exists(os.path.join(self.pc2.data, "content", "demo")))

    def test_05_a_stopped_dp_turns_unhealthy_on_the_dps_page(self):
        self.sign_in(self.site.admin_token)
        self.open("dps", "Distribution points")
        self.b.wait("[data-dp='d1'][data-health='reachable']")
        self.b.eval("window.__sameDocument = 'yes'")
        os.kill(self.dp.proc.pid, signal.SIGSTOP)
        try:
            self.b.wait("[data-dp='d1'][data-health='unreachable']", timeout_ms=60000)
            self.shot("dps")
        finally:
            os.kill(self.dp.proc.pid, signal.SIGCONT)
        self.b.wait("[data-dp='d1'][data-health='reachable']", timeout_ms=60000)
        self.assertEqual(self.b.eval("window.__sameDocument"), "yes", "the page was reloaded")
        self.open("dp/d1", "DP")
        self.b.wait("main td", text="ready")
        self.shot("dp")

    def test_06_a_read_only_token_sees_no_actions_and_a_forged_call_is_refused(self):
        self.sign_in(self.readonly)
        self.assertEqual(self.b.count("nav a[href='#/tokens']"), 0)
        for route, heading in (("package/demo", "Package"), ("deployment/1", "Deployment"), ("dps", "Distribution"),
                               ("collections", "Collections"), ("deployments", "Deployments")):
            self.open(route, heading)
            self.b.wait_for("document.querySelectorAll('main table, main .empty').length > 0")
            self.assertEqual(self.b.count("main form"), 0, route)
            self.assertEqual(self.b.count("main button"), 0, route)
            self.assertEqual(self.b.count("main a.button"), 0, route)
        status = self.b.eval("""fetch('/api/v1/deployments', {method: 'POST',
            headers: {Authorization: 'Bearer ' + sessionStorage.getItem('depot.token'),
                      'Content-Type': 'application/json'},
            body: JSON.stringify({package: 'demo', program: 'install', collection: 'first'})})
            .then(async r => [r.status, (await r.json()).error.message])""")
        self.assertEqual(status[0], 403)
        self.assertIn("read-only", status[1])
        status = self.b.eval("""fetch('/api/v1/packages/demo', {method: 'DELETE',
            headers: {Authorization: 'Bearer ' + sessionStorage.getItem('depot.token')}}).then(r => r.status)""")
        self.assertEqual(status, 403)
        problems = self.b.problems()
        self.assertTrue(all("403" in p for p in problems), problems)
        self.assertEqual(len(self.site.cli("deployment", "list")["deployments"]), 2)
        self.assertEqual(self.site.cli("package", "list")["packages"][0]["name"], "demo")

    def test_07_markup_in_a_client_name_renders_as_text(self):
        kiosk = AgentProcess(self.site, self.tmp, "kiosk")
        kiosk.first[kiosk.first.index("--name") + 1] = MARKUP_NAME
        code, err = kiosk.once()
        self.assertIn(code, (0, 4), err)
        self.sign_in(self.site.admin_token)
        self.open("clients", "Clients")
        self.b.wait("main td a", text="kiosk")
        self.assertEqual(self.b.text("main td a", text="kiosk"), MARKUP_NAME)
        self.assertEqual(self.b.count("main img"), 0)
        self.b.fill("main input[type=search]", "name=pc")
        self.b.wait("main p", text="2 of 3 clients")
        self.assertEqual(self.b.count("main td a:has-text('kiosk')"), 0)
        self.b.fill("main input[type=search]", "os=linux")
        self.b.wait("main p", text="3 of 3 clients")
        self.shot("clients")
        self.b.click("main td a", text="kiosk")
        self.b.wait("main h1", text="Client")
        self.assertIn(MARKUP_NAME, self.b.text("main h1"))
        self.assertEqual(self.b.count("main h1 img, main h1 b"), 0)
        self.assertIsNone(self.b.eval("window.__pwned"))
        self.shot("client")

    def test_08_messages_filter_and_link_to_their_subjects(self):
        self.sign_in(self.site.admin_token)
        self.open("messages", "Messages")
        self.b.wait("main td", text="installed package demo")
        self.b.fill("main input[aria-label=dp]", "d1")
        self.b.wait("main td a", text="DP d1")
        self.b.wait_for("[...document.querySelectorAll('main tbody tr')].every(r => r.textContent.includes('DP d1'))")
        self.shot("messages")
        self.b.fill("main input[aria-label=dp]", "")
        self.b.fill("main input[aria-label=client]", "no-such-client")
        self.b.wait("main .error", text="no-such-client")
        self.b.fill("main input[aria-label=client]", "")
        self.b.wait("main .error", state="hidden")
        # The 404s the site gave that filter (live updates may have asked again).
        problems = self.b.problems()
        self.assertTrue(problems and all("404" in p for p in problems), problems)
        self.b.fill("main input[aria-label=code]", "4006")
        self.b.wait("main td", text="installed package demo")
        self.b.click("main td a", text="deployment")
        self.b.wait("main h1", text="Deployment")

    def test_09_tokens_are_made_and_revoked_in_the_console(self):
        self.sign_in(self.site.admin_token)
        self.open("tokens", "Tokens")
        self.b.select("select[name=role]", "operator")
        self.b.fill("input[name=name]", "night shift")
        self.b.click("button", text="Create token")
        secret = self.b.text("pre.secret")
        self.assertTrue(secret.startswith("depot_operator_"), secret)
        status, _, _ = self.site.api("GET", "/api/v1/status", token=secret)
        self.assertEqual(status, 200)
        row = self.b.text("main tr", text="night shift")
        self.assertIn("active", row)
        # The token signed in has no Revoke button: the site would refuse it.
        self.assertEqual(self.b.count("main tr:has-text('initial admin') button"), 0)
        self.b.click("main tr:has-text('night shift') button", text="Revoke")
        self.b.click("main tr:has-text('night shift') button", text="Yes, revoke")
        self.b.wait("main tr", text="revoked")
        status, _, _ = self.site.api("GET", "/api/v1/status", token=secret)
        self.assertEqual(status, 401)

    def test_10_times_are_local_with_utc_on_hover_and_phone_width_reads(self):
        self.sign_in(self.site.admin_token)
        self.open("dps", "Distribution points")
        self.b.wait("main time")
        title, text = self.b.eval(
            "(() => { const t = document.querySelector('main time'); return [t.title, t.textContent]; })()")
        self.assertTrue(title.endswith(" UTC"), title)
        # The browser runs in Europe/Berlin: the shown time is an hour or two ahead.
        self.assertNotEqual(title[:16], text[:16])
        self.b.viewport(390, 844)
        try:
            self.open("", "Overview")
            self.b.wait("main a", text="demo")
            self.assertLessEqual(self.b.eval("document.documentElement.scrollWidth"), 391,
                                 "the page is wider than a phone")
            self.shot("overview-phone")
        finally:
            self.b.viewport(1280, 800)

    def test_11_every_page_is_usable_by_keyboard(self):
        self.sign_in(self.site.admin_token)
        self.b.click("button", text="Sign out")
        self.b.wait("#token")
        # The token field has the focus; Enter signs in.
        self.assertTrue(self.b.focused().startswith("input"), self.b.focused())
        self.b.eval(f"document.activeElement.value = {json.dumps(self.site.admin_token)}")
        self.b.press("Enter")
        self.b.wait("main h1", text="Overview")
        # After a page opens the focus is on its content: Tab walks into it, Shift+Tab
        # back to the navigation and the skip link before it.
        self.assertEqual(self.b.focused().split(":")[0], "main")
        seen = []
        for _ in range(20):
            self.b.press("Shift+Tab")
            seen.append(self.b.focused())
            if seen[-1] == "a:Skip to content":
                break
        self.assertIn("a:Messages", seen)
        self.assertEqual(seen[-1], "a:Skip to content", seen)
        for _ in range(20):
            self.b.press("Tab")
            if self.b.focused() == "a:DPs":
                break
        self.b.press("Enter")
        self.b.wait("main h1", text="Distribution points")
        self.b.wait("main td a", text="d1")
        self.b.press("Tab")
        self.assertEqual(self.b.focused(), "a:d1")
        self.b.press("Enter")
        self.b.wait("main h1", text="DP")

    def test_12_a_second_version_appears_live_with_its_new_and_reused_bytes(self):
        self.sign_in(self.site.admin_token)
        self.open("package/demo", "Package")
        self.b.wait("main tbody tr", text="active")
        self.b.eval("window.__sameDocument = 'yes'")
        # The operator's next step: edit one file, publish the next version.
        with open(os.path.join(self.src, "install.sh"), "a") as f:
            f.write("echo version two\n")
        self.site.cli("package", "update", "demo", "--source", self.src)
        v2 = [v for v in self.site.cli("package", "show", "demo")["versions"] if v["version"] == 2][0]
        self.assertGreater(v2["new_bytes"], 0)
        self.assertLess(v2["new_bytes"], v2["bytes"] // 10, "one edited file is a small part of the version")
        # The row of version 2 arrives without a reload: "New" is small, "Reused" the rest.
        rows = ("[...[...document.querySelectorAll('main section')].find(s => "
                "s.querySelector('h2').textContent === 'Versions').querySelectorAll('tbody tr')]")
        self.b.wait_for(f"{rows}.some(r => r.cells[0].textContent === '2' && r.cells[5].textContent.endsWith('B'))")
        cells = self.b.eval(f"[...{rows}.find(r => r.cells[0].textContent === '2').cells].map(c => c.textContent)")
        self.assertTrue(cells[5].endswith(" KiB") or cells[5].endswith(" B"), cells)
        self.assertTrue(cells[6].endswith(" MiB"), cells)
        self.assertEqual(self.b.eval("window.__sameDocument"), "yes", "the page was reloaded")

    def test_13_the_overview_shows_child_sites_with_their_link_health(self):
        self.sign_in(self.site.admin_token)
        self.b.wait("main section", text="Sites")
        self.b.wait("main section:has-text('Sites') tr", text="B")
        health = self.b.text("main section:has-text('Sites') tr:has-text('B') .badge")
        self.assertEqual(health, "active")
        # The child's own console says whose child it is; what it shows flowed down.
        self.b.goto(self.child.url + "/console/")
        self.b.wait("#token")
        self.b.fill("#token", self.child.admin_token)
        self.b.press("Enter")
        self.b.wait("#site", text="child of")
        self.b.wait("main a", text="demo", timeout_ms=60000)
        self.b.wait("main section", text="Sites")
        self.b.click("button", text="Sign out")

    def test_14_a_page_for_something_gone_says_so_and_a_bad_address_is_not_found(self):
        self.sign_in(self.site.admin_token)
        self.b.goto(self.url + "#/deployment/999")
        self.b.wait("#problem", text="no deployment 999")
        self.b.goto(self.url + "#/package/%E0%A4%A")
        self.b.wait("main h1", text="Not found")
        self.assertEqual(self.b.eval("document.getElementById('problem').hidden"), True)
        self.b.goto(self.url + "#/dps")
        self.b.wait("main h1", text="Distribution points")
        self.b.wait("main td a", text="d1")
        # Only the 404s of the missing deployment (a live update may have asked again).
        problems = self.b.problems()
        self.assertTrue(problems and all("404" in p for p in problems), problems)

    def test_15_a_dp_added_in_the_console_gets_its_token_once_and_is_removed_there(self):
        self.sign_in(self.site.admin_token)
        self.open("dps", "Distribution points")
        self.b.fill("input[name=name]", "d2")
        self.b.fill("input[name=url]", "http://127.0.0.1:9")
        self.b.fill("input[name=groups]", "hamburg, floor-2")
        self.b.click("button", text="Add DP")
        token = self.b.text("pre.secret")
        self.assertTrue(token.startswith("depot_dp_"), token)
        self.assertIn(token, self.b.text("main code"), "the dp serve command carries it")
        status, body, _ = self.site.api("GET", "/api/v1/dp/trust", token=token)
        self.assertEqual(status, 200, body)
        self.b.wait("main td a", text="d2")
        # Distribute to a group of it, from the package page.
        self.open("package/demo", "Package")
        self.b.click("label.check", text="group hamburg")
        self.b.click("button", text="Distribute")
        self.b.wait("main p.ok", text="group:hamburg")
        targets = self.site.cli("package", "show", "demo")["distributed_to"]
        self.assertIn({"kind": "group", "name": "hamburg"}, targets)
        self.b.wait("main ul.dpstates a", text="d2")
        # Removing asks first; then its token stops working.
        self.open("dp/d2", "DP")
        self.b.click("button", text="Remove DP")
        self.b.click("button", text="Yes, remove d2")
        self.b.wait("main h1", text="Distribution points")
        self.assertNotIn("d2", [d["name"] for d in self.site.cli("dp", "list")["dps"]])
        status, _, _ = self.site.api("GET", "/api/v1/dp/trust", token=token)
        self.assertEqual(status, 401)

    def test_16_a_deployment_with_windows_and_a_deadline_is_made_as_typed(self):
        self.sign_in(self.site.admin_token)
        self.b.goto(self.url + "#/deployments/new?package=demo")
        self.b.wait("select[name=program] option[value=install]", state="attached")
        self.b.select("select[name=collection]", "second")
        # The deadline is typed in the browser's time (Europe/Berlin): 2030-01-15 10:30.
        self.b.fill("input[name=deadline]", "2030-01-15T10:30")
        self.b.fill("input[name=windows]", "22:00+4h@Asia/Kolkata, 3am")
        self.b.click("button", text="Deploy")
        self.b.wait("main .error", text="3am")
        self.b.fill("input[name=windows]", "22:00+4h@Asia/Kolkata, 03:00+90m")
        self.b.click("button", text="Deploy")
        self.b.wait("main h1", text="Deployment")
        dep = self.site.cli("deployment", "list")["deployments"][-1]
        shown = self.site.cli("deployment", "show", str(dep["id"]))
        self.assertEqual(shown["deadline"], "2030-01-15T09:30:00Z", "10:30 in Berlin is 09:30 UTC")
        self.assertEqual([(w["start"], w["duration_s"], w["tz"]) for w in shown["windows"]],
                         [("22:00", 4 * 3600, "Asia/Kolkata"), ("03:00", 90 * 60, "UTC")])
        self.assertEqual(shown["kind"], "required")

    def test_17_a_package_is_deleted_only_by_typing_its_name(self):
        scratch = os.path.join(self.tmp, "scratch")
        make_tree(scratch, big_mib=1)
        self.site.cli("package", "create", "scratch", "--source", scratch, "--program", "install=true")
        self.sign_in(self.site.admin_token)
        self.open("package/scratch", "Package")
        self.b.fill("form[aria-label='Delete package'] input", "scratc")
        self.b.click("button", text="Delete package")
        self.b.wait("form[aria-label='Delete package'] .error", text="Type scratch exactly")
        self.assertIn("scratch", [p["name"] for p in self.site.cli("package", "list")["packages"]])
        self.b.fill("form[aria-label='Delete package'] input", "scratch")
        self.b.click("button", text="Delete package")
        self.b.wait("main h1", text="Packages")
        self.assertNotIn("scratch", [p["name"] for p in self.site.cli("package", "list")["packages"]])

if __name__ == "__main__":
    unittest.main()
