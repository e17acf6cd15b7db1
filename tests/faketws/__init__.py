# The package docstring is the usage text in usage.py (``--help`` prints it too); this module
# only re-exports the package's public names.
from tests.faketws.control import (
    ControlClient,
    ControlServer,
    gateway_clock,
    load_script,
    main,
    run_command,
    serve,
)
from tests.faketws.gateway import FakeTWS
from tests.faketws.model import (
    COMPETING_HISTORY,
    DEFAULT_LIQUID_HOURS,
    DEFAULT_TRADING_HOURS,
    HOURS_PRESETS,
    PACING_VIOLATION,
    BarTuple,
    HistBar,
    Request,
    Subscription,
    SymbolSpec,
    aggregate,
    history_of,
    ib_hours,
    java_double,
    pacing_violations,
    preset_hours,
)
from tests.faketws.usage import USAGE
from tests.faketws.wire import (
    DEFAULT_ERROR_TEXT,
    MAX_SERVER_VERSION,
    MIN_SERVER_VERSION,
    parse_bar_size,
    parse_duration,
    parse_end_time,
)

__doc__ = USAGE

__all__ = [
    "COMPETING_HISTORY",
    "DEFAULT_ERROR_TEXT",
    "DEFAULT_LIQUID_HOURS",
    "DEFAULT_TRADING_HOURS",
    "HOURS_PRESETS",
    "PACING_VIOLATION",
    "MAX_SERVER_VERSION",
    "MIN_SERVER_VERSION",
    "BarTuple",
    "ControlClient",
    "ControlServer",
    "FakeTWS",
    "gateway_clock",
    "HistBar",
    "Request",
    "Subscription",
    "SymbolSpec",
    "aggregate",
    "history_of",
    "ib_hours",
    "java_double",
    "preset_hours",
    "load_script",
    "main",
    "parse_bar_size",
    "parse_duration",
    "pacing_violations",
    "parse_end_time",
    "run_command",
    "serve",
]
