// The Backtest run page's chart: stored candles of one symbol with a marker per signal
// (BUY ▲ green below, SELL ▼ red above, no side ▲ green); an uploaded file's run has no
// stored bars, so its chart is a line through the signals' prices.
(function () {
  "use strict";
  var chart = null, series = null, markers = null;

  function marker(s) {
    var sell = s.side === "sell";
    return {
      time: s.time, position: sell ? "aboveBar" : "belowBar", color: sell ? "#f43f5e" : "#10b981",
      shape: sell ? "arrowDown" : "arrowUp", text: "#" + s.seq,
    };
  }

  function load(el, symbol) {
    var LC = window.LightweightCharts;
    if (!LC) return;
    if (chart) { chart.remove(); chart = null; }
    fetch(el.dataset.url + "?symbol=" + encodeURIComponent(symbol), { credentials: "same-origin" })
      .then(function (r) { return r.json(); })
      .then(function (data) {
        if (!data.bars && !data.signals) return;
        chart = LC.createChart(el, {
          autoSize: true,
          layout: { background: { color: "#0f172a" }, textColor: "#94a3b8", fontSize: 11 },
          grid: { vertLines: { visible: false }, horzLines: { color: "#1e293b" } },
          timeScale: { timeVisible: true, secondsVisible: data.seconds < 60 },
        });
        var seen = {};
        var signals = data.signals || [];
        if (data.bars && data.bars.length) {
          series = chart.addSeries(LC.CandlestickSeries, {
            upColor: "#10b981", downColor: "#f43f5e", borderVisible: false,
            wickUpColor: "#10b981", wickDownColor: "#f43f5e",
          });
          series.setData(data.bars.map(function (b) {
            return { time: b[0], open: b[1], high: b[2], low: b[3], close: b[4] };
          }));
          // A marker sits on the candle holding its signal bar (which starts one run bar
          // before the signal's close time; candles may be 1-minute ones of a 5 s run).
          var first = data.bars[0][0], last = data.bars[data.bars.length - 1][0];
          signals = signals.map(function (s) {
            var start = s.time - data.bar_seconds;
            var m = Object.assign({}, s);
            m.time = start - (((start % data.seconds) + data.seconds) % data.seconds);
            return m;
          }).filter(function (m) { return m.time >= first && m.time <= last; });
        } else {
          series = chart.addSeries(LC.LineSeries, { color: "#38bdf8", lineWidth: 1.5 });
          var points = [];
          signals.forEach(function (s) {
            if (seen[s.time]) return;
            seen[s.time] = true;
            points.push({ time: s.time, value: s.price });
          });
          series.setData(points);
        }
        markers = LC.createSeriesMarkers(series, signals.map(marker));
        chart.timeScale().fitContent();
        el.dataset.loaded = String((data.bars || []).length) + "/" + String(signals.length);
      })
      .catch(function () { el.textContent = "The chart could not be loaded."; });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("bt-chart");
    if (!el) return;
    load(el, el.dataset.symbol);
    document.querySelectorAll("[data-chart-symbol]").forEach(function (button) {
      button.addEventListener("click", function () { load(el, button.dataset.chartSymbol); });
    });
  });
})();
