// The serial console: xterm.js over Paddock's websocket, which Paddock
// bridges to the VM's serial console subresource.
import { socketURL, closeState, Bar } from "./console-common.js";

var el = document.getElementById("console");
var screen = el.querySelector(".console-screen");
var encoder = new TextEncoder();
var ws = null;

// xterm.js styles the terminal with <style> elements it makes; the page's
// policy admits them with its nonce only.
var nonce = document.querySelector("meta[name=paddock-style-nonce]").content;
var createElement = document.createElement.bind(document);
document.createElement = function (tag, options) {
  var node = createElement(tag, options);
  if (String(tag).toLowerCase() === "style") node.nonce = nonce;
  return node;
};

var term = new Terminal({ cursorBlink: true, scrollback: 5000 });
var fit = new FitAddon.FitAddon();
term.loadAddon(fit);
term.open(screen);
fit.fit();
window.addEventListener("resize", function () { fit.fit(); });
document.addEventListener("fullscreenchange", function () { fit.fit(); });

function send(text) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(text));
}
term.onData(send);

var bar = new Bar(el, {
  connect: connect,
  paste: function (text) { send(text.replace(/\n/g, "\r")); },
});

function connect() {
  if (ws) ws.close();
  bar.set("connecting", "Connecting…");
  var s = new WebSocket(socketURL(el.dataset.socket));
  ws = s;
  s.binaryType = "arraybuffer";
  s.addEventListener("open", function () {
    bar.set("connected", "Connected");
    term.focus();
  });
  s.addEventListener("message", function (ev) { term.write(new Uint8Array(ev.data)); });
  s.addEventListener("close", function (ev) {
    if (ws !== s) return;
    ws = null;
    var c = closeState(ev);
    bar.set(c.state, c.text);
  });
}

connect();
