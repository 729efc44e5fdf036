// Paddock's few lines of script: live updates over server-sent events and
// copy buttons. Everything else is HTML from the server, swapped by htmx.
(function () {
  "use strict";

  // An element with data-live-stream listens to that event stream and, on
  // each "changed" event, reloads its content from data-live-src.
  function connect(el) {
    if (el.dataset.liveBound) return;
    el.dataset.liveBound = "1";
    var es = new EventSource(el.dataset.liveStream);
    es.addEventListener("changed", function () {
      htmx.ajax("GET", el.dataset.liveSrc, { target: el, swap: "innerHTML" });
    });
    es.onerror = function () { el.setAttribute("data-live-state", "reconnecting"); };
    es.onopen = function () { el.setAttribute("data-live-state", "connected"); };
    window.addEventListener("pagehide", function () { es.close(); });
  }

  function copyButtons(root) {
    root.querySelectorAll("[data-copy]").forEach(function (btn) {
      if (btn.dataset.copyBound) return;
      btn.dataset.copyBound = "1";
      btn.addEventListener("click", function () {
        var src = document.getElementById(btn.dataset.copy);
        var text = src ? src.textContent.trim() : "";
        var done = function () {
          btn.textContent = "Copied";
          setTimeout(function () { btn.textContent = "Copy"; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, function () { selectText(src); });
        } else {
          selectText(src);
          try { document.execCommand("copy"); done(); } catch (e) { /* text stays selected */ }
        }
        btn.setAttribute("data-copied", text);
      });
    });
  }

  function selectText(el) {
    if (!el) return;
    var range = document.createRange();
    range.selectNodeContents(el);
    var sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }

  // Confirmation for destructive buttons, without inline script.
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) e.preventDefault();
  }, true);

  function init(root) {
    root.querySelectorAll("[data-live-stream]").forEach(connect);
    copyButtons(root);
  }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:afterSwap", function (e) { init(e.target); });
})();
