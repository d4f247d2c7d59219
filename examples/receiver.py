"""A webhook receiver for the demo: verifies GLPI's signature and prints what it got.

    python examples/receiver.py --port 8787 --secret SECRET --expect 4 --timeout 60
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--expect", type=int, default=0, help="exit after N requests")
    parser.add_argument("--timeout", type=float, default=60)
    parser.add_argument("--tolerance-s", type=int, default=300, help="GLPI's expiration delay")
    args = parser.parse_args()
    received = []
    done = threading.Event()
    printing = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            stamp = self.headers.get("X-GLPI-timestamp", "")
            expected = hmac.new(args.secret.encode(), body + stamp.encode(),
                                hashlib.sha256).hexdigest()
            valid = hmac.compare_digest(expected, self.headers.get("X-GLPI-signature", ""))
            fresh = stamp.isdigit() and abs(time.time() - int(stamp)) <= args.tolerance_s
            self.send_response(200 if valid and fresh else 401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            data = json.loads(body) if body.startswith((b"{", b"[")) else {}
            item = data.get("item", data)
            summary = item.get("name") or item.get("title") or item.get("content", "")[:50]
            with printing:
                print(f"  {'OK ' if valid and fresh else 'BAD'} signature  {self.command} "
                      f"{self.path}  event={data.get('event', '-')}  {summary!r}", flush=True)
                received.append(self.path)
            if args.expect and len(received) >= args.expect:
                done.set()

        def log_message(self, format: str, *a: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"receiver listening on 127.0.0.1:{args.port}", flush=True)
    done.wait(args.timeout)
    server.shutdown()
    print(f"receiver got {len(received)} request(s)", flush=True)
    return 0 if not args.expect or len(received) >= args.expect else 1


if __name__ == "__main__":
    sys.exit(main())
