"""IB error codes and messages as sentences a user can act on (no IB library import)."""

from __future__ import annotations

TWS_API_HELP = "Configure → API → Settings"
NOTHING_LEFT = (
    "None of the watchlist symbols can be streamed from IB; see the messages above for each."
)

# code -> (message, permanent). ``{msg}`` is IB's own text.
IB_ERROR_MESSAGES: dict[int, tuple[str, bool]] = {
    100: ("IB says the API sent too many messages per second; slowing down.", False),
    101: (
        "IB refused more market data: your account's market-data line limit is reached. "
        "Close other subscriptions or watch fewer symbols.",
        True,
    ),
    162: ("IB's historical data service refused the request: {msg}", False),
    200: (
        "IB doesn't know this symbol as a stock on SMART in USD. Check the ticker "
        "(for example BRK B, not BRK.B).",
        True,
    ),
    321: ("IB rejected a request as invalid: {msg}", True),
    322: ("IB could not process a request: {msg}", False),
    326: (
        "The client id is already in use by another API connection to TWS / IB Gateway. "
        "Choose a different client id in Settings, or close the other program.",
        True,
    ),
    354: (
        "No market data subscription for this symbol in your IB account (IB error 354). "
        "Subscribe to the exchange's data in Client Portal → Settings → Market Data "
        "Subscriptions, or remove the symbol.",
        True,
    ),
    420: (
        "IB refused realtime bars: your account has no market data permission for this "
        "symbol's exchange (IB error 420). Add the subscription in Client Portal or remove "
        "the symbol.",
        True,
    ),
    502: (
        "TWS / IB Gateway refused the API connection. Enable 'ActiveX and Socket Clients' "
        f"in {TWS_API_HELP} and check the port.",
        False,
    ),
    504: ("Not connected to TWS / IB Gateway.", False),
    1100: (
        "TWS / IB Gateway lost its connection to IB's servers; waiting for it to come back.",
        False,
    ),
    1101: (
        "TWS / IB Gateway reconnected to IB's servers but market data was lost; resubscribing.",
        False,
    ),
    1102: ("TWS / IB Gateway reconnected to IB's servers; market data was kept.", False),
    1300: ("TWS / IB Gateway changed its API port; reconnecting.", False),
    2103: ("IB market data farm connection is broken; bars may pause: {msg}", False),
    2105: ("IB historical data farm connection is broken: {msg}", False),
    2157: ("IB security definition farm connection is broken: {msg}", False),
    10089: (
        "This symbol's market data needs an additional API subscription in your IB "
        "account (IB error 10089). Add it in Client Portal or remove the symbol.",
        True,
    ),
    10167: ("IB sends delayed data only for this symbol: {msg}", True),
    10225: (
        "IB cancelled the realtime bars after a trade bust (IB error 10225); resubscribing "
        "and filling the gap from history.",
        False,
    ),
    10197: (
        "IB sends no market data during a competing live session: the same IB user is "
        "logged in elsewhere (another TWS, IBKR Mobile or Client Portal) and owns the "
        "market data. Log out there; bars resume automatically.",
        False,
    ),
}
PERMISSION_CODES = frozenset({101, 354, 420, 10089, 10167})
# Errors on a realtime subscription that concern its symbol (a notice, or the symbol dropped).
REALTIME_SYMBOL_CODES = PERMISSION_CODES | {162, 200, 321, 322, 10197}
# "Market data farm connection is OK": after a 2103 (broken), the feed checks its streams.
MARKET_FARM_OK = 2104
FARM_OK_CODES = frozenset({2106, 2107, 2108, 2119, 2158})
COMPETING_SESSION = 10197
TRADE_BUST = 10225


def describe_ib_error(code: int, msg: str) -> tuple[str, bool]:
    """IB error ``code`` with IB's text ``msg`` → (a sentence for the user, permanent)."""
    text = (msg or "").strip()
    lower = text.lower()
    if "pacing violation" in lower:
        return (
            "IB pacing violation: too many historical data requests in a short time. "
            "Waiting before asking again.",
            False,
        )
    if code == 162:
        if "permission" in lower:
            return (
                "No historical data permission for this symbol in your IB account "
                f"(IB error 162: {text}).",
                True,
            )
        if "no data" in lower:
            return ("IB has no historical bars for this period.", False)
        if "competing live session" in lower or "connected from a different ip" in lower:
            # IB's history service says it either way ("Trading TWS session is connected
            # from a different IP address").
            return describe_ib_error(10197, text)
    if code == 420 and "permission" not in lower and text:
        return (f"IB refused realtime bars (IB error 420): {text}", False)
    template, permanent = IB_ERROR_MESSAGES.get(code, ("IB error {code}: {msg}", False))
    return template.format(code=code, msg=text), permanent


def is_hard(error: tuple[int, str] | None) -> bool:
    """True if ``error`` (code, IB's text) is permanent: asking again cannot help."""
    return error is not None and describe_ib_error(*error)[1]


def is_pacing(error: tuple[int, str] | None) -> bool:
    """True if ``error`` (code, IB's text) is a pacing violation: ask again later."""
    return error is not None and "pacing violation" in error[1].lower()


def is_no_data(error: tuple[int, str] | None) -> bool:
    """True if ``error`` (code, IB's text) only says IB has no bars for the period asked."""
    return error is not None and error[0] == 162 and "no data" in error[1].lower()


def unreachable_message(host: str, port: int) -> str:
    return (
        f"Can't reach TWS / IB Gateway at {host}:{port} — is it running with the API "
        f"enabled ({TWS_API_HELP})?"
    )


def client_id_message(client_id: int) -> str:
    return (
        f"Client id {client_id} is already in use by another API connection to TWS / IB "
        f"Gateway. Choose another client id in Settings (for example {client_id + 1}) or "
        "close the other program."
    )


def client_id_taken_message(client_id: int, *, next_allowed: bool) -> str:
    """Client id ``client_id`` was taken while reconnecting (another program uses it)."""
    tail = (
        "trying the next one (Settings allow it)."
        if next_allowed
        else "retrying it every 10 s. Close that program, or allow the next free client id "
        "in Settings."
    )
    return (
        f"Client id {client_id} is in use by another program connected to TWS / IB Gateway; {tail}"
    )


def format_seconds(value: float) -> str:
    return f"{value:g} s"


class ConnectFailure(Exception):
    """A failed connection attempt, with its sentence for the user."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        code: int | None = None,
        refused: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.code = code
        self.refused = refused
