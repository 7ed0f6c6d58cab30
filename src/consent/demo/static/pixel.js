/* Advertising partner's conversion script: runs only after the visitor allowed "marketing". */
(function () {
  "use strict";
  document.cookie = "_fbp=fb.1." + Date.now() + "; Max-Age=7776000; Path=/; SameSite=Lax";
  window.__pixelRan = (window.__pixelRan || 0) + 1;
})();
