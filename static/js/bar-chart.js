// The chart around one signal (templates/bars/signal_chart.html): stored candles, volume on
// its own scale, a marker at the signal (▲ buy or no side, ▼ sell), zoom and pan.
(function () {
  "use strict";

  function markerFor(side, time) {
    if (side === "sell") {
      return { time: time, position: "aboveBar", color: "#fb7185", shape: "arrowDown", size: 1.5 };
    }
    return { time: time, position: "belowBar", color: "#34d399", shape: "arrowUp", size: 1.5 };
  }

  // A signal is stamped with its bar's close; bars are plotted at their start: the marker
  // goes on the last bar that started before the close.
  function barBefore(times, close) {
    var lo = 0, hi = times.length - 1, at = null;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (times[mid] < close) { at = times[mid]; lo = mid + 1; } else { hi = mid - 1; }
    }
    return at;
  }

  document.addEventListener("DOMContentLoaded", function () {
    var el = document.getElementById("signal-chart");
    var LC = window.LightweightCharts;
    if (!el || !LC) return;
    var data = JSON.parse(document.getElementById(el.dataset.chartId).textContent);
    var chart = LC.createChart(el, {
      autoSize: true,
      layout: { background: { color: "#0f172a" }, textColor: "#94a3b8", fontSize: 11 },
      grid: { vertLines: { color: "#1e293b" }, horzLines: { color: "#1e293b" } },
      rightPriceScale: { borderVisible: false, scaleMargins: { top: 0.08, bottom: 0.25 } },
      timeScale: { borderVisible: false, timeVisible: true, secondsVisible: data.seconds < 60 },
    });
    var candles = chart.addSeries(LC.CandlestickSeries, {
      upColor: "#34d399", downColor: "#fb7185", borderVisible: false,
      wickUpColor: "#34d399", wickDownColor: "#fb7185",
    });
    var volume = chart.addSeries(LC.HistogramSeries, {
      priceScaleId: "volume", priceFormat: { type: "volume" }, lastValueVisible: false,
      priceLineVisible: false,
    });
    chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    var times = [];
    candles.setData(data.bars.map(function (b) {
      times.push(b[0]);
      return { time: b[0], open: b[1], high: b[2], low: b[3], close: b[4] };
    }));
    volume.setData(data.bars.map(function (b) {
      return { time: b[0], value: b[5], color: b[4] >= b[1] ? "#065f4699" : "#9f123999" };
    }));
    var marks = [];
    data.signals.forEach(function (s) {
      var at = barBefore(times, s.time);
      if (at !== null) marks.push(markerFor(s.side, at));
    });
    LC.createSeriesMarkers(candles, marks);
    el.dataset.bars = String(times.length);
    el.dataset.markers = String(marks.length);
    chart.timeScale().fitContent();
  });
})();
