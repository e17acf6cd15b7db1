// The dashboard's live bits: local times, cooldown countdowns (one per active rule and symbol),
// per-symbol candle charts (stored history, then live bars; volume, a legend of the averages,
// zoom and pan) with a marker per signal (▲ buy or no side, ▼ sell), the
// signal list's sound / notification switches, and resuming the socket where the list is.
// Everything else arrives as server-rendered HTML over the /ws/ui/ socket (htmx ws).
(function () {
  "use strict";

  var CLOSE_BEHIND = 4008; // the server closed a socket that read too little (docs/delivery.md)

  var MAX_ROWS = 200; // live signal rows kept on the page (the history page has them all)
  var MAX_POINTS = 3000; // chart bars kept per symbol (history and live)
  var charts = {}; // symbol -> {chart, price, volume, lines: {operand: series}, points, markers}

  // --- times ------------------------------------------------------------------------------
  function pad(n) { return n < 10 ? "0" + n : "" + n; }

  function localTime(el) {
    var iso = el.getAttribute("datetime");
    var t = iso ? new Date(iso) : null;
    if (!t || isNaN(t)) return;
    var text = pad(t.getHours()) + ":" + pad(t.getMinutes()) + ":" + pad(t.getSeconds());
    if (new Date().toDateString() !== t.toDateString()) {
      text = pad(t.getMonth() + 1) + "-" + pad(t.getDate()) + " " + text;
    }
    el.textContent = text;
    el.title = t.toISOString().replace(".000Z", "Z") + " (UTC)";
  }

  function countdowns() {
    document.querySelectorAll(".js-countdown[data-until]").forEach(function (el) {
      var left = Math.round((Date.parse(el.dataset.until) - Date.now()) / 1000);
      // Only a countdown in wall time makes sense; a replayed or accelerated feed keeps the text.
      if (left > 0 && left < 86400) el.textContent = left + " s left";
      else if (left <= 0 && left > -5) el.textContent = "ending";
    });
  }

  // --- charts -----------------------------------------------------------------------------
  // Each tile's chart opens with the stored history (GET /bars/api/: candles, volume, the
  // averages' values and the signals for markers), then live bars from the socket extend it.
  var LINE_COLOURS = ["#f59e0b", "#a78bfa", "#f472b6", "#22d3ee", "#84cc16"];
  var LINE_NAME = /^(MA|EMA)\d+$|^VWAP$/;
  var HISTORY_BARS = 600; // bars per history call (50 min of 5 s bars): more as the user pans back
  var SHOWN_BARS = 120; // bars in view at first; zoom out (wheel, pinch) for the rest
  var UP = "#34d399", DOWN = "#fb7185";

  function fmt(v) {
    if (v === null || v === undefined || isNaN(v)) return "–";
    return Math.abs(v) >= 100 ? v.toFixed(2) : Math.abs(v) >= 1 ? v.toFixed(4) : v.toPrecision(4);
  }

  function volumeOf(point, vol) {
    return { time: point.time, value: vol, color: point.close >= point.open ? "#065f4699" : "#9f123999" };
  }

  function chartFor(symbol) {
    if (charts[symbol]) return charts[symbol];
    var LC = window.LightweightCharts;
    var el = document.querySelector('.tile-chart[data-chart-symbol="' + symbol + '"]');
    if (!LC || !el) return null;
    var chart = LC.createChart(el, {
      autoSize: true,
      layout: {
        background: { color: "#0f172a" }, textColor: "#64748b", fontSize: 10,
        attributionLogo: false, // attributed once, under the tiles
      },
      grid: { vertLines: { visible: false }, horzLines: { color: "#1e293b" } },
      rightPriceScale: { borderVisible: false, scaleMargins: { top: 0.08, bottom: 0.22 } },
      timeScale: { borderVisible: false, timeVisible: true, secondsVisible: true, rightOffset: 2 },
      // The library's zoom (wheel, pinch) and pan (drag); a vertical swipe scrolls the page.
      handleScroll: { mouseWheel: true, pressedMouseMove: true, horzTouchDrag: true, vertTouchDrag: false },
      handleScale: true,
    });
    var price = chart.addSeries(LC.CandlestickSeries, {
      upColor: UP, downColor: DOWN, borderVisible: false, wickUpColor: UP, wickDownColor: DOWN,
      priceLineVisible: false, lastValueVisible: false,
    });
    var volume = chart.addSeries(LC.HistogramSeries, {
      priceScaleId: "volume", priceFormat: { type: "volume" },
      priceLineVisible: false, lastValueVisible: false,
    });
    chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    var lines = {};
    var legend = el.parentNode.querySelector(".tile-legend");
    (el.dataset.operands || "").split(",").filter(function (name) {
      return LINE_NAME.test(name);
    }).forEach(function (name, i) {
      var colour = LINE_COLOURS[i % LINE_COLOURS.length];
      lines[name] = chart.addSeries(LC.LineSeries, {
        color: colour, lineWidth: 1,
        priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false,
      });
      if (legend) {
        var item = document.createElement("span");
        item.className = "legend-line inline-flex items-center gap-1";
        item.dataset.line = name;
        var swatch = document.createElement("i");
        swatch.className = "inline-block h-0.5 w-3";
        swatch.style.background = colour;
        var value = document.createElement("b");
        value.className = "font-normal text-slate-300";
        value.textContent = "–";
        item.append(swatch, name + " ", value);
        legend.appendChild(item);
      }
    });
    charts[symbol] = {
      chart: chart, el: el, price: price, volume: volume, lines: lines, legend: legend,
      points: [], vols: [], values: {}, markers: LC.createSeriesMarkers(price, []), marks: [],
    };
    return charts[symbol];
  }

  function showValue(c, name, v) {
    var item = c.legend && c.legend.querySelector('[data-line="' + name + '"] b');
    if (item) item.textContent = fmt(v);
  }

  // The bar a signal belongs on: the last one that started before its close (a signal is
  // stamped with its bar's close; the chart plots bars at their start).
  function barBefore(points, close) {
    var lo = 0, hi = points.length - 1, at = null;
    while (lo <= hi) {
      var mid = (lo + hi) >> 1;
      if (points[mid].time < close) { at = points[mid].time; lo = mid + 1; } else { hi = mid - 1; }
    }
    return at;
  }

  function setMarks(c) {
    c.marks.sort(function (a, b) { return a.time - b.time; });
    c.markers.setMarkers(c.marks);
  }

  function redraw(c) {
    c.price.setData(c.points);
    c.volume.setData(c.vols);
    Object.keys(c.lines).forEach(function (name) { c.lines[name].setData(c.values[name] || []); });
  }

  // Stored bars before the first one the chart has (or the newest, with live bars that
  // arrived meanwhile kept): on page load, and again each time the view is panned or zoomed
  // back to the oldest bar (?before=), until the store has no older ones.
  function loadHistory(el, older) {
    var c = chartFor(el.dataset.chartSymbol);
    if (!c || !el.dataset.barsUrl || c.loading || (older && (c.exhausted || !c.points.length))) {
      return;
    }
    var query = "?symbol=" + encodeURIComponent(el.dataset.chartSymbol) +
      "&seconds=" + encodeURIComponent(el.dataset.seconds || "5") + "&limit=" + HISTORY_BARS;
    if (older) query += "&before=" + c.points[0].time;
    // VWAP depends on the whole session: drawn from live bars only.
    var names = Object.keys(c.lines).filter(function (name) { return name !== "VWAP"; });
    if (names.length) query += "&lines=" + encodeURIComponent(names.join(","));
    c.loading = true;
    fetch(el.dataset.barsUrl + query, { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.json() : Promise.reject(r.status);
    }).then(function (data) {
      var first = c.points.length ? c.points[0].time : Infinity;
      var points = [], vols = [];
      data.bars.forEach(function (b) {
        if (b[0] >= first) return;
        var p = { time: b[0], open: b[1], high: b[2], low: b[3], close: b[4] };
        points.push(p);
        vols.push(volumeOf(p, b[5]));
      });
      var view = c.chart.timeScale().getVisibleLogicalRange();
      c.points = points.concat(c.points);
      c.vols = vols.concat(c.vols);
      names.forEach(function (name) {
        var values = (data.lines && data.lines[name]) || [];
        var line = [];
        data.bars.forEach(function (b, i) {
          if (b[0] < first && values[i] !== null && values[i] !== undefined) {
            line.push({ time: b[0], value: values[i] });
          }
        });
        c.values[name] = line.concat(c.values[name] || []);
        if (!isFinite(first) && line.length) showValue(c, name, line[line.length - 1].value);
      });
      (data.signals || []).forEach(function (s) { mark(c, s.id, s.side, s.time); });
      redraw(c);
      setMarks(c);
      if (older && view) {
        // Keep what the user looks at where it was: the new bars went in on the left.
        c.chart.timeScale().setVisibleLogicalRange({
          from: view.from + points.length, to: view.to + points.length,
        });
      } else if (!older && c.points.length > SHOWN_BARS) {
        c.chart.timeScale().setVisibleLogicalRange({
          from: c.points.length - SHOWN_BARS, to: c.points.length + 2,
        });
      }
      if (data.bars.length < HISTORY_BARS) c.exhausted = true;
      el.dataset.historyBars = String(c.points.length);
      el.dataset.markers = String(c.marks.length);
      c.loading = false;
      if (!older) {
        c.chart.timeScale().subscribeVisibleLogicalRangeChange(function (range) {
          if (range && range.from < 10) loadHistory(el, true);
        });
      }
    }).catch(function () {
      el.dataset.historyBars = "failed"; // the live bars still draw
      c.loading = false;
    });
  }

  function num(live, name, fallback) {
    var v = parseFloat(live.dataset[name]);
    return isNaN(v) ? fallback : v;
  }

  function addBar(live) {
    var symbol = live.closest("[data-symbol]");
    var c = symbol && chartFor(symbol.dataset.symbol);
    var t = Date.parse(live.dataset.time) / 1000;
    if (!c || isNaN(t)) return;
    var last = c.points.length ? c.points[c.points.length - 1].time : -Infinity;
    if (t < last) return; // a restarted replay: keep the chart monotonic
    var values = {};
    var json = live.querySelector('script[type="application/json"]');
    if (json) { try { values = JSON.parse(json.textContent); } catch (e) { values = {}; } }
    var close = parseFloat(live.dataset.close);
    if (isNaN(close)) return;
    var point = {
      time: t, open: num(live, "open", close), high: num(live, "high", close),
      low: num(live, "low", close), close: close,
    };
    var vol = volumeOf(point, num(live, "volume", 0));
    if (t === last) {
      c.points[c.points.length - 1] = point;
      c.vols[c.vols.length - 1] = vol;
    } else {
      c.points.push(point);
      c.vols.push(vol);
    }
    Object.keys(c.lines).forEach(function (name) {
      showValue(c, name, values[name]);
      if (values[name] === null || values[name] === undefined) return;
      c.values[name] = c.values[name] || [];
      var series = c.values[name];
      var v = { time: t, value: values[name] };
      if (series.length && series[series.length - 1].time === t) series[series.length - 1] = v;
      else series.push(v);
    });
    var cut = c.points.length - MAX_POINTS + 300;
    var view = c.points.length > MAX_POINTS && c.chart.timeScale().getVisibleLogicalRange();
    // Forget the oldest bars only while the user looks at newer ones (else keep them all).
    if (view && view.from > cut + 10) {
      var keepFrom = c.points[cut].time;
      c.points = c.points.slice(cut);
      c.vols = c.vols.slice(cut);
      Object.keys(c.values).forEach(function (name) {
        c.values[name] = c.values[name].filter(function (p) { return p.time >= keepFrom; });
      });
      redraw(c);
      c.chart.timeScale().setVisibleLogicalRange({ from: view.from - cut, to: view.to - cut });
      c.marks = c.marks.filter(function (m) { return m.time >= keepFrom; });
      setMarks(c);
      c.exhausted = false; // the forgotten bars can be asked for again
      c.el.dataset.historyBars = String(c.points.length);
    } else {
      c.price.update(point);
      c.volume.update(vol);
      Object.keys(c.lines).forEach(function (name) {
        var series = c.values[name];
        if (series && series.length && series[series.length - 1].time === t) {
          c.lines[name].update(series[series.length - 1]);
        }
      });
    }
  }

  // A signal's marker: BUY ▲ green below the bar, SELL ▼ red above it, no side ▲ green.
  function markerFor(side, time) {
    if (side === "sell") {
      return { time: time, position: "aboveBar", color: "#fb7185", shape: "arrowDown", size: 1 };
    }
    return { time: time, position: "belowBar", color: "#34d399", shape: "arrowUp", size: 1 };
  }

  // One marker per signal id (history and the live row may both name it); false if the
  // chart has no bar for it yet.
  function mark(c, id, side, close) {
    var key = "s" + id;
    if (c.marks.some(function (m) { return m.id === key; })) return true;
    var at = barBefore(c.points, close);
    if (at === null) return false;
    var m = markerFor(side, at);
    m.id = key;
    c.marks.push(m);
    return true;
  }

  function addMarker(symbol, id, iso, side) {
    var c = chartFor(symbol);
    var t = Date.parse(iso) / 1000;
    if (!c || isNaN(t) || !mark(c, id, side, t)) return;
    setMarks(c);
    c.el.dataset.markers = String(c.marks.length);
  }

  // --- new signals ------------------------------------------------------------------------
  function option(name) { return localStorage.getItem("scalp." + name) === "on"; }

  function beep() {
    try {
      var ctx = beep.ctx || (beep.ctx = new (window.AudioContext || window.webkitAudioContext)());
      var osc = ctx.createOscillator();
      var gain = ctx.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.08;
      osc.connect(gain).connect(ctx.destination);
      osc.start();
      osc.stop(ctx.currentTime + 0.12);
    } catch (e) { /* no audio device: nothing to do */ }
  }

  function newSignal(row) {
    var list = document.getElementById("live-signals");
    var empty = document.getElementById("live-signals-empty");
    if (empty) empty.classList.add("hidden");
    while (list && list.children.length > MAX_ROWS) list.removeChild(list.lastElementChild);
    var side = row.dataset.side || "";
    addMarker(row.dataset.symbol, row.dataset.signalId, row.dataset.time, side);
    if (option("sound")) beep();
    if (option("notify") && window.Notification && Notification.permission === "granted") {
      var title = row.dataset.symbol + (side === "sell" ? " SELL ▼" : side === "buy" ? " BUY ▲" : "") + " signal";
      new Notification(title, { body: "price " + row.dataset.price, tag: row.id });
    }
  }

  function lastSignalId() {
    var first = document.querySelector("#live-signals .signal-row");
    var list = document.getElementById("live-signals");
    if (first) return first.dataset.signalId;
    return list ? list.dataset.lastId : "";
  }

  // Every (re)connect of the page socket asks for the signals after the newest one shown, so
  // the list has each stored signal once, in order, through drops and Daphne restarts. Set
  // before htmx opens the socket (on DOMContentLoaded, after this deferred script has run).
  var createWebSocket = htmx.createWebSocket;
  htmx.createWebSocket = function (url) {
    var since = lastSignalId();
    if (/\/ws\/ui\/$/.test(url) && since) url += "?since=" + encodeURIComponent(since);
    return createWebSocket(url);
  };

  // The polled status card names the newest engine log line the page shows: the server sends
  // the log only when it has a newer one (a redraw every 5 s would reset the box's scroll).
  document.addEventListener("htmx:configRequest", function (event) {
    if (!event.detail.elt || event.detail.elt.id !== "engine-status") return;
    var log = document.getElementById("engine-events");
    if (log && log.dataset.lastEventId) event.detail.parameters.events = log.dataset.lastEventId;
  });

  // --- wiring -----------------------------------------------------------------------------
  function process(node) {
    if (node.nodeType !== 1) return;
    if (node.matches(".js-local")) localTime(node);
    node.querySelectorAll(".js-local").forEach(localTime);
    if (node.matches(".tile-live")) { addBar(node); countdowns(); }
    if (node.querySelector(".js-countdown")) countdowns(); // an active rule's cooldown
    if (node.matches(".signal-row")) newSignal(node);
  }

  function setupOptions() {
    ["sound", "notify"].forEach(function (name) {
      var box = document.getElementById("opt-" + name);
      if (!box) return;
      box.checked = option(name);
      box.addEventListener("change", function () {
        localStorage.setItem("scalp." + name, box.checked ? "on" : "off");
        if (name === "notify" && box.checked && window.Notification &&
            Notification.permission === "default") {
          Notification.requestPermission();
        }
        if (name === "sound" && box.checked) beep();
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("dashboard");
    if (!root) return;
    document.querySelectorAll(".js-local").forEach(localTime);
    document.querySelectorAll(".tile-chart").forEach(function (el) { loadHistory(el, false); });
    setupOptions();
    countdowns();
    setInterval(countdowns, 1000);
    new MutationObserver(function (mutations) {
      mutations.forEach(function (m) { m.addedNodes.forEach(process); });
    }).observe(root, { childList: true, subtree: true });

    var indicator = document.getElementById("live-indicator");
    var opened = false;
    document.body.addEventListener("htmx:wsOpen", function () {
      indicator.textContent = "live";
      indicator.className = "text-xs text-emerald-400";
      if (opened) {
        // Back after a drop: the socket resends the missed signals; redraw the controls.
        htmx.ajax("GET", root.dataset.controlsUrl, { target: "#engine-controls", swap: "outerHTML" });
      }
      opened = true;
    });
    document.body.addEventListener("htmx:wsClose", function (e) {
      indicator.textContent = "live updates interrupted: reconnecting…";
      indicator.className = "text-xs text-amber-300";
      // htmx reconnects by itself only after 1006/1011/1012/1013.
      if (e.detail.event && e.detail.event.code === CLOSE_BEHIND) {
        setTimeout(e.detail.socketWrapper.reconnect, 1000);
      }
    });
  });
})();
