"""Minimal external consumer of ScalpSignal's signal feed: a starting point for an execution
system. Connects with the feed token, resumes after the last signal id it saw (kept in a small
state file), prints each signal as one JSON line, and reconnects when the connection drops
(at once after 4008, "you fell behind"); it stops on a refused or rotated token or a bad URL
(close codes: docs/delivery.md).

    pip install websockets
    python examples/signal_consumer.py --token "$(python manage.py feedtoken)"
"""

import argparse
import asyncio
import contextlib
import json
import os
from pathlib import Path

import websockets

# Closes that reconnecting with the same URL and token can't fix.
FATAL_CLOSES = {4400: "the URL is wrong", 4403: "the feed token was rotated; use the new one"}


def save_last_id(state: Path, last_id: int) -> None:
    """Atomically: a crash mid-write must not leave an empty file (that would replay all)."""
    tmp = state.with_suffix(".tmp")
    tmp.write_text(str(last_id))
    os.replace(tmp, state)


async def consume(url: str, token: str, state: Path) -> None:
    # A few bytes per signal: blocking file I/O is fine here; use your own store in production.
    last_id = int(state.read_text()) if state.exists() else 0  # noqa: ASYNC240
    while True:
        try:
            async with websockets.connect(
                f"{url}?since={last_id}", additional_headers={"Authorization": f"Bearer {token}"}
            ) as ws:
                async for frame in ws:
                    event = json.loads(frame)
                    if event["event"] == "signal" and event["id"] > last_id:
                        print(json.dumps(event), flush=True)  # act on the signal here
                        last_id = event["id"]
                        save_last_id(state, last_id)
        except websockets.InvalidStatus as err:
            if err.response.status_code == 403:
                raise SystemExit("# refused with HTTP 403: check --token") from None
            print(f"# {err}; retrying in 1 s", flush=True)
            await asyncio.sleep(1)
        except websockets.ConnectionClosed as err:
            code = err.rcvd.code if err.rcvd is not None else None
            if code in FATAL_CLOSES:
                raise SystemExit(f"# closed with {code}: {FATAL_CLOSES[code]}") from None
            print(f"# disconnected ({err}); reconnecting", flush=True)
            await asyncio.sleep(0 if code == 4008 else 1)
        except OSError as err:
            print(f"# can't connect ({err}); retrying in 1 s", flush=True)
            await asyncio.sleep(1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/signals/")
    parser.add_argument("--token", required=True, help="python manage.py feedtoken")
    parser.add_argument("--state", type=Path, default=Path("last_signal_id.txt"))
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(consume(args.url, args.token, args.state))
