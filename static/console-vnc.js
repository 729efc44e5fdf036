// The graphical console: noVNC over Paddock's websocket, which Paddock
// bridges to the VM's VNC subresource.
import RFB from "./vendor/novnc/core/rfb.js";
import keysyms from "./vendor/novnc/core/input/keysymdef.js";
import { socketURL, closeState, Bar } from "./console-common.js";

var el = document.getElementById("console");
var screen = el.querySelector(".console-screen");
var desktop = el.querySelector("[data-testid=console-desktop]");
var rfb = null;

var XK_Return = 0xff0d;

var bar = new Bar(el, {
  connect: connect,
  ctrlAltDel: function () { if (rfb) rfb.sendCtrlAltDel(); },
  // Pasted text goes to the guest as key presses: VNC has no clipboard
  // the guest's login prompt could read.
  paste: function (text) {
    if (!rfb) return;
    for (var ch of text) {
      rfb.sendKey(ch === "\n" ? XK_Return : keysyms.lookup(ch.codePointAt(0)));
    }
  },
});

function connect() {
  if (rfb) rfb.disconnect();
  screen.replaceChildren();
  bar.set("connecting", "Connecting…");
  // noVNC takes a websocket opened here, so that the page can read the
  // close code and reason Paddock sends.
  var ws = new WebSocket(socketURL(el.dataset.socket));
  ws.binaryType = "arraybuffer";
  var closed = null;
  ws.addEventListener("close", function (ev) { closed = closeState(ev); });
  var r = new RFB(screen, ws);
  rfb = r;
  r.scaleViewport = true;
  r.background = "#1b263b";
  r.addEventListener("connect", function () {
    bar.set("connected", "Connected");
    r.focus();
  });
  r.addEventListener("desktopname", function (ev) { desktop.textContent = ev.detail.name; });
  r.addEventListener("disconnect", function () {
    if (rfb !== r) return; // replaced by a reconnect
    rfb = null;
    // The websocket's close event comes before noVNC's disconnect.
    setTimeout(function () {
      var c = closed || { state: "lost", text: "The connection to the VM's console was lost. Reconnect to try again." };
      bar.set(c.state, c.text);
    }, 0);
  });
}

connect();
