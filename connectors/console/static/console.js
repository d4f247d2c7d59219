// Timestamps in the browser's time zone: the server writes UTC into <time datetime>;
// this rewrites the text, keeping UTC in the title. Run on load and after htmx swaps.
(function () {
  "use strict";
  function localise(root) {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach(function (el) {
      var at = new Date(el.getAttribute("datetime"));
      if (isNaN(at.getTime())) { return; }
      el.title = el.textContent;
      el.textContent = at.toLocaleString(undefined, {
        year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
      });
      el.setAttribute("data-local", "");
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); });
  document.addEventListener("htmx:afterSwap", function (e) { localise(e.target); });
})();
