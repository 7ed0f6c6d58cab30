/* asgi-consent banner: plain ES2017, no dependencies, no build step.
 * The server stays the authority on cookies; this script only asks and reports.
 * API: window.consent = { show(), allows(category), state, ready } */
(() => {
"use strict";
const w = window, d = document;
if (w.consent && w.consent.asgiConsent) return; // included twice

const me = d.currentScript || d.querySelector("script[data-consent-prefix]");
let prefix = me && me.getAttribute("data-consent-prefix");
if (!prefix && me && me.src) {
  try { prefix = new URL(me.src, location.href).pathname.replace(/\/banner\.js$/, ""); } catch (e) { prefix = ""; }
}
prefix = (prefix || "/_consent").replace(/\/+$/, "");
const nonce = (me && me.nonce) || ""; // the page's CSP nonce

// Labels for when no translation file loads.
const EN = {
  title: "Cookies", notice: "We use cookies.", policy_link: "Cookie policy", more: "Read more", less: "Show less",
  policy_changed: "Our cookie policy has changed since your last choice.",
  accept_all: "Accept all", reject_all: "Reject all", customize: "Customize", save: "Save choices",
  always_on: "Always active", settings: "Cookie settings", close: "Close",
  gpc_off: "Off (Global Privacy Control)",
  error: "Your choice could not be saved. Please try again.",
  settings_intro: "Choose which cookies we may use.", cookies_heading: "Cookies", cookie_name: "Name",
  cookie_vendor: "Provider", cookie_purpose: "Purpose", cookie_duration: "Duration", no_cookies: "None.",
  gpc: "Your browser sends Global Privacy Control.", controller: "Responsible for this site"
};

let state = null, T = EN, lang = "en", query = "";
let banner = null, overlay = null, settingsBtn = null, opener = null, busy = false;
let resolveReady;
const ready = new Promise((r) => { resolveReady = r; });
const domReady = new Promise((r) => {
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", r, { once: true });
  else r();
});

const t = (k) => (typeof T[k] === "string" && T[k]) || EN[k] || "";
const list = (x) => (Array.isArray(x) ? x : []);
const primary = (s) => String(s || "").trim().toLowerCase().split(/[-_]/)[0].replace(/[^a-z]/g, "");
const cats = () => list(state && state.categories).filter((c) => c && c.key != null);
const allows = (k) => k === "necessary" || cats().some((c) => c.key === k && c.necessary) ||
  (!!state && list(state.granted).includes(k));
const allAllowed = (v) => { // keys between ASCII spaces (as the server reads them), one granted
  const ks = String(v || "").split(/[\t\n\f\r ]+/).filter(Boolean);
  return ks.every(allows) && ks.some((k) => list(state.granted).includes(k));
};
const undecided = () => !!state && (!state.decided || !!state.revision_changed);

function el(tag, attrs, text, parent) {
  const e = d.createElement(tag);
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v != null && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  if (text != null) e.textContent = text;
  if (parent) parent.append(e);
  return e;
}

function button(id, label, onClick, cls, attrs) {
  const b = el("button", Object.assign({ type: "button", id: id, class: cls || "consent-btn" }, attrs), label);
  b.addEventListener("click", () => onClick(b));
  return b;
}

function withLink(p) {
  try {
    const u = new URL(String(state.policy_url || ""), location.href);
    if (state.policy_url && /^https?:$/.test(u.protocol)) {
      p.append(" ", el("a", { href: u.href, class: "consent-link" }, t("policy_link")));
    }
  } catch (e) { /* no link */ }
  return p;
}

async function getJSON(url) {
  const r = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error("HTTP " + r.status);
  return r.json();
}

async function strings(l) {
  for (const x of l && l !== "en" ? [l, "en"] : ["en"]) {
    const j = await getJSON(prefix + "/i18n/" + x + ".json").catch(() => null);
    if (j && typeof j === "object") { lang = x; return j; }
  }
  return EN;
}

async function load() {
  const hl = primary(d.documentElement.getAttribute("lang"));
  const early = hl ? strings(hl) : null; // fetched alongside the state
  query = hl ? "?lang=" + hl : ""; // the page's language, for decisions too
  const s = await getJSON(prefix + query).catch(() => null);
  if (!s || typeof s !== "object") return null;
  const x = early && await early; // the server's language wins (it may not offer the page's)
  T = x && lang === primary(s.language) ? x : await strings(primary(s.language));
  return s;
}

// Run what the visitor allowed, without a reload. With a CSP nonce, only gated scripts carrying
// it ('strict-dynamic' would run any script made here).
function activate() {
  d.querySelectorAll('script[type="text/plain"][data-consent]').forEach((old) => {
    if ((nonce && old.nonce !== nonce) || !allAllowed(old.getAttribute("data-consent")) || !old.parentNode) return;
    const s = d.createElement("script");
    for (const a of Array.from(old.attributes)) {
      if (a.name !== "type" && a.name !== "data-type") s.setAttribute(a.name, a.value);
    }
    if (old.getAttribute("data-type")) s.setAttribute("type", old.getAttribute("data-type"));
    if (old.nonce) s.nonce = old.nonce;
    if (!old.hasAttribute("async")) s.async = false; // keep document order
    if (!old.hasAttribute("src")) s.text = old.text;
    old.parentNode.replaceChild(s, old);
  });
  d.querySelectorAll("iframe[data-consent], img[data-consent]").forEach((e) => {
    if (!allAllowed(e.getAttribute("data-consent"))) return;
    for (const a of e.tagName === "IMG" ? ["srcset", "sizes", "src"] : ["src"]) {
      const v = e.getAttribute("data-" + a);
      if (v != null) { e.setAttribute(a, v); e.removeAttribute("data-" + a); }
    }
  });
}

function gtagUpdate() {
  if (typeof w.gtag !== "function") return;
  const m = {};
  for (const c of cats()) {
    for (const type of list(c.consent_mode)) {
      // granted only if all its categories are
      m[type] = m[type] !== "denied" && allows(c.key) ? "granted" : "denied";
    }
  }
  if (Object.keys(m).length) w.gtag("consent", "update", m);
}

function apply() {
  try { activate(); gtagUpdate(); } catch (e) { /* a broken page script keeps the choice */ }
}

function showSettings() {
  if (!settingsBtn) {
    settingsBtn = button("consent-settings", t("settings"), openPrefs, "consent-settings", { "aria-haspopup": "dialog", lang: lang });
    d.body.append(settingsBtn);
  }
  settingsBtn.hidden = false;
}

function actions(save) {
  const box = el("div", { class: "consent-actions" });
  if (save) box.append(button("consent-save", t("save"), (b) => decide(checked(), b)));
  box.append(
    button(save ? "consent-prefs-accept-all" : "consent-accept-all", t("accept_all"), (b) => decide("all", b)),
    button(save ? "consent-prefs-reject-all" : "consent-reject-all", t("reject_all"), (b) => decide([], b))
  );
  if (!save) box.append(button("consent-customize", t("customize"), openPrefs, null, { "aria-haspopup": "dialog" }));
  return box;
}

let room; // the page (and focus) keeps clear of the first layer
function keepRoom() {
  const r = banner && !banner.hidden && banner.getBoundingClientRect(), h = d.documentElement.clientHeight;
  if (!room && r && d.adoptedStyleSheets) d.adoptedStyleSheets = d.adoptedStyleSheets.concat(room = new CSSStyleSheet());
  const px = Math.ceil(h - (r && r.top)) + "px";
  if (room) room.replaceSync(r && h - r.bottom <= r.top ? "html{scroll-padding-bottom:" + px + "}body{padding-bottom:" + px + "!important}" : "");
}

// First layer: not modal, no close button (ignoring it is not consent).
function showBanner() {
  if (settingsBtn) settingsBtn.hidden = true;
  if (banner) { banner.hidden = false; return; }
  const changed = !!state.revision_changed;
  banner = el("div", {
    id: "consent-banner", class: "consent-root consent-banner", role: "dialog", lang: lang,
    "aria-labelledby": "consent-banner-title",
    "aria-describedby": (changed ? "consent-banner-changed " : "") + "consent-banner-notice"
  });
  el("h2", { id: "consent-banner-title", class: "consent-title" }, t("title"), banner);
  if (changed) el("p", { id: "consent-banner-changed", class: "consent-changed" }, t("policy_changed"), banner);
  const text = el("p", { id: "consent-banner-notice", class: "consent-notice" }, String(state.notice || "").trim() || t("notice"), banner);
  // shows the notice a small screen cuts short (banner.css)
  let open = false;
  const more = button("consent-more", t("more"), () => {
    text.classList.toggle("consent-open", open = !open);
    more.setAttribute("aria-expanded", open);
    more.textContent = t(open ? "less" : "more");
  }, "consent-more", { "aria-expanded": "false", "aria-controls": text.id, hidden: !!w.ResizeObserver });
  withLink(el("p", { class: "consent-links" }, null, banner)).prepend(more);
  banner.append(
    state.gpc ? el("p", { class: "consent-gpc" }, t("gpc")) : "",
    el("p", { class: "consent-error", role: "alert" }),
    actions(false)
  );
  // First in the document (reading and tab order), without taking focus.
  d.body.insertBefore(banner, d.body.firstChild);
  if (w.ResizeObserver) new ResizeObserver(() => requestAnimationFrame(() => {
    more.hidden = !open && text.scrollHeight <= text.clientHeight + 1;
    keepRoom();
  })).observe(banner);
}

function category(c) {
  const key = String(c.key), id = "consent-toggle-" + key;
  const sec = el("section", { class: "consent-category", "aria-labelledby": id + "-label" });
  const head = el("div", { class: "consent-category-head" }, null, sec);
  const input = el("input", {
    type: "checkbox", role: "switch", id: id, class: "consent-switch", "data-key": key,
    "aria-describedby": c.description ? "consent-desc-" + key : null
  });
  // With GPC the server refuses sale/share categories: show them so.
  const gpcBlocked = !c.necessary && !!state.gpc && !!c.sale_or_share;
  input.checked = !!c.necessary || (!gpcBlocked && !!state.decided && allows(key)); // never pre-ticked
  input.disabled = !!c.necessary || gpcBlocked;
  head.append(input, el("label", { for: id, id: id + "-label", class: "consent-category-title" }, c.title || key));
  if (c.necessary) el("span", { class: "consent-always-on" }, t("always_on"), head);
  else if (gpcBlocked) el("span", { class: "consent-always-on consent-gpc-off" }, t("gpc_off"), head);
  if (c.description) el("p", { id: "consent-desc-" + key, class: "consent-description" }, c.description, sec);
  const cookies = list(c.cookies), cols = ["name", "vendor", "purpose", "duration"];
  const det = el("details", { class: "consent-cookies" }, null, sec);
  el("summary", null, t("cookies_heading") + " (" + cookies.length + ")", det);
  if (!cookies.length) {
    el("p", null, t("no_cookies"), det);
    return sec;
  }
  const table = el("table", null, null, det), tr = el("tr", null, null, el("thead", null, null, table));
  for (const h of cols) el("th", { scope: "col" }, t("cookie_" + h), tr);
  const body = el("tbody", null, null, table);
  for (const k of cookies) {
    const row = el("tr", null, null, body);
    for (const f of cols) el("td", null, k && (f == "name" && k.display || k[f]) || "", row);
  }
  return sec;
}

const checked = () => Array.from(overlay.querySelectorAll("input.consent-switch"))
  .filter((i) => i.checked && !i.disabled).map((i) => i.getAttribute("data-key"));

// Second layer: modal dialog, focus trapped, Esc closes.
function openPrefs(from) {
  if (!state || !d.body) return;
  if (overlay) { focusTop(); return; }
  opener = from || d.activeElement;
  if (banner) banner.hidden = true;
  if (settingsBtn) settingsBtn.hidden = true;
  overlay = el("div", { class: "consent-overlay" });
  const dlg = el("div", {
    id: "consent-preferences", class: "consent-root consent-modal", role: "dialog", "aria-modal": "true",
    "aria-labelledby": "consent-prefs-title", "aria-describedby": "consent-prefs-intro", tabindex: "-1", lang: lang
  }, null, overlay);
  el("h2", { id: "consent-prefs-title", class: "consent-title" }, t("settings"), dlg);
  if (state.revision_changed) el("p", { class: "consent-changed" }, t("policy_changed"), dlg);
  dlg.append(withLink(el("p", { id: "consent-prefs-intro", class: "consent-notice" }, t("settings_intro"))));
  const who = state.controller && state.controller.name;
  if (who) el("p", { class: "consent-controller" }, t("controller") + ": " + who, dlg);
  if (state.gpc) el("p", { class: "consent-gpc" }, t("gpc"), dlg);
  const box = el("div", { class: "consent-categories" }, null, dlg);
  for (const c of cats()) box.append(category(c));
  dlg.append(el("p", { class: "consent-error", role: "alert" }), actions(true),
    button("consent-close", t("close"), closePrefs, "consent-close"));
  d.body.append(overlay);
  d.addEventListener("keydown", onKey, true);
  d.addEventListener("focusin", onFocusIn, true);
  focusTop();
}

// The dialog takes the focus itself: it opens at its title, which names it.
const focusTop = () => overlay && overlay.firstChild.focus();

function removePrefs() {
  d.removeEventListener("keydown", onKey, true);
  d.removeEventListener("focusin", onFocusIn, true);
  if (overlay) overlay.remove();
  overlay = null;
}

function closePrefs() {
  if (!overlay) return;
  removePrefs();
  if (undecided()) showBanner(); else showSettings();
  const o = opener;
  opener = null;
  const back = o && o.getClientRects().length ? o
    : undecided() ? d.getElementById("consent-customize") : settingsBtn;
  if (back) back.focus();
}

function onKey(e) {
  if (!overlay) return;
  if (e.key === "Escape" || e.key === "Esc") {
    e.preventDefault();
    e.stopPropagation();
    closePrefs();
  } else if (e.key === "Tab") {
    const f = Array.from(overlay.querySelectorAll("button, input, summary, a[href]"))
      .filter((x) => !x.disabled && x.getClientRects().length), a = d.activeElement, i = f.indexOf(a), last = f.length - 1;
    if (e.shiftKey ? i <= 0 : i === last || !overlay.contains(a)) {
      e.preventDefault();
      if (last >= 0) f[e.shiftKey ? last : 0].focus();
    }
  }
}

function onFocusIn(e) {
  if (overlay && !overlay.contains(e.target)) focusTop();
}

async function decide(accept, from, how) {
  if (busy) return;
  const box = from.closest(".consent-root"), err = box.querySelector(".consent-error");
  busy = true;
  box.setAttribute("aria-busy", "true");
  err.textContent = "";
  let j = null;
  try {
    const r = await fetch(prefix + query, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ accept: accept, method: how || "banner", page: location.pathname })
    });
    j = await r.json().catch(() => null);
    if (!r.ok || !j || !j.state || typeof j.state !== "object") j = null;
  } catch (e) { /* network error: the dialog stays open */ }
  busy = false;
  box.removeAttribute("aria-busy");
  if (!j) { err.textContent = t("error"); return; }
  state = j.state;
  const a = d.activeElement;
  const hadFocus = (banner && banner.contains(a)) || (overlay && overlay.contains(a));
  removePrefs();
  opener = null;
  if (banner) { banner.remove(); banner = null; keepRoom(); }
  showSettings();
  if (hadFocus) settingsBtn.focus();
  apply();
  d.dispatchEvent(new CustomEvent("consent:change", { detail: {
    granted: list(state.granted).slice(),
    denied: list(state.denied).slice(),
    receipt_id: j.receipt_id != null ? j.receipt_id : state.receipt_id || null
  } }));
}

