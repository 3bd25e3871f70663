"""`depot up`: a site, a DP and an agent in one process; --demo pushes a sample
package through them. A second run reuses the data and moves only changed chunks."""
import json
import os
import urllib.request
import signal
import subprocess
import unittest

from harness import DEPOT, DepotTestCase, describe_tree, run_depot, wait_until


class UpTest(DepotTestCase):
    def up(self, data, *extra):
        log = open(self.path(f"up-{len(os.listdir(self.tmp))}.log"), "w")
        self.addCleanup(log.close)
        p = subprocess.Popen([DEPOT, "--json", "up", "--data", data, "--listen", "127.0.0.1:0", *extra],
                             stdout=subprocess.PIPE, stderr=log, text=True)
        self.addCleanup(lambda: (p.poll() is None and p.kill(), p.wait(), p.stdout.close()))
        return p

    def events(self, p, until):
        """JSON lines up to and including the first whose event is `until`."""
        seen = []
        for line in p.stdout:
            e = json.loads(line)
            seen.append(e)
            if e["event"] == until:
                return seen
        self.fail(f"depot up ended (exit {p.wait()}) before a {until} event: {seen}")

    def stop(self, p):
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(60), 0)
        p.stdout.close()

    def test_demo_installs_then_a_second_run_updates_with_only_changed_chunks(self):
        data = self.path("up")
        p = self.up(data, "--demo")
        first = self.events(p, "result")
        up = first[0]
        self.assertEqual(up["event"], "up")
        result = first[-1]
        self.assertEqual((result["state"], result["version"], result["exit_code"]), ("succeeded", 1, 0), first)
        self.assertIn("installing sample version 1", result["output"])
        source = os.path.join(data, "demo", "source")
        self.assertEqual(describe_tree(source), describe_tree(result["installed"]))
        self.assertEqual(result["bytes_fetched"], result["bytes"], "a cold install fetches everything")
        states = [e["state"] for e in first if e["event"] == "agent"]
        self.assertEqual(states[-1], "succeeded")
        self.assertIn("ready", [e["state"] for e in first if e["event"] == "dp"])
        # The admin CLI works against it with the printed token.
        env = dict(os.environ, DEPOT_SITE=up["url"], DEPOT_TOKEN=up["admin_token"])
        status = run_depot("status", json_out=True, env=env)[1]
        self.assertEqual([c["name"] for c in status.get("offline_clients", [])], [])
        # The console is at the address it prints (its pages: tests/console_test.py).
        self.assertEqual(up["console"], up["url"] + "/console/")
        with urllib.request.urlopen(up["console"]) as r:
            self.assertEqual(r.headers["Content-Type"], "text/html; charset=utf-8")
            self.assertIn(b"depot console", r.read())
        self.stop(p)

        # Second run: same data, a changed source, an update that moves a few chunks.
        p = self.up(data, "--demo")
        second = self.events(p, "result")
        self.assertNotEqual(second[0]["admin_token"], "")
        self.assertEqual(second[0]["admin_token"], up["admin_token"], "the same site, reused")
        result = second[-1]
        self.assertEqual((result["state"], result["version"], result["exit_code"]), ("succeeded", 2, 0), second)
        self.assertEqual(describe_tree(source), describe_tree(result["installed"]))
        # The agent records the success (which the result reports) and then removes the
        # previous version's content.
        wait_until(lambda: not os.path.exists(os.path.join(data, "agent", "content", "sample", "1")),
                   "version 1's content removed after version 2 succeeded")
        self.assertLess(result["uploaded_chunks"], 10, result)
        self.assertLess(result["bytes_fetched"], 1 << 20, result)
        self.assertGreater(result["bytes_from_cache"], 20 << 20, result)
        self.stop(p)

    def test_without_demo_it_serves_and_an_operator_can_deploy_to_its_agent(self):
        data = self.path("up")
        p = self.up(data, "--poll-interval", "1")
        up = self.events(p, "up")[0]
        env = dict(os.environ, DEPOT_SITE=up["url"], DEPOT_TOKEN=up["admin_token"])
        src = self.path("src")
        os.makedirs(src)
        with open(os.path.join(src, "hello.txt"), "w") as f:
            f.write("hello\n")
        run_depot("package", "create", "hello", "--source", src, "--program", "install=cat hello.txt", env=env)
        run_depot("distribute", "hello", "--to", "local", env=env)
        run_depot("deploy", "hello", "--program", "install", "--to", "this-machine", "--required", env=env)
        wait_until(lambda: [d["state"] for d in run_depot("agent", "status", "--data", up["agent"],
                                                           json_out=True)[1]["deployments"]] == ["succeeded"],
                   "the deployment succeeded on the agent", interval=0.2)
        wait_until(lambda: [(v["package"], v["state"]) for v in run_depot("dp", "show", "local", json_out=True,
                                                                          env=env)[1]["versions"]] == [("hello", "ready")],
                   "hello ready on the local DP", interval=0.2)
        self.stop(p)


if __name__ == "__main__":
    unittest.main()
