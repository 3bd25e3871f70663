"""An HTTP server for fault injection: serves a repository's public tree like any
web server, but misbehaves on chunk requests in one chosen way.

  python3 fault_server.py ROOT PORT MODE

MODE: corrupt (flip one byte), truncate (close mid-body), endless (stream forever),
missing (404), ok (behave), corrupt-first (corrupt the first response for each chunk,
then behave), stall (send headers, then nothing), stall-after-N (serve the first N chunk requests,
then stall: a fetch that can never finish), missing-version (404 for targets/
and chunks/: the source lacks every version). With FAULT_LOG set, every request
path is appended to that file. Chunks are any path with a "chunks/" component (the tree may be
served under a prefix such as repo/). Prints "ready" on stdout once listening.
"""
import http.server
import os
import socketserver
import sys

import threading

ROOT, PORT, MODE = sys.argv[1], int(sys.argv[2]), sys.argv[3]
LOCK = threading.Lock()
SEEN = set()
STOP = threading.Event()
LOG = os.environ.get("FAULT_LOG", "")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        rel = self.path.lstrip("/").split("?")[0]
        if LOG:
            with LOCK, open(LOG, "a") as f:
                f.write(rel + "\n")
        if ".." in rel.split("/"):
            self.send_error(400)
            return
        full = os.path.join(ROOT, rel)
        is_chunk = rel.startswith("chunks/") or "/chunks/" in rel
        mode = MODE
        if MODE == "corrupt-first":
            with LOCK:
                mode = "ok" if rel in SEEN else "corrupt"
                SEEN.add(rel)
        if is_chunk and mode == "missing":
            self.send_error(404)
            return
        if mode == "missing-version" and (is_chunk or rel.startswith("targets/") or "/targets/" in rel):
            self.send_error(404)
            return
        if is_chunk and mode.startswith("stall-after-"):
            with LOCK:
                SEEN.add(rel)
                mode = "ok" if len(SEEN) <= int(mode[len("stall-after-"):]) else "stall"
        if is_chunk and mode == "stall" and os.path.isfile(full):
            self.send_response(200)
            self.send_header("Content-Length", str(os.path.getsize(full)))
            self.end_headers()
            self.wfile.flush()
            STOP.wait(600)
            return
        if is_chunk and mode == "endless":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            block = b"\x28\xb5\x2f\xfd" + b"A" * 65532
            try:
                while True:
                    self.wfile.write(block)
            except (BrokenPipeError, ConnectionResetError):
                return
        if not os.path.isfile(full):
            self.send_error(404)
            return
        with open(full, "rb") as f:
            body = f.read()
        if is_chunk and mode == "corrupt" and body:
            body = bytearray(body)
            body[len(body) // 2] ^= 0x01
            body = bytes(body)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        if is_chunk and mode == "truncate":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


if __name__ == "__main__":
    srv = Server(("127.0.0.1", PORT), Handler)
    print("ready", flush=True)
    srv.serve_forever()
