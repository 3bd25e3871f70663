#!/usr/bin/env bash
# A guided tour of the individual commands: build depot, make a sample source
# tree, turn it into a signed package version in a local repository, serve the
# repository over HTTP, fetch + verify + materialise it elsewhere, then change the
# source and show that the update stores and transfers only the changed chunks;
# then a site server, a DP and an agent as separate processes driven by the admin
# CLI (`depot up` runs the same three in one process).
#   scripts/tour.sh [WORKDIR]     (default: ./demo)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/build.sh" depot
depot="$root/build/src/cli/depot"
work="${1:-$root/demo}"
rm -rf "$work"
mkdir -p "$work"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "sample source tree: $work/source"
python3 - "$work/source" <<'PY'
import os, random, sys
root = sys.argv[1]
rng = random.Random(7)
words = "install verify chunk manifest depot site agent policy deploy status".split()
def write(path, data, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f: f.write(data)
    os.chmod(path, mode)
for i in range(300):
    write(f"{root}/doc/part{i % 10}/page{i}.txt",
          " ".join(rng.choice(words) for _ in range(rng.randint(50, 3000))).encode())
write(f"{root}/bin/app", rng.randbytes(24 << 20), 0o755)
write(f"{root}/install.sh", b"#!/bin/sh\necho installing $DEPOT_PACKAGE $DEPOT_VERSION\n", 0o755)
os.symlink("bin/app", f"{root}/app")
PY
du -sh "$work/source"

say "depot repo init $work/repo"
"$depot" repo init "$work/repo"

say "depot repo add: version 1"
"$depot" repo add "$work/repo" --package sample --source "$work/source" \
  --program install=./install.sh --description "depot demo package"

say "serve the repository's public tree with a plain web server"
port_file="$work/http.port"
python3 -c '
import http.server, functools, sys
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
class Quiet(h.func):
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=sys.argv[1]))
open(sys.argv[2], "w").write(str(srv.server_address[1]))
srv.serve_forever()' "$work/repo/repo" "$port_file" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
for _ in $(seq 50); do [[ -s "$port_file" ]] && break; sleep 0.1; done
url="http://127.0.0.1:$(cat "$port_file")"
echo "serving $work/repo/repo at $url"

say "depot repo fetch: verify through TUF and materialise version 1"
"$depot" repo fetch "$url" --package sample --dest "$work/installed-v1" \
  --trust "$work/repo/repo/metadata/root.json" --cache "$work/cache"
diff -r "$work/source" "$work/installed-v1" >/dev/null && echo "installed-v1 equals the source, byte for byte"

say "edit the source (one page rewritten, 4 KiB changed inside the binary)"
echo "a new page" > "$work/source/doc/part0/page0.txt"
python3 -c '
import os, sys
with open(sys.argv[1], "r+b") as f:
    f.seek(10 << 20); f.write(os.urandom(4096))' "$work/source/bin/app"

say "depot repo add: version 2 stores only the changed chunks"
"$depot" repo add "$work/repo" --package sample --source "$work/source" --program install=./install.sh

say "depot repo fetch: version 2 transfers only the changed chunks"
"$depot" repo fetch "$url" --package sample --dest "$work/installed-v2" \
  --trust "$work/repo/repo/metadata/root.json" --cache "$work/cache"

say "depot repo list / verify"
"$depot" repo list "$work/repo"
"$depot" repo verify "$work/repo"

say "a site server: depot site init + serve (SQLite catalog, local content library)"
"$depot" --json site init --data "$work/site" --code DEMO --listen 127.0.0.1:0 >"$work/site-init.json"
"$depot" --json site serve --data "$work/site" >"$work/site.out" 2>"$work/site.log" &
site=$!
trap 'kill $server $site 2>/dev/null' EXIT
for _ in $(seq 100); do [[ -s "$work/site.out" ]] && break; sleep 0.1; done
DEPOT_SITE=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["url"])' "$work/site.out")
DEPOT_TOKEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["admin_token"])' "$work/site-init.json")
export DEPOT_SITE DEPOT_TOKEN
echo "site DEMO serving at $DEPOT_SITE (admin token in $work/site-init.json)"

say "depot package create: snapshot locally, upload the chunks the site lacks, sign"
"$depot" package create sample --source "$work/source" --program install=./install.sh

say "edit the source again; depot package update uploads only the changed chunk"
echo "another new page" > "$work/source/doc/part1/page1.txt"
"$depot" package update sample --source "$work/source" --program install=./install.sh

say "a DP (depot dp serve), a collection and a required deployment"
dp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
dp_token=$("$depot" --json dp add dp1 --url "http://127.0.0.1:$dp_port" --group eu --boundary 127.0.0.0/8 |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
"$depot" --json dp serve --data "$work/dp1" --site "$DEPOT_SITE" --token "$dp_token" \
  --listen "127.0.0.1:$dp_port" >"$work/dp1.out" 2>"$work/dp1.log" &
dp=$!
trap 'kill $server $site $dp 2>/dev/null' EXIT
echo "DP dp1 serving $work/dp1/repo at http://127.0.0.1:$dp_port (group eu, boundary 127.0.0.0/8)"
"$depot" distribute sample --to eu
"$depot" collection create linux --rule 'os == "linux"'
"$depot" deploy sample --program install --to linux --required --deadline +1d
for _ in $(seq 300); do
  "$depot" --json dp show dp1 | python3 -c 'import json,sys; v=json.load(sys.stdin)["versions"]; sys.exit(0 if v and all(r["state"] == "ready" for r in v) else 1)' && break
  sleep 0.2
done
"$depot" dp show dp1

say "an agent: enroll, poll, download from the DP (verified), install, report"
enroll=$("$depot" --json token create --role enroll --uses 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
"$depot" agent run --data "$work/agent" --site "$DEPOT_SITE" --enroll-token "$enroll" --name demo-pc --once
"$depot" agent status --data "$work/agent"
echo "installed files: $(find "$work/agent/content/sample" -type f | wc -l) under $work/agent/content/sample"

say "depot status / messages"
"$depot" status
"$depot" deployment list
"$depot" messages
say "done: everything is under $work"
