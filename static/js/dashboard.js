// The dashboard's live bits: local times, cooldown countdowns (one per active rule and symbol),
// per-symbol charts with a marker per signal (▲ buy or no side, ▼ sell), the
// signal list's sound / notification switches, and resuming the socket where the list is.
// Everything else arrives as server-rendered HTML over the /ws/ui/ socket (htmx ws).
(function () {
  "use strict";

  var CLOSE_BEHIND = 4008; // the server closed a socket that read too little (docs/delivery.md)

  var MAX_ROWS = 200; // live signal rows kept on the page (the history page has them all)
  var MAX_POINTS = 1500; // chart points kept per symbol
  var charts = {}; // symbol -> {chart, price, lines: {operand: series}, points, markers}

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
  var LINE_COLOURS = ["#f59e0b", "#a78bfa", "#f472b6", "#22d3ee", "#84cc16"];

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
      rightPriceScale: { borderVisible: false },
      timeScale: { borderVisible: false, timeVisible: true, secondsVisible: true },
      handleScroll: false,
      handleScale: false,
    });
    var price = chart.addSeries(LC.LineSeries, {
      color: "#38bdf8", lineWidth: 1.5, priceLineVisible: false, lastValueVisible: false,
    });
    var lines = {};
    (el.dataset.operands || "").split(",").filter(function (name) {
      return /^(MA|EMA)\d+$|^VWAP$/.test(name);
    }).forEach(function (name, i) {
      lines[name] = chart.addSeries(LC.LineSeries, {
        color: LINE_COLOURS[i % LINE_COLOURS.length], lineWidth: 1,
        priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false,
      });
    });
    charts[symbol] = {
      chart: chart, price: price, lines: lines, points: [], values: {},
      markers: LC.createSeriesMarkers(price, []), marks: [],
    };
    return charts[symbol];
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
    var point = { time: t, value: parseFloat(live.dataset.close) };
    if (t === last) c.points[c.points.length - 1] = point; else c.points.push(point);
    Object.keys(c.lines).forEach(function (name) {
      if (values[name] === null || values[name] === undefined) return;
      c.values[name] = c.values[name] || [];
      var series = c.values[name];
      var v = { time: t, value: values[name] };
      if (series.length && series[series.length - 1].time === t) series[series.length - 1] = v;
      else series.push(v);
    });
    if (c.points.length > MAX_POINTS) {
      var cut = c.points.length - MAX_POINTS + 300;
      var keepFrom = c.points[cut].time;
      c.points = c.points.slice(cut);
      c.price.setData(c.points);
      Object.keys(c.values).forEach(function (name) {
        c.values[name] = c.values[name].filter(function (p) { return p.time >= keepFrom; });
        c.lines[name].setData(c.values[name]);
      });
      c.marks = c.marks.filter(function (m) { return m.time >= keepFrom; });
      c.markers.setMarkers(c.marks);
    } else {
      c.price.update(point);
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

  function addMarker(symbol, iso, side) {
    var c = chartFor(symbol);
    var t = Date.parse(iso) / 1000;
    if (!c || isNaN(t) || !c.points.length) return;
    // A signal is stamped with its bar's close; the chart plots bars at their start.
    var at = null;
    for (var i = c.points.length - 1; i >= 0; i--) {
      if (c.points[i].time < t) { at = c.points[i].time; break; }
    }
    if (at === null) return;
    c.marks.push(markerFor(side, at));
    c.markers.setMarkers(c.marks);
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
    addMarker(row.dataset.symbol, row.dataset.time, side);
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
    document.querySelectorAll(".tile-chart").forEach(function (el) {
      var c = chartFor(el.dataset.chartSymbol);
      if (c) c.chart.timeScale().applyOptions({ rightOffset: 2 });
    });
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
