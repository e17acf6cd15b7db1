"""A resuming socket client as its own process, for tests that `kill -9` it.

    python -m tests.delivery_client --url ws://…/ws/signals/ --token T --out ids.txt
    python -m tests.delivery_client --url ws://…/ws/ui/ --cookie sessionid=… --origin http://…
        --out ids.txt

Appends each signal id it receives to ``--out``, one line per id in the order received (one
``write`` per line, so a kill never leaves half a line). It reconnects 0.5 s after any drop with
``?since=<last id in the file>``, as a program (and dashboard.js, for ``/ws/ui/``) does; a
restarted client resumes from the file. It never drops a duplicate or reorders: the file is
exactly what the server sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
from pathlib import Path
from urllib.parse import urlencode

import websockets

# The dashboard's signal frames: a row swapped in on top of the live list.
UI_SIGNAL = re.compile(r'hx-swap-oob="afterbegin:#live-signals".*?data-signal-id="(\d+)"', re.S)


def last_id(path: Path) -> int:
    lines = path.read_text().split() if path.exists() else []
    return int(lines[-1]) if lines else 0


def signal_id(frame: str, *, ui: bool) -> int | None:
    if ui:
        match = UI_SIGNAL.search(frame)
        return int(match.group(1)) if match else None
    event = json.loads(frame)
    return event["id"] if event.get("event") == "signal" else None


async def run(args) -> None:
    ui = args.cookie is not None
    headers = {"Cookie": args.cookie, "Origin": args.origin} if ui else {}
    if args.token:
        headers["Authorization"] = f"Bearer {args.token}"
    out = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    since = last_id(args.out)
    while True:
        query = {"since": since} | ({"symbols": args.symbols} if args.symbols else {})
        try:
            async with websockets.connect(
                f"{args.url}?{urlencode(query)}", additional_headers=headers, open_timeout=5
            ) as ws:
                async for frame in ws:
                    got = signal_id(frame, ui=ui)
                    if got is not None:
                        os.write(out, f"{got}\n".encode())
                        since = got
        except (OSError, TimeoutError, websockets.WebSocketException):
            pass
        await asyncio.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--token")
    parser.add_argument("--symbols")
    parser.add_argument("--cookie")
    parser.add_argument("--origin")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
