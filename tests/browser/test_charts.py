"""Charts in real Chromium: the dashboard's tile opens with the stored candles, its averages'
legend and a marker at a stored signal, and loads older bars when panned back; the Signals
page's link opens the chart around a signal with its bars and marker."""

from datetime import UTC, datetime

import pytest

from bars.services import bars_around, bars_recent, bars_store, chart_history
from engine.core.bars import Bar
from signals.services import signal_record
from tests.browser.helpers import log_in
from watchlists.services import watchlist_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

T0 = 1_765_895_400  # 2025-12-16 14:30:00 UTC
BARS = 700  # the dashboard asks for 600, then the rest when the view is panned back


def test_dashboard_opens_with_stored_candles_and_the_signal_chart(live_daphne, page, artifacts_dir):
    watchlist_create(name="Charts", symbols=["AAPL"], activate=True)
    closes = [190 + (i % 40) / 10 - (i % 7) / 20 for i in range(BARS)]
    bars_store(
        Bar("AAPL", T0 + 5 * i, 5, c - 0.05, c + 0.1, c - 0.1, c, 100 + i)
        for i, c in enumerate(closes)
    )
    signal = signal_record(
        time=datetime.fromtimestamp(T0 + 5 * 250 + 5, tz=UTC),  # the close of bar 250
        symbol="AAPL",
        price=closes[250],
        rule_id=1,
        rule_name="MA Momentum",
        bar_seconds=5,
        values={},
        side="sell",
    )
    assert signal is not None
    log_in(page, live_daphne)

    chart = page.locator('.tile-chart[data-chart-symbol="AAPL"]')
    page.locator('.tile-chart[data-chart-symbol="AAPL"][data-history-bars="600"]').wait_for(
        timeout=20_000
    )
    assert chart.get_attribute("data-markers") == "1"
    assert chart.locator("canvas").count() > 0
    # The legend names each average of the active rule (MA5, MA10) with its current value:
    # the stored history's last value, as the core computes it.
    _, lines = chart_history("AAPL", 5, count=1, before=None, lines=["MA5", "MA10"])
    legend = page.locator("#tile-aapl").get_by_test_id("chart-legend")
    for name in ("MA5", "MA10"):
        item = legend.locator(f'[data-line="{name}"]')
        assert " ".join(item.inner_text().split()) == f"{name} {lines[name][-1]:.2f}"
        assert item.locator("i").evaluate("el => getComputedStyle(el).backgroundColor") != ""
    page.screenshot(path=artifacts_dir / "dashboard-stored-candles.png", full_page=True)

    # Zoom with the wheel: the library's default scale handling changes the visible range.
    before = page.evaluate("() => document.querySelector('.tile-chart canvas').toDataURL()")
    chart.hover()
    page.mouse.wheel(0, -600)
    page.wait_for_timeout(300)
    after = page.evaluate("() => document.querySelector('.tile-chart canvas').toDataURL()")
    assert before != after
    # Pan back (drag to the right) to the oldest bar: the older stored bars load too.
    box = chart.bounding_box()
    y = box["y"] + box["height"] / 2
    for _ in range(20):
        if chart.get_attribute("data-history-bars") == str(BARS):
            break
        page.mouse.move(box["x"] + 20, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] - 60, y, steps=5)
        page.mouse.up()
        page.wait_for_timeout(200)
    assert chart.get_attribute("data-history-bars") == str(BARS)
    assert chart.get_attribute("data-markers") == "1"

    # The Signals page's row links to the chart around its signal.
    page.goto(f"{live_daphne}/signals/")
    page.get_by_test_id("signal-chart-link").filter(has_text=str(signal.pk)).click()
    page.wait_for_url(f"{live_daphne}/bars/signal/{signal.pk}/")
    around = page.get_by_test_id("signal-chart")
    page.locator("#signal-chart[data-bars]").wait_for(timeout=10_000)
    around_bars = bars_around("AAPL", T0 + 5 * 250 + 5, prefer=5)
    # from the first stored bar to 360 bars (30 min) after the signal's close: bars 0..610
    assert around_bars is not None and len(around_bars.bars) == 611
    assert around.get_attribute("data-bars") == str(len(around_bars.bars))
    assert around.get_attribute("data-markers") == "1"
    assert around.locator("canvas").count() > 0
    details = page.get_by_test_id("signal-details").inner_text()
    assert "MA Momentum" in details and "2025-12-16 14:50:55" in details
    page.screenshot(path=artifacts_dir / "signal-chart.png", full_page=True)
    assert len(bars_recent("AAPL", 5, count=BARS + 1)) == BARS  # nothing written by reading
