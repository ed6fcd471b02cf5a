"""An HTTP proxy in front of moto's S3 that misbehaves on purpose, on 127.0.0.1 only: a 500 for
some PUTs, a reply that never comes for some GETs, a PUT carried out whose reply is dropped."""

from __future__ import annotations

import contextlib
import http.client
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


class FaultProxy(BaseHTTPRequestHandler):
    """Forwards to ``target``. ``fail``: PUTs whose path holds it get a 500. ``stall``: GETs whose
    path holds it wait ``stall_seconds`` before any reply. ``drop``: PUTs whose path holds it are
    forwarded (S3 stores them) and then the connection closes without a reply, ``drops`` times."""

    target = fail = stall = drop = ""
    stall_seconds = 75.0
    drops = 1
    dropped = 0
    release = threading.Event()

    def _forward(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if self.command == "PUT" and self.fail and self.fail in self.path:
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.command == "GET" and self.stall and self.stall in self.path:
            type(self).release.wait(self.stall_seconds)  # the proxy's shutdown ends the wait
            self.close_connection = True
            return
        target = urlsplit(self.target)
        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        if self.command == "PUT" and self.drop and self.drop in self.path and type(self).dropped < self.drops:
            type(self).dropped += 1
            self.close_connection = True  # stored upstream; the caller never hears of it
            return
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection", "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_PUT = do_HEAD = do_DELETE = do_POST = _forward

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def fault_proxy(target: str, **faults) -> Iterator[str]:
    """The proxy's endpoint URL while the block runs; ``faults`` set FaultProxy's class fields."""
    handler = type("Proxy", (FaultProxy,), {"target": target, "dropped": 0, "release": threading.Event(), **faults})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        handler.release.set()
        server.shutdown()
        server.server_close()
