#!/usr/bin/env python3
"""Bench fixture for the site: N enrolled clients with deployments targeting them.

  site_fixture.py populate DATA_DIR N OUT_DIR   (site stopped) adds N clients, their
      agent tokens and membership of the collection `all` straight into the catalog,
      and writes OUT_DIR/tokens.txt (one token per line). Enrolling 100k clients
      through the API costs one durable commit each (minutes); how clients got there
      does not matter to what is measured, which is the policy path.
  site_fixture.py populate-pg CONNINFO N OUT_DIR   the same into a PostgreSQL catalog
      (COPY; a million clients in well under a minute).
  site_fixture.py enroll ENROLL_TOKEN N CONC URL...   N agents enrolling at once (CONC
      requests in flight, spread over the URLs); prints rate and latency percentiles.
  site_fixture.py etags URL OUT_DIR K           (site running) polls the first K clients
      once and writes OUT_DIR/polls.lua (tokens and ETags for wrk) and prints the
      policy size.
  site_fixture.py agents URL OUT_DIR AGENTS INTERVAL SECONDS   simulates AGENTS agents,
      each on its own keep-alive connection polling every INTERVAL s (jittered) with
      If-None-Match; prints poll latency percentiles.
"""
import asyncio
import hashlib
import json
import os
import random
import secrets
import sqlite3
import sys
import time
import http.client
import urllib.parse


def populate(data_dir, n, out_dir):
    db = sqlite3.connect(os.path.join(data_dir, "catalog.db"))
    now = int(time.time() * 1000)
    col = db.execute("SELECT id FROM collections WHERE name = 'all'").fetchone()
    if col is None:
        sys.exit("create the collection `all` first")
    col = col[0]
    tokens = []
    with db:
        for i in range(n):
            uid = secrets.token_hex(16)
            name = f"pc{i:06d}"
            attrs = json.dumps({"address": "10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255),
                                "arch": "x86_64", "name": name, "os": "linux"}, separators=(",", ":"), sort_keys=True)
            cur = db.execute("INSERT INTO clients (uid, name, attributes, address, enrolled_at, last_seen_at, attributes_at)"
                             " VALUES (?, ?, ?, ?, ?, ?, ?)", (uid, name, attrs, "10.0.0.1", now, now, now))
            cid = cur.lastrowid
            token = "depot_agent_" + secrets.token_hex(32)
            db.execute("INSERT INTO tokens (kind, name, secret_hash, subject_id, created_at) VALUES ('agent', ?, ?, ?, ?)",
                       ("client " + name, hashlib.sha256(token.encode()).hexdigest(), cid, now))
            db.execute("INSERT INTO collection_members (collection_id, client_id) VALUES (?, ?)", (col, cid))
            tokens.append(token)
    with open(os.path.join(out_dir, "tokens.txt"), "w") as f:
        f.write("\n".join(tokens) + "\n")


def psql(conninfo, *args, stdin=None):
    import subprocess
    return subprocess.run(["psql", conninfo, "-v", "ON_ERROR_STOP=1", "-At", *args], check=True,
                          capture_output=True, text=True, input=stdin).stdout.strip()


def populate_pg(conninfo, n, out_dir):
    now = int(time.time() * 1000)
    col = psql(conninfo, "-c", "SELECT id FROM collections WHERE name = 'all'")
    if not col:
        sys.exit("create the collection `all` first")
    first_client = int(psql(conninfo, "-c", "SELECT COALESCE(MAX(id), 0) + 1 FROM clients"))
    first_token = int(psql(conninfo, "-c", "SELECT COALESCE(MAX(id), 0) + 1 FROM tokens"))
    paths = {k: os.path.join(out_dir, k + ".tsv") for k in ("clients", "tokens", "members")}
    tokens = []
    with open(paths["clients"], "w") as c, open(paths["tokens"], "w") as t, open(paths["members"], "w") as m:
        for i in range(n):
            cid, tid = first_client + i, first_token + i
            name = f"pc{i:07d}"
            attrs = json.dumps({"address": "10.%d.%d.%d" % (i >> 16 & 255, i >> 8 & 255, i & 255),
                                "arch": "x86_64", "name": name, "os": "linux"}, separators=(",", ":"), sort_keys=True)
            c.write(f"{cid}\t{secrets.token_hex(16)}\t{name}\t{attrs}\t10.0.0.1\t{now}\t{now}\t{now}\n")
            token = "depot_agent_" + secrets.token_hex(32)
            t.write(f"{tid}\tagent\tclient {name}\t{hashlib.sha256(token.encode()).hexdigest()}\t{cid}\t{now}\n")
            m.write(f"{col}\t{cid}\n")
            tokens.append(token)
    psql(conninfo,
         "-c", f"\\copy clients (id, uid, name, attributes, address, enrolled_at, last_seen_at, attributes_at) "
               f"FROM '{paths['clients']}'",
         "-c", f"\\copy tokens (id, kind, name, secret_hash, subject_id, created_at) FROM '{paths['tokens']}'",
         "-c", f"\\copy collection_members (collection_id, client_id) FROM '{paths['members']}'",
         "-c", "SELECT setval(pg_get_serial_sequence('clients', 'id'), (SELECT MAX(id) FROM clients))",
         "-c", "SELECT setval(pg_get_serial_sequence('tokens', 'id'), (SELECT MAX(id) FROM tokens))",
         "-c", "ANALYZE")
    with open(os.path.join(out_dir, "tokens.txt"), "w") as f:
        f.write("\n".join(tokens) + "\n")


