// Rule builder page: the preview chart (close prices with a marker per signal, TradingView
// lightweight-charts; data from the json_script named by data-preview-chart) and small form helpers.
(function () {
  "use strict";

  function draw(container) {
    if (container.dataset.drawn || !window.LightweightCharts) return;
    var source = document.getElementById(container.dataset.previewChart);
    if (!source) return;
    var data = JSON.parse(source.textContent);
    container.dataset.drawn = "1";
    var LC = window.LightweightCharts;
    var chart = LC.createChart(container, {
      autoSize: true,
      layout: { background: { color: "#020617" }, textColor: "#94a3b8", fontSize: 11 },
      grid: { vertLines: { color: "#1e293b" }, horzLines: { color: "#1e293b" } },
      rightPriceScale: { borderColor: "#334155" },
      timeScale: { borderColor: "#334155", timeVisible: true, secondsVisible: true },
      crosshair: { mode: LC.CrosshairMode.Normal },
    });
    var series = chart.addSeries(LC.LineSeries, {
      color: "#38bdf8",
      lineWidth: 1.5,
      priceLineVisible: false,
      title: data.symbol,
    });
    series.setData(data.closes.map(function (p) { return { time: p[0], value: p[1] }; }));
    // [time, price, side]: ▼ red above the bar for a sell signal, ▲ green below it otherwise.
    LC.createSeriesMarkers(series, data.markers.map(function (m) {
      if (m[2] === "sell") {
        return { time: m[0], position: "aboveBar", color: "#fb7185", shape: "arrowDown", size: 1 };
      }
      return { time: m[0], position: "belowBar", color: "#34d399", shape: "arrowUp", size: 1 };
    }));
    chart.timeScale().fitContent();
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-preview-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", function () { drawAll(document); });
  // htmx swaps in a new preview result: draw its chart.
  document.addEventListener("htmx:load", function (event) { drawAll(event.detail.elt); });

  // Enter in the rule's text box fills the rows from it (the form's default button saves).
  document.addEventListener("keydown", function (event) {
    var input = event.target;
    if (event.key !== "Enter" || input.name !== "text" || !input.form) return;
    var fill = input.form.querySelector("button[name=action][value=parse]");
    if (!fill) return;
    event.preventDefault();
    fill.click();
  });

  // The text box follows the rows: once the rows change, the box shows their text (from
  // #rule-text, redrawn on each answer), unless the trader typed in the box since it last
  // agreed with them. Save decides from shown_text / shown_rows (rules/forms/builder.py).
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    var shown = event.target;
    if (!shown || shown.id !== "rule-text") return;
    var form = document.getElementById("rule-builder");
    var rowsText = shown.dataset.rowsText;
    if (!form || !rowsText) return;
    var box = form.elements.text, shownText = form.elements.shown_text;
    var shownRows = form.elements.shown_rows;
    if (!box || !shownText || !shownRows) return;
    if (box.value !== shownText.value && box.value.trim() !== "") return;
    box.value = rowsText;
    shownText.value = rowsText;
    shownRows.value = rowsText;
  });

  // Choosing a file means "preview over this file": select the CSV source for the trader.
  document.addEventListener("change", function (event) {
    var input = event.target;
    if (input.name !== "csv_file") return;
    checkSize(input);
    if (!input.files || !input.files.length) return;
    var csvRadio = document.querySelector("input[name=source][value=csv]");
    if (csvRadio) csvRadio.checked = true;
  });

  // The CSV file's size is checked here, before it is sent: the server refuses a larger upload
  // with a bare 413 before reading it (scalpsite/limits.py), so the form's own "over 5 MB"
  // sentence would never come back.
  var MB = 1024 * 1024;

  function oversize(input) {
    var holder = input.closest("[data-max-upload-mb]");
    var file = input.files && input.files[0];
    if (!holder || !file) return "";
    var limit = Number(holder.dataset.maxUploadMb);
    if (!(limit > 0) || file.size <= limit * MB) return "";
    // Rounded up as the server does (rules/forms/preview.py): never "5.0 MB" for 5.01 MB.
    var size = (Math.ceil((file.size * 10) / MB) / 10).toFixed(1);
    return "The file is " + size + " MB, over the preview's " + limit + " MB limit; " +
      "cut it to the bars you want to see.";
  }

  // Shows (or clears) the sentence beside the file field; returns it.
  function checkSize(input) {
    var slot = document.getElementById("err-csv-size");
    var sentence = oversize(input);
    if (slot) slot.textContent = sentence;
    if (sentence) {
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", slot ? slot.id : "");
    } else {
      input.removeAttribute("aria-invalid");
    }
    return sentence;
  }

  // Preview: a request that would carry a file over the limit is not sent.
  document.addEventListener("htmx:configRequest", function (event) {
    var sent = event.detail.formData;
    var form = document.getElementById("rule-builder");
    var input = form && form.elements.csv_file;
    if (!sent || !sent.has("csv_file") || !input || !checkSize(input)) return;
    event.preventDefault();
    input.focus();
  });

  // Save (a plain form post) never reads the preview's file: one over the limit is left out
  // (a disabled field is not sent), so the rule is still saved instead of refused with a 413.
  document.addEventListener("submit", function (event) {
    var input = event.target.elements && event.target.elements.csv_file;
    if (!input || input.disabled || !checkSize(input)) return;
    input.disabled = true;
    setTimeout(function () { input.disabled = false; }, 0);
  });
})();
