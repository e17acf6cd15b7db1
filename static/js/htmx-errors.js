// Every page: an htmx request that fails shows an alert at the top of the page. htmx swaps
// nothing for a 4xx/5xx answer or a request that got no answer, so without this the trader
// saw nothing at all (say, the 413 of scalpsite/limits.py for an upload over the limit).
// The server's answer is used when it is a short plain-text or JSON sentence, always as text.
(function () {
  "use strict";

  var MAX_SENTENCE = 300;
  var leaving = false;

  function sentenceOf(xhr) {
    var type = (xhr.getResponseHeader("Content-Type") || "").toLowerCase();
    var text = (xhr.responseText || "").trim();
    if (type.indexOf("json") !== -1) {
      try {
        var data = JSON.parse(text);
        text = typeof data === "string" ? data : "";
        ["message", "detail", "error"].forEach(function (key) {
          if (!text && data && typeof data[key] === "string") text = data[key];
        });
      } catch (err) {
        text = "";
      }
    } else if (type.indexOf("text/plain") !== 0) {
      text = "";
    }
    text = text.replace(/\s+/g, " ").trim();
    return text.length > MAX_SENTENCE ? "" : text;
  }

  function show(sentence) {
    var box = document.getElementById("htmx-alerts");
    var template = document.getElementById("htmx-alert-template");
    if (!box || !template) return;
    // One alert at a time: the latest failure replaces the one before.
    box.replaceChildren(template.content.cloneNode(true));
    var alert = box.querySelector("[role=alert]");
    alert.querySelector("[data-alert-text]").textContent = sentence;
    alert.querySelector("button").addEventListener("click", function () { alert.remove(); });
  }

  // A request the page itself handles can opt out with preventDefault().
  document.addEventListener("htmx:responseError", function (event) {
    if (event.defaultPrevented) return;
    var xhr = event.detail.xhr;
    var generic = xhr.status >= 500
      ? "The server failed to answer the request (" + xhr.status + "); try again."
      : "The server refused the request (" + xhr.status + ").";
    show(sentenceOf(xhr) || generic);
  });

  document.addEventListener("htmx:sendError", function (event) {
    // Leaving the page cancels its requests: not a failure to report.
    if (event.defaultPrevented || leaving) return;
    show("ScalpSignal could not reach the server: check that it is running, then try again.");
  });

  document.addEventListener("htmx:timeout", function (event) {
    if (event.defaultPrevented) return;
    show("The server did not answer in time; try again.");
  });

  window.addEventListener("pagehide", function () { leaving = true; });
  window.addEventListener("pageshow", function () { leaving = false; });
})();
