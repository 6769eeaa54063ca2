"""An independent RFC 3161 time-stamping authority for tests: `openssl ts -reply` behind a
tiny HTTP server on 127.0.0.1.

usage: tsa_server.py TSA_CONFIG [PORT]
Prints the port it listens on (first line of stdout) once it accepts connections.
`openssl ts -reply` rewrites its serial file, so requests are answered one at a time.
With TSA_ARRIVALS set, the time each request arrives (Unix seconds) is appended to that file,
a line each, before it is answered: tests check rate budgets with it.
"""
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time

CONFIG = sys.argv[1]
LOCK = threading.Lock()
ARRIVALS = os.environ.get("TSA_ARRIVALS")
ARRIVALS_LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        if ARRIVALS:
            with ARRIVALS_LOCK, open(ARRIVALS, "a") as f:
                f.write(f"{time.time():.6f}\n")
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with LOCK, tempfile.TemporaryDirectory() as work:
            query = os.path.join(work, "query.tsq")
            reply = os.path.join(work, "reply.tsr")
            with open(query, "wb") as f:
                f.write(body)
            done = subprocess.run(
                ["openssl", "ts", "-reply", "-config", CONFIG, "-queryfile", query, "-out", reply],
                capture_output=True,
            )
            if done.returncode != 0:
                message = done.stderr or b"openssl ts failed"
                self.send_response(500)
                self.send_header("Content-Length", str(len(message)))
                self.end_headers()
                self.wfile.write(message)
                return
            with open(reply, "rb") as f:
                data = f.read()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


# An optional second argument: the port (a restarted TSA comes back where it was).
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
