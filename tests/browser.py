"""A real headless Chromium for console tests, driven through playwright-core.

tests/node/browser.mjs runs the browser; this class sends it one JSON request per
line and reads one answer per line. Waits use the browser's own waiting (for an
element, for a condition), never a sleep here.
"""

import json
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")


class BrowserError(AssertionError):
    pass


def unavailable_reason():
    """Why no browser test can run here (None when one can)."""
    chromium = os.environ.get("DEPOT_CHROMIUM", "/usr/bin/chromium")
    if not os.path.exists(chromium):
        return f"{chromium} is missing: scripts/install-deps.sh --test installs Debian's chromium"
    if shutil.which("node") is None:
        return "node is missing: scripts/install-deps.sh --test installs it"
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "playwright-core")):
        return "playwright-core is missing: scripts/install-deps.sh --test installs it (npm ci in tests/node)"
    return None


class Browser:
    """One browser page. Every method raises BrowserError with the browser's message."""

    def __init__(self, timeout_ms=20000):
        self.timeout_ms = timeout_ms
        self.proc = subprocess.Popen(
            ["node", os.path.join(NODE_DIR, "browser.mjs")], cwd=NODE_DIR,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        first = self.proc.stdout.readline()
        if not first or not json.loads(first).get("ready"):
            self.proc.kill()
            raise BrowserError("the browser did not start: " + first)

    def _call(self, op, **args):
        if op not in ("goto", "eval", "problems", "screenshot", "viewport", "press", "count",
                      "reload", "focused"):
            args.setdefault("timeout", self.timeout_ms)
        self.proc.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise BrowserError(f"the browser exited during {op}")
        answer = json.loads(line)
        if not answer["ok"]:
            raise BrowserError(f"{op} {args}: {answer['error']}")
        return answer["result"]

    def goto(self, url): return self._call("goto", url=url)
    def reload(self): return self._call("reload")
    def viewport(self, width, height): return self._call("viewport", width=width, height=height)
    def eval(self, js): return self._call("eval", js=js)
    def click(self, selector, text=None): return self._call("click", selector=selector, text=text)
    def fill(self, selector, value): return self._call("fill", selector=selector, value=value)
    def select(self, selector, value): return self._call("select", selector=selector, value=value)
    def press(self, key): return self._call("press", key=key)
    def text(self, selector, text=None): return self._call("text", selector=selector, text=text)
    def count(self, selector): return self._call("count", selector=selector)
    def html(self, selector, text=None): return self._call("html", selector=selector, text=text)
    def focused(self): return self._call("focused")
    def screenshot(self, path, full_page=False):
        return self._call("screenshot", path=path, full_page=full_page)
    def problems(self): return self._call("problems")

    def wait(self, selector, text=None, state="visible", timeout_ms=None):
        return self._call("wait", selector=selector, text=text, state=state,
                          timeout=timeout_ms or self.timeout_ms)

    def wait_for(self, js, timeout_ms=None):
        """Waits until the JavaScript expression `js` is truthy in the page."""
        return self._call("wait_fn", js=js, timeout=timeout_ms or self.timeout_ms)

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "close"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
