// What the two console pages (console-vnc.js, console-serial.js) share:
// the websocket's address, the words for each way a session ends, and the
// bar of buttons above the console.

// socketURL turns the page's data-socket path into a ws(s):// URL.
export function socketURL(path) {
  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  return scheme + location.host + path;
}

// Close codes Paddock sends (internal/web/console.go) with a sentence for
// the user; the others are the browser's own.
var APP_CODES = { 4001: "not-running", 4002: "taken-over", 4003: "access-ended", 4004: "idle", 4005: "lost", 4006: "unavailable", 4007: "restarting" };

// closeState describes how the websocket ended: a state name (for the page
// and its tests) and a sentence.
export function closeState(ev) {
  var state = APP_CODES[ev.code];
  if (state && ev.reason) return { state: state, text: ev.reason };
  if (ev.code === 1000 || ev.code === 1001) return { state: "closed", text: "The console was closed. Reconnect to open it again." };
  return { state: "lost", text: "The connection to Paddock was lost. Check your network, then reconnect." };
}

// Bar wires the state line and the buttons of the console page around el.
export function Bar(el, handlers) {
  var stateEl = el.querySelector("[data-testid=console-state]");
  var reconnect = el.querySelector("[data-console=reconnect]");
  var paste = el.querySelector("[data-console=paste]");
  var pasteInput = paste.querySelector("input");

  this.set = function (state, text) {
    el.setAttribute("data-console-state", state);
    stateEl.textContent = text;
    reconnect.hidden = state === "connecting" || state === "connected";
  };
  reconnect.addEventListener("click", function () { handlers.connect(); });
  el.querySelector("[data-console=fullscreen]").addEventListener("click", function () {
    var screen = el.querySelector(".console-screen");
    if (screen.requestFullscreen) screen.requestFullscreen();
  });
  paste.addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (pasteInput.value === "") return;
    handlers.paste(pasteInput.value);
    pasteInput.value = "";
  });
  var cad = el.querySelector("[data-console=ctrl-alt-del]");
  if (cad) cad.addEventListener("click", function () { handlers.ctrlAltDel(); });
}
