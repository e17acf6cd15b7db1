"""Minimal receiver for ScalpSignal's webhook alerts: a starting point for an execution
system that takes signals over HTTP. Standard library only. It checks each request's
X-Scalp-Signature (HMAC-SHA256 of the body with your secret; 401 when it doesn't match),
answers 200 at once, prints each new signal as one JSON line, and drops repeats by
X-Scalp-Delivery: alerts are sent at least once, so the same signal can come twice (after a
timeout or a restart). The ids it has seen are kept in a small file, so a restart of this
receiver still knows them (docs/alerts.md).

    SCALP_ALERT_SECRET=your-secret python examples/alert_receiver.py --port 9000
    python manage.py destinations add webhook http://127.0.0.1:9000/ --secret your-secret
"""

import argparse
import hashlib
import hmac
import json
import os
import sys
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 64 * 1024  # a signal is a few hundred bytes
REMEMBER = 10_000  # delivery ids kept (far more than 24 h of retries can bring back)


class Seen:
    """The delivery ids already handled: a set in memory, one id per line in a file."""

    def __init__(self, path: Path, keep: int = REMEMBER) -> None:
        self.path, self.keep = path, keep
        self.ids: deque[str] = deque(maxlen=keep)
        if path.exists():
            self.ids.extend(line for line in path.read_text().split() if line)
        self.known = set(self.ids)
        self.lines = len(self.ids)
        self.lock = threading.Lock()

    def add(self, delivery: str) -> None:
        if len(self.ids) == self.keep:
            self.known.discard(self.ids[0])
        self.ids.append(delivery)
        self.known.add(delivery)
        with self.path.open("a") as file:
            file.write(delivery + "\n")
            file.flush()
            os.fsync(file.fileno())  # written before the 200: a crash can't forget it
        self.lines += 1
        if self.lines > 2 * self.keep:  # rewrite the file with the newest ids only
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text("".join(i + "\n" for i in self.ids))
            os.replace(tmp, self.path)
            self.lines = len(self.ids)


def verified(secret: bytes, body: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), (header or "").encode())


def make_handler(secret: bytes, seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # one line per signal on stdout is all we print

        def answer(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            length = self.headers.get("Content-Length", "").strip()
            if not (length.isascii() and length.isdigit()) or int(length) > MAX_BODY:
                self.close_connection = True  # the body, if any, is left unread
                too_big = length.isascii() and length.isdigit()
                return self.answer(413 if too_big else 411, "bad Content-Length")
            body = self.rfile.read(int(length))
            if not verified(secret, body, self.headers.get("X-Scalp-Signature")):
                return self.answer(401, "bad signature")  # the sender won't retry a 4xx
            delivery = self.headers.get("X-Scalp-Delivery", "").strip()
            if not delivery or len(delivery) > 64 or not delivery.isprintable():
                return self.answer(400, "no X-Scalp-Delivery")
            with seen.lock:  # one request at a time decides "new or repeat"
                if delivery in seen.known:
                    return self.answer(200, "already had it")
                try:
                    signal = json.loads(body)
                except ValueError:
                    return self.answer(400, "body is not JSON")
                # Act on the signal here, quickly (or queue it for another thread): the
                # sender waits for this answer and gives up after 5 s. Printed first and
                # remembered after, a crash between the two prints it again on the resend
                # (at least once); remember first for at most once.
                print(json.dumps(signal, separators=(",", ":")), flush=True)
                seen.add(delivery)
            self.answer(200, "ok")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--secret", help="the destination's secret (or SCALP_ALERT_SECRET)")
    parser.add_argument("--seen", type=Path, default=Path("alert_receiver_seen.txt"),
                        help="file of the delivery ids already handled")  # fmt: skip
    args = parser.parse_args()
    secret = args.secret or os.environ.get("SCALP_ALERT_SECRET", "")
    if not secret:
        parser.exit(2, "Give the secret: --secret S or SCALP_ALERT_SECRET=S\n")
    server = ThreadingHTTPServer(
        (args.host, args.port), make_handler(secret.encode(), Seen(args.seen))
    )
    print(
        f"# listening on http://{args.host}:{server.server_address[1]}/",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