async def enroll(token, n, conc, urls):
    sem = asyncio.Semaphore(conc)
    latencies = []
    errors = []
    parsed = [urllib.parse.urlparse(u) for u in urls]

    async def one(i):
        u = parsed[i % len(parsed)]
        body = json.dumps({"name": f"storm{i:05d}", "attributes": {"os": "linux", "arch": "x86_64"}}).encode()
        async with sem:
            t0 = time.monotonic()
            reader, writer = await asyncio.open_connection(u.hostname, u.port)
            writer.write((f"POST /api/v1/agent/enroll HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                          "Connection: close\r\n\r\n").encode() + body)
            await writer.drain()
            status_line = await reader.readline()
            await reader.read()
            writer.close()
            latencies.append(time.monotonic() - t0)
            status = int(status_line.split()[1]) if status_line else 0
            if status != 201 and status != 200:
                errors.append(status)

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    wall = time.monotonic() - t0
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
    print(json.dumps({"enrolled": n - len(errors), "errors": len(errors), "wall_s": round(wall, 2),
                      "per_s": round(n / wall, 1), "p50_ms": round(pct(0.5), 1), "p99_ms": round(pct(0.99), 1)}))


def connect(url):
    u = urllib.parse.urlparse(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def etags(url, out_dir, k):
    tokens = open(os.path.join(out_dir, "tokens.txt")).read().split()[:k]
    conn = connect(url)
    tags = []
    size = 0
    for t in tokens:
        conn.request("GET", "/api/v1/agent/policy", headers={"Authorization": "Bearer " + t})
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            sys.exit(f"policy poll answered {r.status}: {body[:200]}")
        tags.append(r.getheader("ETag"))
        size = len(body)
        last = body
    with open(os.path.join(out_dir, "policy.json"), "wb") as f:
        f.write(last)
    with open(os.path.join(out_dir, "polls.lua"), "w") as f:
        f.write("tokens = {\n" + ",\n".join('"%s"' % t for t in tokens) + "}\n")
        f.write("etags = {\n" + ",\n".join("'%s'" % e for e in tags) + "}\n")
        f.write("""
local n = #tokens
local conditional = os.getenv("POLL_MODE") ~= "full"
request = function()
  local i = math.random(n)
  local h = {["Authorization"] = "Bearer " .. tokens[i]}
  if conditional then h["If-None-Match"] = etags[i] end
  return wrk.format("GET", "/api/v1/agent/policy", h)
end
local threads = {}
setup = function(thread) table.insert(threads, thread) end
bad = 0
response = function(status, headers, body)
  if (conditional and status ~= 304) or (not conditional and status ~= 200) then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + t:get("bad") end
  io.write(string.format("unexpected_status %d\\n", total))
end
""")
    print(size)


async def agents(url, out_dir, count, interval, seconds):
    tokens = open(os.path.join(out_dir, "tokens.txt")).read().split()[:count]
    u = urllib.parse.urlparse(url)
    latencies = []
    errors = 0
    stop_at = time.monotonic() + seconds

    async def agent(token):
        nonlocal errors
        reader, writer = await asyncio.open_connection(u.hostname, u.port)
        etag = None
        await asyncio.sleep(random.random() * interval)
        while time.monotonic() < stop_at:
            req = f"GET /api/v1/agent/policy HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            if etag:
                req += f"If-None-Match: {etag}\r\n"
            t0 = time.monotonic()
            writer.write((req + "\r\n").encode())
            await writer.drain()
            status_line = await reader.readline()
            headers = {}
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                k, _, v = line.decode().partition(":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get("content-length", "0"))
            if n:
                await reader.readexactly(n)
            latencies.append(time.monotonic() - t0)
            status = int(status_line.split()[1])
            if status == 200:
                etag = headers.get("etag")
            elif status != 304:
                errors += 1
            await asyncio.sleep(interval * (0.8 + 0.4 * random.random()))
        writer.close()

    await asyncio.gather(*(agent(t) for t in tokens))
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000
    print(json.dumps({"agents": count, "polls": len(latencies), "errors": errors,
                      "p50_ms": round(pct(0.5), 2), "p99_ms": round(pct(0.99), 2), "max_ms": round(latencies[-1] * 1000, 2)}))


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "populate":
        populate(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "populate-pg":
        populate_pg(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif cmd == "enroll":
        asyncio.run(enroll(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5:]))
    elif cmd == "etags":
        etags(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "agents":
        asyncio.run(agents(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])))
    else:
        sys.exit(__doc__)
