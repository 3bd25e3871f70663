#!/usr/bin/env python3
"""STREAMS console change streams (GET /api/v1/changes long polls, as every open
console tab holds one) against one site, measured from outside the site.

  console_streams.py URL ADMIN_TOKEN READ_TOKEN STREAMS CHANGES IDLE_S SITE_PID [RELOAD]

Opens STREAMS keep-alive connections (spread over source addresses 127.0.0.2...,
250 per address, as tabs on many machines would be), parks one poll on each, then:
- idle: the site's RSS and CPU (from /proc) over IDLE_S seconds with every poll parked;
- CHANGES times: makes one change (POST /api/v1/tokens) and records when each
  stream's answer arrives; each stream polls again at once. The figure per change is
  the time from sending the change to the answer at the last stream.
With RELOAD=1 each stream, as a tab on the overview does, also loads
GET /api/v1/status after each answer before it polls again; the figure is then the
time to the last tab's reloaded overview as well. Prints one JSON object. Arrival times are taken by this Python process as it reads
each answer, so at 1000 streams they include its own reading time (an upper bound).
"""

import asyncio
import json
import os
import re
import statistics
import sys
import time
import urllib.request

URL, ADMIN, READ = sys.argv[1], sys.argv[2], sys.argv[3]
STREAMS, CHANGES, IDLE_S, PID = (int(a) for a in sys.argv[4:8])
RELOAD = len(sys.argv) > 8 and sys.argv[8] == "1"
HOST, PORT = re.match(r"http://([^:/]+):(\d+)", URL).groups()
TICK = os.sysconf("SC_CLK_TCK")


def api(method, path, token, body=None):
    req = urllib.request.Request(URL + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def parked():
    with urllib.request.urlopen(URL + "/metrics", timeout=60) as r:
        m = re.search(rb"^depot_site_http_long_polls (\d+)", r.read(), re.M)
        return int(m.group(1)) if m else 0


def proc_cpu_s():
    with open(f"/proc/{PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rss_kib():
    with open(f"/proc/{PID}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


class Stream:
    def __init__(self, i, since, arrivals, reloads):
        self.i, self.since, self.arrivals, self.reloads = i, since, arrivals, reloads

    async def get(self, target):
        self.w.write((f"GET {target} HTTP/1.1\r\nHost: {HOST}\r\n"
                      f"Authorization: Bearer {READ}\r\n\r\n").encode())
        head = await self.r.readuntil(b"\r\n\r\n")
        n = int(re.search(rb"content-length: *(\d+)", head, re.I).group(1))
        return json.loads(await self.r.readexactly(n))

    async def run(self):
        src = f"127.0.0.{2 + self.i // 250}"
        self.r, self.w = await asyncio.open_connection(HOST, int(PORT), local_addr=(src, 0))
        while True:
            body = await self.get(f"/api/v1/changes?since={self.since}&wait=120")
            if body["changed"]:
                self.arrivals.append(time.monotonic())
                if RELOAD:
                    await self.get("/api/v1/status")
                    self.reloads.append(time.monotonic())
            self.since = body["revision"]


async def wait_parked(n, what):
    deadline = time.monotonic() + 120
    while parked() < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"{what}: only {parked()} of {n} polls parked")
        await asyncio.sleep(0.02)


async def main():
    since = api("GET", "/api/v1/whoami", READ)["revision"]
    rss0 = proc_rss_kib()
    arrivals, reloads = [], []
    tasks = [asyncio.create_task(Stream(i, since, arrivals, reloads).run()) for i in range(STREAMS)]
    await wait_parked(STREAMS, "start")
    cpu0, t0 = proc_cpu_s(), time.monotonic()
    await asyncio.sleep(IDLE_S)
    idle_cpu = (proc_cpu_s() - cpu0) / (time.monotonic() - t0)
    rss = proc_rss_kib()
    last, first, reloaded = [], [], []
    loop = asyncio.get_running_loop()
    for c in range(CHANGES):
        arrivals.clear()
        reloads.clear()
        start = time.monotonic()
        await loop.run_in_executor(None, api, "POST", "/api/v1/tokens", ADMIN,
                                   {"role": "read-only", "name": f"bench change {c}"})
        while len(arrivals) < STREAMS or (RELOAD and len(reloads) < STREAMS):
            await asyncio.sleep(0.001)
        last.append((max(arrivals) - start) * 1000)
        if RELOAD:
            reloaded.append((max(reloads) - start) * 1000)
        first.append((min(arrivals) - start) * 1000)
        await wait_parked(STREAMS, f"change {c}")
    for t in tasks:
        t.cancel()
    q = statistics.quantiles(last, n=100) if len(last) > 1 else last * 99
    extra = {}
    if RELOAD:
        rq = statistics.quantiles(reloaded, n=100) if len(reloaded) > 1 else reloaded * 99
        extra = {"reloaded_p50_ms": round(statistics.median(reloaded), 2), "reloaded_p99_ms": round(rq[98], 2)}
    print(json.dumps({**extra, "streams": STREAMS, "rss_before_kib": rss0, "rss_kib": rss,
                      "idle_cpu_s_per_s": round(idle_cpu, 4),
                      "first_p50_ms": round(statistics.median(first), 2),
                      "last_p50_ms": round(statistics.median(last), 2),
                      "last_p99_ms": round(q[98], 2), "changes": CHANGES}))


asyncio.run(main())
