// Refreshes the pictures of VM screens (img[data-screen-src]) while their
// page is open and visible: each asks for its screenshot anew every
// data-screen-every seconds, and only once the last one has arrived, so a
// slow cluster is never asked twice at once. The browser keeps showing the
// old picture until the new one has loaded. A live update of the page
// brings new <img> elements; they are found on the next tick.
(function () {
  "use strict";

  function refresh(img) {
    var now = Date.now();
    if (!img.dataset.screenAt) { img.dataset.screenAt = String(now); return; }
    if (img.dataset.screenLoading) return;
    var every = (parseInt(img.dataset.screenEvery, 10) || 5) * 1000;
    if (now - parseInt(img.dataset.screenAt, 10) < every) return;
    img.dataset.screenLoading = "1";
    var done = function () {
      img.removeEventListener("load", done);
      img.removeEventListener("error", done);
      delete img.dataset.screenLoading;
      img.dataset.screenAt = String(Date.now());
      img.dataset.screenLoads = String((parseInt(img.dataset.screenLoads, 10) || 0) + 1);
    };
    img.addEventListener("load", done);
    img.addEventListener("error", done);
    var src = img.dataset.screenSrc;
    img.src = src + (src.indexOf("?") < 0 ? "?" : "&") + "t=" + now;
  }

  setInterval(function () {
    if (document.hidden) return;
    document.querySelectorAll("img[data-screen-src]").forEach(refresh);
  }, 1000);
})();