async function init() {
  state = await load();
  resolveReady(state);
  if (!state) return; // no state: no banner, nothing granted
  await domReady;
  if (!d.body) return;
  if (state.decided) apply();
  if (undecided()) showBanner(); else showSettings();
  // Placeholders for embeds still waiting: their code loads only on pages that have them.
  if (d.querySelector("iframe[data-consent][data-src]")) {
    const e = el("script", { src: prefix + "/embed.js" }, null, d.head);
    if (nonce) e.nonce = nonce;
  }
}

// Elements with data-consent-show (a footer link, say) open the settings.
d.addEventListener("click", (e) => {
  const x = e.target && e.target.closest ? e.target.closest("[data-consent-show]") : null;
  if (x) { e.preventDefault(); api.show(); }
});

const api = {
  asgiConsent: true,
  ready: ready,
  get state() { return state; },
  allows: (category) => allows(String(category)),
  _embed: { t, el, button, decide, prefix, query: () => query, lang: () => lang },
  show() { // the settings dialog, with the current choices
    const from = d.activeElement;
    return ready
      .then((s) => s || load().then((x) => (state = x)))
      .then((s) => (s ? domReady.then(() => openPrefs(from)) : undefined))
      .catch(() => undefined);
  }
};
w.consent = api;
init().catch(() => resolveReady(null));
})();
