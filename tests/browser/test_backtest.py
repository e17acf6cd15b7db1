"""The Backtest page in Chromium: upload a CSV, watch the run's progress until the worker's
runner finishes it, read the stats table and the signals, see the chart's markers."""

from __future__ import annotations

import asyncio
import contextlib
import threading

from playwright.sync_api import expect

from backtests.models import BacktestRun
from backtests.runner import BacktestRunner
from tests.backtests.test_runner import make_bars, write_csv
from tests.browser.helpers import log_in
from tests.factories import make_rule


class RunnerThread:
    """The worker's backtest runner on its own loop in a thread (as in ``runengine``)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> RunnerThread:
        self.thread.start()
        self.task = asyncio.run_coroutine_threadsafe(BacktestRunner(poll=0.2).run(), self.loop)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.task.cancel)
        with contextlib.suppress(BaseException):  # cancelled, as asked
            self.task.result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def test_upload_a_csv_watch_progress_and_read_the_results(live_daphne, page, tmp_path):
    make_rule("Up trend")
    path = tmp_path / "bars.csv"
    write_csv(path, make_bars(2000))
    log_in(page, live_daphne, "/backtest/")
    form = page.get_by_test_id("backtest-form")
    form.get_by_label("Up trend").check()
    form.get_by_label("Uploaded CSV", exact=True).check()
    form.get_by_label("Horizons").fill("1m,5m")
    page.get_by_test_id("upload").set_input_files(str(path))
    form.get_by_role("button", name="Run backtest").click()

    progress = page.get_by_test_id("progress")
    expect(progress).to_have_attribute("data-state", "queued")  # no worker yet
    expect(progress.get_by_role("button", name="Cancel")).to_be_visible()
    with RunnerThread():
        expect(page.get_by_test_id("stats-table")).to_be_visible(timeout=30_000)
    run = BacktestRun.objects.get()
    assert run.state == "done" and run.bars == 4000 and run.signal_count > 0
    expect(page.get_by_test_id("progress")).to_have_attribute("data-state", "done")
    rows = page.locator('[data-testid="stats-row"][data-rule="Up trend"]')
    expect(rows).to_have_count(3)  # the rule, then AAPL and MSFT
    expect(rows.first).to_contain_text(str(run.result["stats"][-1]["signals"]))
    expect(page.get_by_test_id("signal-row")).to_have_count(min(run.signal_count, 100))
    aapl = run.signals.filter(symbol="AAPL").count()
    expect(page.locator("#bt-chart")).to_have_attribute("data-loaded", f"0/{aapl}")
    assert page.locator("#bt-chart canvas").count() > 0
