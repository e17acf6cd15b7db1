"""The fake TWS as a separate process: script file, JSON control socket and its client."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence

from tests.faketws.gateway import FakeTWS
from tests.faketws.model import PACING_VIOLATION
from tests.faketws.usage import USAGE

logger = logging.getLogger(__name__)


def load_script(gw: FakeTWS, script: dict) -> list[dict]:
    """Configure ``gw`` from a script dict; returns its ``actions`` list."""
    if "accounts" in script:
        gw.accounts = list(script["accounts"])
    for item in script.get("symbols", []):
        item = dict(item)
        history = {int(k): v for k, v in item.pop("history", {}).items()}
        gw.add_symbol(item.pop("symbol"), history=history, **item)
    for symbol, code in script.get("deny_realtime", {}).items():
        gw.deny_realtime(symbol, int(code))
    for symbol, code in script.get("deny_history", {}).items():
        gw.deny_history(symbol, int(code))
    for client_id in script.get("reject_client_ids", []):
        gw.reject_client_id(int(client_id))
    if "enforce_pacing" in script:
        gw.enforce_pacing = bool(script["enforce_pacing"])
    return list(script.get("actions", []))


async def _daily_restart(gw: FakeTWS, args: dict) -> dict[str, object]:
    await gw.daily_restart(float(args["seconds"]))
    return {}


async def _refuse_history(gw: FakeTWS, args: dict) -> dict[str, object]:
    gw.refuse_history(int(args.get("count", 1)), int(args.get("code", 162)),
                      args.get("message", PACING_VIOLATION))  # fmt: skip
    return {}


async def _client_id(gw: FakeTWS, args: dict, take: bool) -> dict[str, object]:
    (gw.take_client_id if take else gw.release_client_id)(int(args["client_id"]))
    return {}


async def _sent(count: int) -> dict[str, object]:
    return {"sent": count}


# The fault commands: name -> coroutine(gw, args) returning what to add to the state reply.
_FAULTS: dict[str, Callable[[FakeTWS, dict], Awaitable[dict[str, object]]]] = {
    "connectivity_lost": lambda gw, a: _sent(gw.connectivity_lost()),
    "connectivity_restored": lambda gw, a: _sent(
        gw.connectivity_restored(bool(a.get("data_kept", True)))
    ),
    "farm_broken": lambda gw, a: _sent(gw.farm_broken(a.get("farm", "usfarm"))),
    "farm_ok": lambda gw, a: _sent(gw.farm_ok(a.get("farm", "usfarm"), a.get("mute", ()))),
    "mute": lambda gw, a: _sent(gw.mute(a["symbol"])),
    "trade_bust": lambda gw, a: _sent(gw.trade_bust(a["symbol"])),
    "competing_session": lambda gw, a: _sent(
        gw.competing_session(bool(a.get("on", True)), a.get("symbols"))
    ),
    "refuse_history": _refuse_history,
    "daily_restart": _daily_restart,
    "take_client_id": lambda gw, a: _client_id(gw, a, True),
    "release_client_id": lambda gw, a: _client_id(gw, a, False),
}


async def run_command(gw: FakeTWS, command: dict) -> dict[str, object]:
    """Execute one control command (a dict with ``cmd`` and the method's arguments)."""
    args = dict(command)
    cmd = args.pop("cmd", None)
    args.pop("after", None)
    if cmd == "push_bar":
        bar = [args.pop(k) for k in ("time", "open", "high", "low", "close", "volume")]
        symbol = args.pop("symbol")
        return {"delivered": await gw.push_bar(symbol, *bar, **args)}
    if cmd == "inject_error":
        return {"sent": gw.inject_error(int(args.get("req_id", -1)), int(args["code"]),
                                        args.get("message"))}  # fmt: skip
    if cmd == "drop":
        await gw.drop_connections()
    elif cmd == "stop":
        await gw.stop()
    elif cmd == "start":
        await gw.start()
    elif cmd == "add_symbol":
        history = {int(k): v for k, v in args.pop("history", {}).items()}
        gw.add_symbol(args.pop("symbol"), history=history, **args)
    elif cmd == "deny_realtime":
        gw.deny_realtime(args["symbol"], int(args.get("code", 354)), args.get("message"))
    elif cmd == "deny_history":
        gw.deny_history(args["symbol"], int(args.get("code", 162)), args.get("message"))
    elif cmd == "reject_client_id":
        gw.reject_client_id(int(args["client_id"]))
    elif cmd == "enforce_pacing":
        gw.enforce_pacing = bool(args.get("on", True))
    elif cmd in _FAULTS:
        reply = await _FAULTS[cmd](gw, args)
        return {**gw.state(), **reply}
    elif cmd == "wait_subscribed":
        await gw.wait_subscribed(args["symbol"], total=args.get("total"),
                                 timeout=float(args.get("timeout", 5)))  # fmt: skip
    elif cmd == "wait_cancelled":
        await gw.wait_cancelled(args["symbol"], total=int(args.get("total", 1)),
                                timeout=float(args.get("timeout", 5)))  # fmt: skip
    elif cmd == "logs":
        return {**gw.state(), **gw.logs()}
    elif cmd in ("state", "shutdown"):
        pass
    else:
        raise ValueError(f"unknown command {cmd!r}")
    return gw.state()


class ControlServer:
    """Line-based JSON control socket for a gateway running in another process."""

    def __init__(self, gw: FakeTWS, host: str = "127.0.0.1", port: int = 0):
        self.gw = gw
        self.host = host
        self.port = port
        self.shutdown = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        try:
            while line := await reader.readline():
                try:
                    command = json.loads(line)
                    reply: dict[str, object] = {"ok": True, **await run_command(self.gw, command)}
                except TimeoutError:
                    reply = {"ok": False, "error": "timeout"}
                except Exception as exc:  # report to the controlling test, keep serving
                    reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
                if command.get("cmd") == "shutdown":
                    self.shutdown.set()
        finally:
            writer.close()


class ControlClient:
    """Async client for :class:`ControlServer`: ``await ctl.call("push_bar", symbol=...)``."""

    def __init__(self, host: str, port: int):
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def call(self, cmd: str, **args: object) -> dict:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        await self._writer.drain()
        reply = json.loads(await self._reader.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"fake TWS {cmd}: {reply.get('error')}")
        return reply

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


async def _run_actions(gw: FakeTWS, actions: list[dict]) -> None:
    for action in actions:
        await asyncio.sleep(float(action.get("after", 0)))
        try:
            await run_command(gw, action)
        except Exception:
            logger.exception("fake TWS action %s failed", action)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faketws", description=USAGE)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--script", help="JSON file with symbols, history, errors, actions")
    parser.add_argument("-v", "--verbose", action="store_true")
    opts = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if opts.verbose else logging.WARNING)
    script: dict = {}
    if opts.script:
        with open(opts.script, encoding="utf-8") as fh:
            script = json.load(fh)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(opts.host, opts.port, opts.control_port, script))


def gateway_clock() -> Callable[[], float]:
    """The engine worker's market clock (``engine.worker.clock``): ``time.time``, or the
    test clock of ``SCALP_TEST_CLOCK``."""
    if not os.environ.get("SCALP_TEST_CLOCK", "").strip():
        return time.time
    from engine.worker.clock import market_clock  # plain Python: no Django, no IB library

    return market_clock()


async def serve(host: str, port: int, control_port: int, script: dict) -> None:
    """Run a gateway configured by ``script`` plus its control socket until ``shutdown``.
    With ``SCALP_TEST_CLOCK`` set, the gateway's clock is the worker's test clock (both
    agree on "now")."""
    gw = FakeTWS(host=host, port=port, now=gateway_clock())
    actions = load_script(gw, script)
    await gw.start()
    control = ControlServer(gw, host, control_port)
    await control.start()
    print(json.dumps({"port": gw.port, "control_port": control.port}), flush=True)
    runner = asyncio.create_task(_run_actions(gw, actions))
    try:
        await control.shutdown.wait()
    finally:
        runner.cancel()
        await control.close()
        await gw.stop()
