// The order page updates by itself: a countdown to the payment's expiry, and a reload when the status changes.
(function () {
  "use strict";
  var page = document.getElementById("order");
  if (!page || !page.dataset.statusUrl) { return; }
  var clock = document.getElementById("pay-countdown");
  if (clock) {
    var end = Date.now() + 1000 * parseInt(clock.dataset.seconds || "0", 10);
    var tick = function () {
      var left = Math.max(0, Math.round((end - Date.now()) / 1000));
      clock.textContent = Math.floor(left / 60) + ":" + String(left % 60).padStart(2, "0");
    };
    tick();
    setInterval(tick, 1000);
  }
  var ask = function () {
    fetch(page.dataset.statusUrl, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (body) {
        if (body && body.status && body.status !== page.dataset.status) { window.location.reload(); }
      })
      .catch(function () {})
      .finally(function () { setTimeout(ask, 2000); });
  };
  setTimeout(ask, 2000);
})();
