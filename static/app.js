// Paddock's few lines of script: live updates over server-sent events and
// copy buttons. Everything else is HTML from the server, swapped by htmx.
(function () {
  "use strict";

  // An element with data-live-stream listens to that event stream and, on
  // each "changed" event, reloads its content from data-live-src. Screen
  // readers hear only the state when it changes (from the element
  // data-live-announce names), not the whole fragment again.
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

  function announceState(el) {
    var out = document.getElementById(el.dataset.liveAnnounce || "");
    var state = el.querySelector("[data-testid=state]");
    if (!out || !state) return;
    var now = state.textContent.trim();
    if (el.dataset.lastState && el.dataset.lastState !== now) out.textContent = "Status: " + now;
    el.dataset.lastState = now;
  }

  // Keyboard focus survives a swap: the element that had it (by id, else
  // by name) gets it back in the new content; when it is gone or disabled,
  // the swapped container takes it, so focus never drops to <body>.
  var focusKey = null;
  // Menus (<details class="menu">) open before a swap stay open after it.
  var openMenus = [];
  document.addEventListener("htmx:beforeSwap", function (e) {
    var a = document.activeElement;
    focusKey = null;
    openMenus = [];
    e.detail.target.querySelectorAll("details.menu[open][id]").forEach(function (d) { openMenus.push(d.id); });
    if (!a || a === document.body || !e.detail.target.contains(a)) return;
    focusKey = { id: a.id, name: a.getAttribute("name"), value: a.type === "radio" ? a.value : null };
  });
  function reopenMenus() {
    openMenus.forEach(function (id) {
      var d = document.getElementById(id);
      if (d) d.open = true;
    });
    openMenus = [];
  }
  function restoreFocus(target) {
    if (!focusKey) return;
    var k = focusKey, el = null;
    focusKey = null;
    // An outerHTML swap replaces the target itself: look in the document.
    if (k.id) el = document.getElementById(k.id);
    if (!el && k.name) {
      var sel = "[name=\"" + k.name.replace(/"/g, "") + "\"]" + (k.value !== null ? "[value=\"" + k.value.replace(/"/g, "") + "\"]" : "");
      el = document.querySelector(sel);
    }
    if (!el || el.disabled) {
      el = document.body.contains(target) ? target : document.getElementById("main");
      if (el && !el.hasAttribute("tabindex")) el.setAttribute("tabindex", "-1");
    }
    if (el) el.focus({ preventScroll: true });
  }

  // A link of an error summary moves the focus into its field.
  document.addEventListener("click", function (e) {
    var a = e.target.closest && e.target.closest("[data-testid=form-errors] a[href^='#']");
    if (!a) return;
    var target = document.getElementById(a.getAttribute("href").slice(1));
    if (!target) return;
    var field = target.matches("input, select, textarea") ? target : target.querySelector("input, select, textarea");
    if (field) { e.preventDefault(); field.focus(); field.scrollIntoView({ block: "center" }); }
  });

  // A refusal or an error summary on a freshly loaded page takes the focus,
  // so that keyboard and screen-reader users start from the reason.
  function focusFirst(root) {
    var el = root.querySelector("[data-focus]");
    if (el) el.focus();
  }

  // The Menu button of narrow screens opens and closes the navigation.
  document.addEventListener("click", function (e) {
    var btn = e.target.closest && e.target.closest("[data-menu-toggle]");
    if (!btn) return;
    var open = btn.getAttribute("aria-expanded") !== "true";
    btn.setAttribute("aria-expanded", open ? "true" : "false");
    btn.closest("header").classList.toggle("open", open);
  });

  // Escape closes an open menu and gives the focus back to its button; a
  // click elsewhere closes it too.
  document.addEventListener("keydown", function (e) {
    if (e.key !== "Escape") return;
    var d = e.target.closest && e.target.closest("details.menu[open]");
    if (!d) return;
    d.open = false;
    d.querySelector("summary").focus();
  });
  document.addEventListener("click", function (e) {
    document.querySelectorAll("details.menu[open]").forEach(function (d) {
      if (!d.contains(e.target)) d.open = false;
    });
  });

  function init(root) {
    root.querySelectorAll("[data-live-stream]").forEach(connect);
    copyButtons(root);
  }
  document.addEventListener("DOMContentLoaded", function () {
    // A form re-rendered after a POST puts the page's own address back.
    var main = document.getElementById("main");
    if (main && main.dataset.url && location.pathname + location.search !== main.dataset.url) {
      history.replaceState(null, "", main.dataset.url);
    }
    init(document);
    document.querySelectorAll("[data-live-stream]").forEach(announceState);
    focusFirst(document);
  });
  document.addEventListener("htmx:afterSwap", function (e) {
    init(e.target);
    if (e.target.dataset.liveStream) announceState(e.target);
    reopenMenus();
    restoreFocus(e.target);
  });
})();
