/* asgi-consent embed placeholders: loaded by banner.js only on pages with a gated iframe that
 * waits for consent (iframe[data-consent][data-src]). Each gets a placeholder saying what it is
 * and who provides it, with "Load this once" (a receipt, the consent cookie unchanged) and
 * "Always allow <category>" (a decision like the banner's). */
(() => {
"use strict";
const w = window, d = document, api = w.consent, x = api && api._embed;
if (!x || x.started) return;
x.started = true;
const { t, el, button, decide, prefix } = x;
const list = (v) => (Array.isArray(v) ? v : []);
const fill = (s, o) => String(s).replace(/\{(\w+)\}/g, (m, k) => (o[k] != null ? o[k] : m));
const waiting = (f) => f.hasAttribute("data-src") && !!f.parentNode;
const keys = (f) => String(f.getAttribute("data-consent") || "").split(/[\t\n\f\r ]+/).filter(Boolean);
let n = 0;

// The category an embed waits for.
// (An embed that waits for two categories gets none: one button cannot grant both.)
function category(f) {
  const cats = list(api.state && api.state.categories), missing = keys(f).filter((k) => !api.allows(k));
  return (missing.length === 1 && cats.find((c) => c && c.key === missing[0])) || null;
}

// Who provides it: data-consent-vendor, else the category's third party (or cookie vendor)
// whose name matches the host, the only one there is, or the host itself.
function vendor(f, c) {
  const given = f.getAttribute("data-consent-vendor");
  if (given) return given;
  let host = "";
  try { host = new URL(f.getAttribute("data-src"), location.href).hostname; } catch (e) { /* none */ }
  const names = Array.from(new Set(list(c && c.third_parties)
    .concat(list(c && c.cookies).map((k) => k && k.vendor)).filter(Boolean)));
  const hit = names.find((v) => String(v).toLowerCase().split(/[^a-z0-9]+/)
    .some((word) => word.length > 2 && host.toLowerCase().includes(word)));
  return hit || (names.length === 1 ? names[0] : host || t("embed_title"));
}

function show(f, ph) { // the embed in place of its placeholder
  const focus = ph && ph.contains(d.activeElement);
  if (ph) ph.remove();
  f.classList.remove("consent-embed-waiting");
  if (focus) {
    if (!f.hasAttribute("tabindex")) f.setAttribute("tabindex", "-1");
    f.focus();
  }
}

function load(f, ph) {
  f.setAttribute("src", f.getAttribute("data-src"));
  f.removeAttribute("data-src");
  show(f, ph);
}

async function once(f, ph, c, b) {
  const err = ph.querySelector(".consent-error");
  if (ph.getAttribute("aria-busy")) return;
  ph.setAttribute("aria-busy", "true");
  err.textContent = "";
  let ok = false;
  try {
    const r = await fetch(prefix + "/once" + x.query(), {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ category: c.key, src: f.getAttribute("data-src"), page: location.pathname })
    });
    ok = r.ok;
  } catch (e) { /* network error: the placeholder stays */ }
  ph.removeAttribute("aria-busy");
  if (ok) load(f, ph); else { err.textContent = t("error"); b.focus(); }
}

function placeholder(f) {
  const c = category(f);
  if (!c || f.previousElementSibling && f.previousElementSibling.classList.contains("consent-embed")) return;
  const id = "consent-embed-" + ++n, title = f.getAttribute("title") || t("embed_title");
  const ph = el("div", {
    class: "consent-root consent-embed", role: "group", lang: x.lang(),
    "aria-labelledby": id + "-title", "data-consent-for": c.key
  });
  el("p", { id: id + "-title", class: "consent-embed-title" }, title, ph);
  el("p", { id: id + "-text", class: "consent-embed-text" },
    fill(t("embed_notice"), { vendor: vendor(f, c), category: c.title || c.key }), ph);
  const box = el("div", { class: "consent-actions consent-embed-actions" }, null, ph);
  const more = { "aria-describedby": id + "-title " + id + "-text" };
  box.append(
    button(id + "-once", t("embed_once"), (b) => once(f, ph, c, b), "consent-btn consent-embed-once", more),
    button(id + "-always", fill(t("embed_always"), { category: c.title || c.key }), (b) => {
      const granted = list(api.state && api.state.granted);
      decide(granted.concat(granted.includes(c.key) ? [] : [c.key]), b, "embed");
    }, "consent-btn consent-embed-always", more)
  );
  el("p", { class: "consent-error", role: "alert" }, null, ph);
  f.classList.add("consent-embed-waiting");
  f.before(ph);
}

// After any decision (here, in the banner or the dialog): embeds it allowed replace their
// placeholders; those still waiting keep (or get) one.
function sweep() {
  d.querySelectorAll("div.consent-embed[data-consent-for]").forEach((ph) => {
    const f = ph.nextElementSibling;
    if (!f || f.tagName !== "IFRAME") ph.remove();
    else if (!waiting(f)) show(f, ph);
  });
  d.querySelectorAll("iframe[data-consent][data-src]").forEach((f) => { if (waiting(f)) placeholder(f); });
}

d.addEventListener("consent:change", sweep);
api.ready.then(sweep);
})();
