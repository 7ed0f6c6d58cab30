/* Lindenhof first-party analytics: runs only after the visitor allowed "analytics". */
(function () {
  "use strict";
  var id = Math.random().toString(36).slice(2, 10);
  document.cookie = "stats_ses=" + id + "; Max-Age=1800; Path=/; SameSite=Lax";
  window.__statsRan = (window.__statsRan || 0) + 1;
  try {
    navigator.sendBeacon("/stats/hit", JSON.stringify({ page: location.pathname }));
  } catch (e) { /* analytics must never break the page */ }
})();
