// Distill review console: a hash-routed page over /ui/api. Logged text is only ever put into
// the page as text nodes (never innerHTML), so prompts with markup show as typed.
"use strict";

const TOKEN_KEY = "distill-admin-token";
const SVG_NS = "http://www.w3.org/2000/svg";
const REFRESH_MS = 5000;  // overview and rollouts refresh themselves this often
const LONG_TEXT = 1500;  // characters shown before a body is collapsed
const view = () => document.getElementById("view");
// Put a page's parts in the view, skipping the optional ones that are absent.
const show = (...parts) => view().replaceChildren(...parts.flat(Infinity).filter((p) => p !== null && p !== undefined && p !== false));

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// A table that scrolls sideways inside its own box on a narrow screen, never the page; the box
// is focusable so a keyboard can scroll it too.
function table(id, caption, headers, rows, attrs = {}) {
  const heads = headers.map((c) => (c instanceof Node ? c : h("th", { scope: "col" }, c)));
  const body = h("tbody", {}, rows);
  // On a phone each row becomes a small card: every cell says which column it is.
  const names = heads.map((th) => th.textContent.trim());
  for (const tr of body.rows) [...tr.cells].forEach((cell, k) => { if (names[k]) cell.dataset.label = names[k]; });
  return h("div", { class: "scroll", tabindex: 0, role: "region", "aria-label": caption },
    h("table", { id, ...attrs, class: `stack ${attrs.class || ""}`.trim() }, h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", {}, heads)), body));
}

// -- the admin token: asked once, kept in sessionStorage for this tab --------------------------

class AuthError extends Error {}

async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new AuthError("Enter the admin token to see the console.");
  const headers = { Authorization: `Bearer ${token}`, ...(options.headers || {}) };
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new AuthError((body.error && body.error.message) || "The admin token was refused.");
  }
  if (!response.ok) {
    const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
    error.param = body.error && body.error.param;
    throw error;
  }
  return body;
}

function showLogin(message) {
  document.getElementById("logout").hidden = true;
  const input = h("input", { type: "password", id: "token", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card login", id: "login" },
    h("h1", {}, "Distill review console"),
    h("p", { class: message ? "error" : "muted", role: message ? "alert" : null }, message || "Enter the gateway's admin token."),
    h("label", { class: "field", for: "token" }, "Admin token"), input,
    h("p", {}, h("button", { type: "submit" }, "Log in")));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value);
    route();
  });
  show(form);
  input.focus();
}

// -- formatting ------------------------------------------------------------------------------

const fmt = {
  ms: (v) => (v === null || v === undefined ? "–" : v >= 10000 ? `${(v / 1000).toFixed(1)} s` : v < 10 && v > 0 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`),
  num: (v, d = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(d)),
  pct: (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)} %`),
  int: (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString("en")),
  usd: (v) => (v === null || v === undefined ? "–" : `$${Number(v).toFixed(Math.abs(v) < 10 ? 4 : 2)}`),
  short: (v) => (v ? String(v).slice(5, 19).replace("T", " ") : "–"),
  ts: (v) => (v ? String(v).replace("T", " ").replace(/\.\d+/, "").replace(/\+00:00$/, "Z") : "–"),
  clock: (d) => d.toISOString().slice(11, 19) + "Z",
};

// A rollout step as people say it: "shadow", "25% of traffic (step 3 of 5)".
function stepLabel(steps, index) {
  if (index === null || index === undefined) return "–";
  if (index < 0) return "shadow (0% of traffic)";
  return `${steps[index]}% of traffic (step ${index + 1} of ${steps.length})`;
}

function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""}` }, text);
}

function statusBadge(status, error) {
  const ok = status === 200 && !error;
  return badge(status ?? "–", ok ? "good" : "bad");
}

function parseJSON(text) {
  try { return JSON.parse(text); } catch { return null; }
}

function hashQuery() {
  const [path, query] = location.hash.slice(1).split("?");
  return { path: path || "/overview", params: new URLSearchParams(query || "") };
}

function go(path, params) {
  const clean = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== "" && v !== null && v !== undefined && v !== false) clean.set(k, v);
  const query = clean.toString();
  location.hash = `#${path}${query ? `?${query}` : ""}`;
}

function select(name, value, options, attrs = {}) {
  return h("select", { name, id: attrs.id || `f-${name}`, ...attrs }, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

// A labelled form control: the label names the control by `for`, so every input has a name.
function field(label, control, hint) {
  const id = control.id || `f-${control.name}`;
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control,
    hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null);
}

function pager(offset, limit, shown, total, pageTo, id) {
  return h("nav", { class: "pager", "aria-label": "pages" },
    h("button", { type: "button", class: "secondary", disabled: offset === 0, onclick: () => pageTo(Math.max(0, offset - limit)) }, "← Previous"),
    h("span", { id }, shown ? `${offset + 1}–${offset + shown} of ${total}` : `0 of ${total}`),
    h("button", { type: "button", class: "secondary", disabled: offset + shown >= total, onclick: () => pageTo(offset + limit) }, "Next →"));
}

// -- word diff (LCS over words; long texts fall back to a plain side by side) -----------------

function wordDiff(a, b) {
  const split = (t) => (t || "").split(/(\s+|[^\p{L}\p{N}\s])/u).filter((p) => p !== "");
  const x = split(a), y = split(b);
  if (x.length * y.length > 250000) return null;
  const m = x.length, n = y.length;
  const dp = Array.from({ length: m + 1 }, () => new Uint32Array(n + 1));
  for (let i = m - 1; i >= 0; i--) for (let j = n - 1; j >= 0; j--)
    dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < m || j < n) {
    if (i < m && j < n && x[i] === y[j]) { out.push(["same", x[i]]); i++; j++; }
    else if (i < m && (j === n || dp[i + 1][j] >= dp[i][j + 1])) { out.push(["del", x[i]]); i++; }
    else { out.push(["ins", y[j]]); j++; }
  }
  return out;
}

// Removed words struck through, added words underlined, each run set apart by a space and
// named for screen readers, so "technical" → "billing" never reads "technicalbilling".
function diffView(base, other) {
  const parts = wordDiff(base, other);
  if (!parts) return h("pre", {}, other || "");
  const runs = [];
  for (const [kind, text] of parts) {
    const last = runs[runs.length - 1];
    if (last && last[0] === kind) last[1] += text;
    else runs.push([kind, text]);
  }
  const out = [];
  runs.forEach(([kind, text], k) => {
    if (kind === "same") { out.push(text); return; }
    if (k > 0 && runs[k - 1][0] !== "same" && !/\s$/.test(runs[k - 1][1])) out.push(" ");
    out.push(h(kind, { class: kind, title: kind === "del" ? "removed" : "added" }, text));
  });
  return h("pre", { class: "diff" }, out);
}

// -- plots (inline SVG built from numbers, labels as text nodes) ------------------------------

const COLORS = ["#2f5fd0", "#b3261e", "#1e7a45", "#8a5a00", "#7b3fa0", "#00707a", "#5b6576"];

// Round tick values from 0 up to a top at or above `hi` (the last tick is the chart's top).
function niceTicks(hi, count = 4) {
  const span = hi > 0 ? hi : 1;
  const step0 = span / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= step0 * (1 - 1e-9)) || step0;
  const top = Math.ceil(span / step - 1e-9) * step;
  const ticks = [];
  for (let k = 0; k * step <= top * (1 + 1e-9); k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

function timeTicks(t0, t1, count = 4) {
  if (t1 <= t0) return [t0];
  return Array.from({ length: count + 1 }, (_, k) => t0 + ((t1 - t0) * k) / count);
}

function timeLabel(t, span) {
  const iso = new Date(t).toISOString();
  if (span > 2 * 86400e3) return iso.slice(5, 10);
  if (span > 3600e3) return iso.slice(11, 16);
  return iso.slice(11, 19);
}

// A line chart over time. series: [{name, points: [{t, y}], dashed, color}]; the y range starts
// at 0 and its labels get the room they need, so no number is clipped.
function timeChart({ title, series, yFormat, yMax, width = 460, height = 210 }) {
  const yf = yFormat || ((v) => fmt.num(v, 2));
  const drawn = series.map((sr, k) => ({ ...sr, color: sr.color || COLORS[k % COLORS.length], points: sr.points.filter((p) => p.y !== null && p.y !== undefined && Number.isFinite(p.y)) }));
  const all = drawn.flatMap((sr) => sr.points);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": title });
  svg.append(s("title", {}, title));
  if (!all.length) {
    svg.append(s("text", { x: 12, y: 18, "font-weight": 600 }, title), s("text", { x: 12, y: 44 }, "no data yet"));
    return svg;
  }
  const hi = Math.max(yMax ?? 0, ...all.map((p) => p.y));
  const ticks = niceTicks(hi);
  const top = ticks[ticks.length - 1];
  const labelWidth = Math.max(...ticks.map((v) => yf(v).length)) * 6.6 + 10;
  const legendRows = Math.ceil(drawn.length / 3);
  const pad = { l: labelWidth, r: 14, t: 26 + 16 * legendRows, b: 26 };
  const ts = all.map((p) => p.t);
  const t0 = Math.min(...ts), t1 = Math.max(...ts);
  const X = (t) => pad.l + (t1 === t0 ? 0.5 : (t - t0) / (t1 - t0)) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - (y / top) * (height - pad.t - pad.b);
  svg.append(s("text", { x: 4, y: 15, "font-weight": 600 }, title));
  drawn.forEach((sr, k) => {
    const x = 8 + (k % 3) * ((width - 16) / 3), y = 32 + 16 * Math.floor(k / 3);
    svg.append(s("line", { x1: x, x2: x + 18, y1: y - 4, y2: y - 4, stroke: sr.color, "stroke-width": 2.5, "stroke-dasharray": sr.dashed ? "5 4" : "none" }),
      s("text", { x: x + 23, y }, sr.name));
  });
  for (const v of ticks) {
    svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: Y(v), y2: Y(v), stroke: "#e3e7ee" }),
      s("text", { x: pad.l - 6, y: Y(v) + 4, "text-anchor": "end" }, yf(v)));
  }
  const span = t1 - t0;
  const xt = timeTicks(t0, t1, width < 400 ? 2 : 3);
  xt.forEach((t, k) => {
    const anchor = xt.length === 1 ? "middle" : k === 0 ? "start" : k === xt.length - 1 ? "end" : "middle";
    svg.append(s("text", { x: X(t), y: height - 8, "text-anchor": anchor }, timeLabel(t, span)));
  });
  for (const sr of drawn) {
    if (!sr.points.length) continue;
    if (sr.dots === false && sr.points.length === 1) {
      // One threshold value so far: a level line across the plot.
      const y = Y(sr.points[0].y).toFixed(1);
      svg.append(s("path", { d: `M${pad.l},${y} L${width - pad.r},${y}`, fill: "none", stroke: sr.color, "stroke-width": 2, "stroke-dasharray": sr.dashed ? "5 4" : "none" }));
      continue;
    }
    const path = sr.points.map((p, k) => `${k ? "L" : "M"}${X(p.t).toFixed(1)},${Y(p.y).toFixed(1)}`).join(" ");
    svg.append(s("path", { d: path, fill: "none", stroke: sr.color, "stroke-width": 2, "stroke-dasharray": sr.dashed ? "5 4" : "none" }));
    if (sr.dots !== false) for (const p of sr.points) {
      svg.append(s("circle", { cx: X(p.t), cy: Y(p.y), r: 3.2, fill: p.bad ? "#b3261e" : sr.color },
        s("title", {}, `${sr.name} ${timeLabel(p.t, 1)}: ${yf(p.y)}${p.note ? ` (${p.note})` : ""}`)));
    }
  }
  return svg;
}

function weightBar(weights) {
  const width = 460, height = 28;
  const entries = Object.entries(weights);
  const students = entries.reduce((a, [, w]) => a + w, 0);
  const parts = [["teacher", Math.max(0, 100 - students)], ...entries];
  const colors = ["#4b5563", "#2f5fd0", "#1e7a45", "#8a5a00", "#7b3fa0"];  // all ≥ 4.5:1 with white
  const svg = s("svg", { class: "chart weights", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": parts.map(([n, w]) => `${n} ${w}%`).join(", ") });
  let x = 0;
  parts.forEach(([name, w], k) => {
    const wpx = (w / 100) * width;
    if (wpx > 0) {
      svg.append(s("rect", { x, y: 0, width: wpx, height, fill: colors[k % colors.length] }, s("title", {}, `${name}: ${w}%`)));
      if (wpx > 70) svg.append(s("text", { x: x + 6, y: 18, class: "on-dark" }, `${name} ${w}%`));
    }
    x += wpx;
  });
  return svg;
}

// -- overview ---------------------------------------------------------------------------------

async function overviewPage(params) {
  const windowName = params.get("window") || "24h";
  const routeName = params.get("route") || "";
  const [d, meta] = await Promise.all([api(`/ui/api/summary?window=${encodeURIComponent(windowName)}`), api("/ui/api/overview")]);
  const groups = d.groups.filter((g) => !routeName || g.route === routeName);
  const series = d.series.filter((g) => !routeName || g.route === routeName);
  const form = h("form", { class: "filters card", id: "overview-filters" },
    field("time window", select("window", windowName, [["1h", "last hour"], ["24h", "last 24 hours"], ["7d", "last 7 days"], ["all", "all time"]])),
    field("route", select("route", routeName, [["", "all routes"], ...meta.routes.map((r) => [r, r])])),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => { event.preventDefault(); go("/overview", Object.fromEntries(new FormData(form).entries())); });
  const kpi = (label, value, id) => h("div", { class: "kpi", id }, h("span", { class: "kpi-label" }, label), h("span", { class: "kpi-value" }, value));
  const sum = (key) => groups.reduce((a, g) => a + (g[key] || 0), 0);
  const requests = sum("requests"), errors = sum("errors");
  const saved = d.priced ? sum("teacher_cost_usd") - sum("cost_usd") : null;
  const keyOf = (g) => `${g.route ?? "(no route)"} · ${g.variant ?? "–"}`;
  const names = [...new Set(series.map(keyOf))];
  const line = (key, transform) => names.map((name) => ({
    name, points: series.filter((g) => keyOf(g) === name).map((g) => ({ t: Date.parse(g.bucket), y: transform ? transform(g) : g[key] })),
  }));
  const costSeries = [
    { name: "spent", points: bucketSums(series, (g) => g.cost_usd) },
    { name: "at teacher price", dashed: true, points: bucketSums(series, (g) => g.teacher_cost_usd) },
    { name: "saved", points: bucketSums(series, (g) => g.saved_usd) },
  ];
  const charts = h("div", { class: "plots", id: "overview-charts" },
    timeChart({ title: "Requests per bucket", series: line("requests"), yFormat: (v) => fmt.int(v) }),
    timeChart({ title: "Error rate", series: line("error_rate"), yFormat: (v) => fmt.pct(v), yMax: 0.05 }),
    timeChart({ title: "p95 latency", series: line("p95_ms"), yFormat: fmt.ms }),
    timeChart({ title: "p95 time to first token", series: line("ttft_p95_ms"), yFormat: fmt.ms }),
    timeChart({ title: "Tokens (in + out)", series: line(null, (g) => g.prompt_tokens + g.completion_tokens), yFormat: (v) => fmt.int(v) }),
    d.priced ? timeChart({ title: "Cost: spent vs at the teacher's price", series: costSeries, yFormat: fmt.usd }) : null);
  const rows = groups.map((g) => h("tr", {},
    h("th", { scope: "row" }, h("a", { href: `#/traffic?route=${encodeURIComponent(g.route ?? "")}&variant=${encodeURIComponent(g.variant ?? "")}` }, keyOf(g))),
    h("td", { class: "num" }, fmt.int(g.requests)), h("td", { class: "num" }, fmt.pct(g.error_rate)),
    h("td", { class: "num" }, fmt.ms(g.p50_ms)), h("td", { class: "num" }, fmt.ms(g.p95_ms)),
    h("td", { class: "num" }, fmt.ms(g.ttft_p50_ms)), h("td", { class: "num" }, fmt.ms(g.ttft_p95_ms)),
    h("td", { class: "num" }, `${fmt.int(g.prompt_tokens)} / ${fmt.int(g.completion_tokens)}`),
    h("td", { class: "num" }, d.priced ? fmt.usd(g.cost_usd) : "–"), h("td", { class: "num" }, d.priced ? fmt.usd(g.teacher_cost_usd) : "–"),
    h("td", { class: "num" }, d.priced ? fmt.usd(g.saved_usd) : "–")));
  show(h("h1", { tabindex: -1 }, "Overview"),
    h("p", { class: "muted" }, `Live traffic only (what users were answered with; shadow mirrors left out) · one point per ${bucketName(d.bucket_s)} · `,
      refreshNote()),
    form,
    h("div", { class: "kpis", id: "kpis" },
      kpi("requests", fmt.int(requests), "kpi-requests"), kpi("errors", `${fmt.int(errors)} (${fmt.pct(requests ? errors / requests : 0)})`, "kpi-errors"),
      kpi("tokens in / out", `${fmt.int(sum("prompt_tokens"))} / ${fmt.int(sum("completion_tokens"))}`, "kpi-tokens"),
      kpi("spent", d.priced ? fmt.usd(sum("cost_usd")) : "no prices set", "kpi-cost"),
      kpi("at the teacher's price", d.priced ? fmt.usd(sum("teacher_cost_usd")) : "–", "kpi-teacher-cost"),
      kpi("saved by students", d.priced ? fmt.usd(saved) : "–", "kpi-saved")),
    d.priced ? null : h("p", { class: "muted" }, "Cost needs per-token prices: add a pricing: section (per upstream model) to distill.yaml."),
    d.priced && d.unpriced.length ? h("p", { class: "muted", id: "unpriced" }, `No price configured for ${d.unpriced.join(", ")}: their tokens count as $0 in "spent", so "saved" is an upper bound.`) : null,
    groups.length ? null : h("p", { class: "muted", id: "no-traffic" }, "No live traffic in this window yet."),
    charts,
    h("h2", {}, "Per route and variant"),
    table("overview", "Per route and variant", ["route · variant", "requests", "errors", "p50", "p95", "TTFT p50", "TTFT p95", "tokens in / out", "spent", "at teacher price", "saved"], rows));
  const shown = location.hash;
  scheduleRefresh(async () => { if (location.hash === shown) await overviewPage(params); });
}

function bucketSums(series, value) {
  const by = new Map();
  for (const g of series) {
    const t = Date.parse(g.bucket);
    by.set(t, (by.get(t) || 0) + (value(g) || 0));
  }
  return [...by.entries()].sort((a, b) => a[0] - b[0]).map(([t, y]) => ({ t, y }));
}

function bucketName(seconds) {
  if (seconds % 86400 === 0) return seconds === 86400 ? "day" : `${seconds / 86400} days`;
  if (seconds % 3600 === 0) return seconds === 3600 ? "hour" : `${seconds / 3600} hours`;
  return `${seconds / 60} min`;
}

// -- auto-refresh: the overview and rollouts pages redraw themselves while they are shown ------

let refreshTimer = null;

function refreshNote() {
  return h("span", { id: "refreshed", "aria-live": "polite" }, `updated ${fmt.clock(new Date())}, refreshes every ${REFRESH_MS / 1000} s`);
}

function scheduleRefresh(refresh) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(async () => {
    // Not while a person is typing in a form or a dialog is open: the page would jump.
    const active = document.activeElement;
    if (active && ["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName) && view().contains(active)) return scheduleRefresh(refresh);
    try { await refresh(); } catch (error) { if (error instanceof AuthError) showLogin(error.message); }
  }, REFRESH_MS);
}

// -- traffic ---------------------------------------------------------------------------------

const FILTERS = ["route", "variant", "kind", "status", "user", "text", "feedback", "annotated", "since", "until"];

// A since/until value the API will accept, or a message saying what to type.
function timeProblem(name, value) {
  if (!value) return null;
  const ok = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/.test(value.trim()) && !Number.isNaN(Date.parse(value.trim().replace(" ", "T")));
  return ok ? null : `${name} "${value}" is not a time: use ISO 8601 in UTC, e.g. 2025-01-31T12:00`;
}

async function trafficPage(params) {
  const overview = await api("/ui/api/overview");
  const variants = [...new Set(overview.groups.map((g) => g.variant).filter(Boolean))];
  const get = (k) => params.get(k) || "";
  const problems = {};
  for (const k of ["since", "until"]) {
    const p = timeProblem(k, get(k));
    if (p) problems[k] = p;
  }
  const query = new URLSearchParams();
  for (const k of [...FILTERS, "paired", "offset"]) if (params.get(k) && !problems[k]) query.set(k, params.get(k));
  let page = { rows: [], total: 0, offset: 0, limit: 50 }, failure = null;
  if (!Object.keys(problems).length) {
    try { page = await api(`/ui/api/traffic?${query}`); } catch (error) {
      if (error instanceof AuthError) throw error;
      const name = ["since", "until"].find((k) => error.message.startsWith(`${k}=`));
      if (name) problems[name] = error.message; else failure = error.message;
    }
  }
  const timeInput = (name, placeholder) => h("input", {
    name, id: `f-${name}`, value: get(name), placeholder, size: 16, "aria-invalid": problems[name] ? "true" : null,
    "aria-describedby": problems[name] ? `f-${name}-error` : null,
  });
  const timeField = (label, name, placeholder) => h("div", { class: "field" }, h("label", { for: `f-${name}` }, label), timeInput(name, placeholder),
    h("span", { class: "field-error", id: `f-${name}-error`, role: problems[name] ? "alert" : null }, problems[name] || ""));
  const form = h("form", { class: "filters card", id: "filters", novalidate: true },
    field("route", select("route", get("route"), [["", "all"], ...overview.routes.map((r) => [r, r])])),
    field("variant", select("variant", get("variant"), [["", "all"], ...variants.map((v) => [v, v])])),
    field("kind", select("kind", get("kind"), [["", "all"], ["primary", "primary"], ["shadow", "shadow"], ["fallback", "fallback"], ["secondary", "secondary"]])),
    field("status", select("status", get("status"), [["", "all"], ["ok", "ok"], ["error", "error"]])),
    field("user", h("input", { name: "user", value: get("user"), size: 10 })),
    field("text contains (messages)", h("input", { name: "text", value: get("text"), size: 16, type: "search" })),
    field("feedback", select("feedback", get("feedback"), [["", "all"], ["any", "any"], ["negative", "negative"], ["positive", "positive"], ["none", "none"]])),
    field("annotated", select("annotated", get("annotated"), [["", "all"], ["any", "any"], ["none", "none"], ["correction", "corrected"], ["exclude", "excluded"], ["label", "labelled"]])),
    timeField("since (UTC)", "since", "2025-01-31T12:00"),
    timeField("until (UTC)", "until", "2025-01-31T18:00"),
    h("div", { class: "field check" }, h("input", { type: "checkbox", name: "paired", id: "f-paired", value: "true", checked: get("paired") === "true" }), h("label", { for: "f-paired" }, "shadow pairs only")),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = Object.fromEntries([...new FormData(form).entries()]);
    // Checked here, before the request: a bad time gets a message beside its field.
    for (const k of ["since", "until"]) {
      const problem = timeProblem(k, data[k]);
      const input = form.querySelector(`[name=${k}]`), out = form.querySelector(`#f-${k}-error`);
      input.toggleAttribute("aria-invalid", Boolean(problem));
      if (problem) input.setAttribute("aria-describedby", out.id); else input.removeAttribute("aria-describedby");
      out.textContent = problem || "";
      out.setAttribute("role", problem ? "alert" : "status");
    }
    const bad = form.querySelector("[aria-invalid]");
    if (bad) { bad.focus(); return; }
    go("/traffic", data);
  });
  const rows = page.rows.map((r) => h("tr", { "data-id": r.id },
    h("td", { class: "nowrap" }, h("a", { href: `#/exchange/${encodeURIComponent(r.id)}`, class: "open", title: r.ts, "aria-label": `open exchange ${r.id} from ${fmt.ts(r.ts)}` }, fmt.short(r.ts))),
    h("td", { class: "nowrap" }, r.route ?? "–"), h("td", { class: "nowrap" }, r.variant ?? "–"), h("td", {}, r.kind),
    h("td", {}, statusBadge(r.status, r.error)), h("td", { class: "num" }, fmt.ms(r.latency_ms)),
    h("td", { class: "num" }, `${r.prompt_tokens ?? "–"} / ${r.completion_tokens ?? "–"}`), h("td", { class: "user" }, r.user ?? ""),
    h("td", { class: "text", title: r.prompt || "" }, r.prompt || ""), h("td", { class: "text", title: r.answer || "" }, r.answer || r.error || ""),
    h("td", {}, r.feedback === null || r.feedback === undefined ? "" : badge(r.feedback, r.feedback <= 0 ? "bad" : "good")),
    h("td", {}, (r.annotations || "").split(",").filter(Boolean).map((a) => badge(a, "warn")))));
  const pageTo = (o) => go("/traffic", { ...Object.fromEntries(params.entries()), offset: o });
  show(h("h1", { tabindex: -1 }, "Traffic"), form,
    failure ? h("p", { class: "error", role: "alert", id: "error" }, failure) : null,
    pager(page.offset, page.limit, page.rows.length, page.total, pageTo, "count"),
    table("traffic", "Logged exchanges, newest first", ["time", "route", "variant", "kind", "status", "latency", "tokens in/out", "user", "prompt", "answer", "feedback", "annotations"], rows),
    rows.length || failure || Object.keys(problems).length ? null : h("p", { class: "muted" }, "No exchanges match these filters."));
}

// -- one exchange ----------------------------------------------------------------------------

// Text that may be long: the first LONG_TEXT characters, the rest behind a disclosure.
function longText(text, attrs = {}) {
  const value = text ?? "";
  if (value.length <= LONG_TEXT) return h("pre", attrs, value);
  return h("div", {}, h("pre", attrs, value.slice(0, LONG_TEXT) + " …"),
    h("details", { class: "more" }, h("summary", {}, `show all ${value.length.toLocaleString("en")} characters`), h("pre", {}, value)));
}

// A body the gateway cut at capture.max_body_bytes is stored as {truncated, original_bytes, head}.
function truncatedNote(body) {
  if (!body || body.truncated !== true) return null;
  return h("div", { class: "note truncated" },
    h("p", {}, `Stored truncated: the body was ${Number(body.original_bytes).toLocaleString("en")} bytes, over the gateway's capture limit (capture.max_body_bytes); only its first part was kept.`),
    h("details", {}, h("summary", {}, "the stored start of the body"), h("pre", {}, body.head || "")));
}

// One turn of a conversation: text, a refusal, tool calls with their arguments, a tool result.
function turnView(m) {
  const role = m.tool_call_id ? `${m.role} · result of ${m.tool_call_id}` : m.role || "?";
  return h("div", { class: "message" }, h("div", { class: "role" }, role),
    m.content ? longText(m.content) : null,
    m.refusal ? h("p", { class: "refusal" }, `Refused: ${m.refusal}`) : null,
    (m.tool_calls || []).map((c) => h("div", { class: "tool-call" },
      h("span", {}, "calls "), h("code", {}, `${c.name}(${c.arguments ?? ""})`))));
}

function messagesView(requestText, conversation) {
  const request = parseJSON(requestText);
  const cut = truncatedNote(request);
  if (cut) return cut;
  if (conversation) {  // every endpoint read as chat turns by the server (tool calls included)
    const tools = conversation.tools.length ? h("p", {}, `Tools offered: ${conversation.tools.join(", ")}`) : null;
    return [tools, ...conversation.messages.map(turnView)];
  }
  const text = (c) => (typeof c === "string" ? c : JSON.stringify(c, null, 2));
  if (request && Array.isArray(request.messages)) {
    return request.messages.map((m) => h("div", { class: "message" },
      h("div", { class: "role" }, m.role || "?"), longText(text(m.content))));
  }
  if (request && request.prompt !== undefined) return longText(String(request.prompt));
  if (request && request.input !== undefined) return longText(text(request.input));
  return longText(requestText || "");
}

function latestByKind(annotations) {
  const latest = {};
  for (const a of annotations) if (!latest[a.kind]) latest[a.kind] = a;  // newest first
  return latest;
}

function correctionCard(x, latest, save, message) {
  // Only the teacher's answers to live traffic become training data (dataset build); a
  // correction anywhere else would never be used, so the form is not offered there.
  if (x.kind === "shadow") {
    const primary = x.pair.find((p) => p.kind === "primary");
    return h("div", { class: "card", id: "no-correction" }, h("h2", {}, "Correct for training"),
      h("p", {}, "This is a shadow row: the student's mirrored answer, which users never saw and training never uses. A gold answer belongs to the exchange users got. ",
        primary ? h("a", { href: `#/exchange/${encodeURIComponent(primary.id)}`, id: "to-primary" }, "Correct its primary exchange") : null));
  }
  if (x.variant !== "teacher") {
    return h("div", { class: "card", id: "no-correction" }, h("h2", {}, "Correct for training"),
      h("p", {}, `The student ${x.variant} answered this one; dataset build learns only from the teacher's answers, so a correction here would never be used. Exclude or label it instead.`));
  }
  const logged = x.answer ?? "";
  const answerBox = h("textarea", { id: "correction", rows: 4, "aria-describedby": "correction-hint" }, (latest.correction && latest.correction.answer) || logged);
  const noteBox = h("input", { id: "note", name: "note", placeholder: "why (optional)", size: 40 });
  const saveButton = h("button", { type: "button", id: "save-correction", disabled: true,
    onclick: () => save({ kind: "correction", answer: answerBox.value, note: noteBox.value || null }) }, "Save correction");
  const check = () => { saveButton.disabled = !answerBox.value.trim() || answerBox.value.trim() === logged.trim(); };
  answerBox.addEventListener("input", check);
  check();
  return h("div", { class: "card" }, h("h2", {}, "Correct for training"), message,
    h("label", { for: "correction" }, "Gold answer (replaces the teacher's answer in the next dataset)"), answerBox,
    h("p", { class: "hint", id: "correction-hint" }, "Edit the answer to save it; an unchanged answer is not a correction."),
    h("div", { class: "field" }, h("label", { for: "note" }, "Note (optional)"), noteBox),
    h("div", { class: "actions" }, saveButton));
}

async function exchangePage(id) {
  const x = await api(`/ui/api/exchanges/${encodeURIComponent(id)}`);
  const latest = latestByKind(x.annotations);
  const excluded = latest.exclude && (!latest.include || latest.exclude.ts > latest.include.ts);
  const message = h("p", { id: "saved", class: "notice", role: "status" });
  const save = async (body) => {
    try {
      await api("/admin/annotations", { method: "POST", body: JSON.stringify({ request_id: x.id, ...body }) });
    } catch (error) {
      if (error instanceof AuthError) return showLogin(error.message);
      message.className = "error";
      message.setAttribute("role", "alert");
      message.textContent = error.message;
      return;
    }
    await exchangePage(id);
    document.getElementById("saved").textContent = `Saved (${body.kind}).`;
  };
  const labelBox = h("input", { id: "label", value: (latest.label && latest.label.label) || "", size: 20 });
  const gateNote = h("input", { id: "gate-note", placeholder: "why (optional)", size: 30 });
  const response = parseJSON(x.response);
  const meta = [["route", x.route], ["variant", x.variant], ["kind", x.kind], ["status", x.status], ["error", x.error || "–"],
    ["latency", fmt.ms(x.latency_ms)], ["time to first token", fmt.ms(x.ttft_ms)], ["upstream", fmt.ms(x.upstream_ms)],
    ["tokens in / out", `${x.prompt_tokens ?? "–"} / ${x.completion_tokens ?? "–"}`], ["finish", x.finish_reason ?? "–"],
    ["user", x.user ?? "–"], ["session", x.session ?? "–"], ["stream", String(x.stream)], ["model", x.model ?? "–"],
    ["upstream model", x.upstream_model ?? "–"], ["time", fmt.ts(x.ts)], ["pair", x.pair_id ?? "–"], ["tags", x.tags ?? "–"]];
  const pretty = (text) => { const v = parseJSON(text); return v === null ? text || "" : JSON.stringify(v, null, 2); };
  show(
    h("h1", { tabindex: -1 }, "Exchange ", h("code", {}, x.id), " ", excluded ? badge("excluded from training", "bad") : null,
      latest.correction ? badge("corrected", "warn") : null),
    h("dl", { class: "meta card" }, meta.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, v ?? "–")))),
    h("div", { class: "grid2" },
      h("section", { class: "card", "aria-labelledby": "h-request" }, h("h2", { id: "h-request" }, "Request"), messagesView(x.request, x.conversation)),
      h("section", { class: "card", "aria-labelledby": "h-response" }, h("h2", { id: "h-response" }, "Response"),
        truncatedNote(response) || (x.conversation && !x.answer && !x.error ? turnView(x.conversation.answer)
          : longText(x.answer ?? x.error ?? "", { id: "answer" })),
        latest.correction ? [h("h2", {}, "Correction (gold)"), diffView(x.answer, latest.correction.answer)] : null)),
    x.pair.length ? h("section", { class: "card", id: "pair" }, h("h2", {}, "Its pair (differences against this answer)"),
      x.pair.map((p) => h("div", {}, h("p", {}, h("a", { href: `#/exchange/${encodeURIComponent(p.id)}` }, `${p.kind} · ${p.variant}`), " ",
        statusBadge(p.status, p.error), ` ${fmt.ms(p.latency_ms)}`), diffView(x.answer, p.answer ?? p.error)))) : null,
    correctionCard(x, latest, save, message),
    h("div", { class: "card" }, h("h2", {}, "Training data and labels"),
      h("div", { class: "actions" }, h("div", { class: "field" }, h("label", { for: "gate-note" }, "Note (optional)"), gateNote),
        excluded
          ? h("button", { type: "button", class: "secondary", id: "include", onclick: () => save({ kind: "include", note: gateNote.value || null }) }, "Include in training again")
          : h("button", { type: "button", class: "danger", id: "exclude", onclick: () => save({ kind: "exclude", note: gateNote.value || null }) }, "Exclude from training")),
      h("div", { class: "actions" }, h("div", { class: "field" }, h("label", { for: "label" }, "Label"), labelBox),
        h("button", { type: "button", class: "secondary", id: "save-label", onclick: () => save({ kind: "label", label: labelBox.value }) }, "Save label"))),
    h("div", { class: "card" }, h("h2", {}, "History"),
      x.annotations.length || x.feedback.length ? table("history", "Annotations and feedback", ["when", "what", "who", "value", "note"], [
        x.annotations.map((a) => h("tr", {}, h("td", {}, fmt.ts(a.ts)), h("td", {}, a.kind), h("td", {}, a.author),
          h("td", {}, a.answer ?? a.label ?? ""), h("td", {}, a.note ?? ""))),
        x.feedback.map((f) => h("tr", {}, h("td", {}, fmt.ts(f.ts)), h("td", {}, "feedback"), h("td", {}, f.source ?? "client"),
          h("td", {}, `score ${f.score ?? "–"} ${f.label ?? ""}`), h("td", {}, f.comment ?? "")))]) : h("p", { class: "muted" }, "No feedback or annotations yet.")),
    h("details", { class: "card" }, h("summary", {}, "Raw JSON (pretty-printed)"),
      h("h3", {}, "request"), longText(pretty(x.request)), h("h3", {}, "response"), longText(pretty(x.response))));
}

// -- compare: shadow pairs ranked by disagreement ---------------------------------------------

async function comparePage(params) {
  const overview = await api("/ui/api/overview");
  const students = [...new Set(overview.groups.filter((g) => g.kind === "shadow").map((g) => g.variant))];
  const get = (k) => params.get(k) || "";
  const query = new URLSearchParams({ order: get("order") || "disagreement", offset: get("offset") || "0" });
  if (get("route")) query.set("route", get("route"));
  for (const k of ["student", "teacher_label", "student_label"]) if (params.has(k)) query.set(k, params.get(k));
  const page = await api(`/ui/api/pairs?${query}`);
  const confusion = params.has("teacher_label") ? `${get("teacher_label") || "(empty)"} → ${get("student_label") || "(empty)"}` : null;
  const form = h("form", { class: "filters card", id: "compare-filters" },
    field("route", select("route", page.route || "", page.routes.map((r) => [r, r]))),
    field("student", select("student", get("student"), [["", "all"], ...students.map((v) => [v, v])])),
    field("order", select("order", get("order") || "disagreement", [["disagreement", "worst first"], ["newest", "newest first"]])),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => { event.preventDefault(); go("/compare", Object.fromEntries(new FormData(form).entries())); });
  const pageTo = (o) => go("/compare", { ...Object.fromEntries(params.entries()), offset: o });
  const measure = { label: "labels: a pair disagrees when the labels differ; the most common confusions come first",
    json: "JSON: 1 − field-level F1 (missing, extra and changed fields all count)" }[page.mode]
    || `text (${page.mode}): the shared answer comparison decides agreement; disagreeing pairs are ordered by word-level distance`;
  const explain = (r) => {
    if (page.mode === "label" && r.confusion) return r.disagreement > 0 ? `${r.confusion[0]} → ${r.confusion[1]} (×${r.confusion_count})` : "same label";
    if (page.mode === "json" && r.fields) return r.fields.length ? `fields: ${r.fields.join(", ")}` : "all fields match";
    return "";
  };
  const summaryTable = page.mode === "label" && page.confusions.length
    ? table("confusions", "Confusion pairs: teacher's label → student's label", ["teacher says", "student says", "pairs", ""],
      page.confusions.map((c) => h("tr", {}, h("td", {}, c.teacher || "(empty)"), h("td", {}, c.student || "(empty)"), h("td", { class: "num" }, c.count),
        h("td", {}, h("a", { class: "only-confusion", href: `#/compare?${new URLSearchParams({ route: page.route || "", student: get("student"), teacher_label: c.teacher, student_label: c.student })}` }, "show only these")))))
    : page.mode === "json" && page.fields.length
      ? table("field-misses", "Fields that differ, over all pairs", ["field", "pairs where it differs"],
        page.fields.map((f) => h("tr", {}, h("td", {}, f.field), h("td", { class: "num" }, f.count))))
      : null;
  show(h("h1", { tabindex: -1 }, "Compare: student vs the answer users got"), form,
    h("p", { id: "pair-summary" }, `${page.total} shadow pairs · exact agreement ${fmt.pct(page.agreement_rate)} · mean disagreement ${fmt.num(page.mean_disagreement)}`,
      page.scored < page.total ? ` · the newest ${page.scored} ranked` : ""),
    h("p", { class: "muted", id: "measure" }, `Disagreement for ${measure}.`),
    confusion ? h("p", { id: "only" }, `Showing only pairs where the teacher says ${confusion.replace(" → ", " and the student says ")} (${page.shown}). `,
      h("a", { href: `#/compare?${new URLSearchParams({ route: page.route || "", student: get("student") })}` }, "show all pairs")) : null,
    summaryTable,
    pager(page.offset, page.limit, page.rows.length, page.shown, pageTo, "pair-count"),
    table("pairs", "Shadow pairs", ["disagreement", "student", "prompt", "answer users got", "student's answer (diff)", ""], page.rows.map((r) => h("tr", {},
      h("td", { class: "num" }, fmt.num(r.disagreement, 2), h("br"), h("span", { class: "bar", style: `width:${Math.round(60 * r.disagreement)}px` }),
        h("div", { class: "why" }, explain(r))),
      h("td", {}, r.student, h("br"), h("span", { class: "muted" }, `vs ${r.baseline}`)),
      h("td", { class: "wide" }, h("pre", {}, r.prompt || "")),
      h("td", {}, h("pre", {}, r.primary_answer || "")),
      h("td", {}, diffView(r.primary_answer, r.student_answer)),
      h("td", {}, h("a", { href: `#/exchange/${encodeURIComponent(r.primary_id)}`, class: "open-pair" }, "open / correct"))))));
}

// -- eval runs: one run's examples, and two runs side by side --------------------------------

async function evalPage(id, params) {
  const offset = Number(params.get("offset") || 0);
  const page = await api(`/ui/api/runs/${encodeURIComponent(id)}/examples?offset=${offset}`);
  const pageTo = (o) => go(`/eval/${encodeURIComponent(id)}`, { offset: o });
  show(h("h1", { tabindex: -1 }, "Eval run: student vs teacher"),
    h("p", { id: "eval-summary" }, `${page.total} held-out examples · ${page.disagreements} disagreements · worst first`),
    pager(offset, page.limit, page.rows.length, page.total, pageTo, "eval-count"),
    table("eval-examples", "Held-out examples, worst first", ["agrees", "token F1", "prompt", "teacher", "student (diff)"], page.rows.map((r) => h("tr", {},
      h("td", {}, r.agree ? "yes" : "no"), h("td", { class: "num" }, fmt.num(r.token_f1, 2)),
      h("td", { class: "wide" }, h("pre", {}, r.prompt || "")),
      h("td", {}, h("pre", {}, r.teacher || "")),
      h("td", {}, diffView(r.teacher, r.student))))));
}

const HEADLINE = ["agreement", "accuracy", "macro_f1", "exact_match", "token_f1", "rouge_l", "json_valid", "field_f1", "p95_ms"];

function metricCells(metrics) {
  if (!metrics || typeof metrics !== "object") return "";
  const keys = [...HEADLINE, "p50_latency_ms", "train_loss", "eval_loss"];
  return keys.filter((k) => typeof metrics[k] === "number").map((k) => `${k} ${fmt.num(metrics[k])}`).join(" · ");
}

async function evalsPage(params) {
  const { runs } = await api("/ui/api/evals");
  const a = params.get("a") || (runs[1] && runs[1].id) || "";
  const b = params.get("b") || (runs[0] && runs[0].id) || "";
  const changed = params.get("changed") === "true";
  const name = (r) => `${r.adapter} · ${fmt.ts(r.ts)}`;
  const options = runs.map((r) => [r.id, name(r)]);
  const form = h("form", { class: "filters card", id: "eval-pick" },
    field("run A (before)", select("a", a, options)), field("run B (after)", select("b", b, options)),
    h("div", { class: "field check" }, h("input", { type: "checkbox", id: "f-changed", name: "changed", value: "true", checked: changed }), h("label", { for: "f-changed" }, "only changed answers")),
    h("button", { type: "submit" }, "Compare"));
  form.addEventListener("submit", (event) => { event.preventDefault(); go("/evals", Object.fromEntries(new FormData(form).entries())); });
  const list = table("eval-runs", "Eval runs, newest first", ["adapter", "time", "dataset", "metrics", ""], runs.map((r) => h("tr", {},
    h("th", { scope: "row" }, r.adapter), h("td", { class: "nowrap" }, fmt.ts(r.ts)), h("td", {}, (r.dataset_hash || "").slice(0, 12)),
    h("td", {}, metricCells(r.metrics)),
    h("td", {}, r.config && r.config.out_dir ? h("a", { href: `#/eval/${encodeURIComponent(r.id)}`, class: "open-eval" }, "examples") : ""))));
  if (runs.length < 2 || !a || !b || a === b) {
    return show(h("h1", { tabindex: -1 }, "Eval runs"),
      runs.length < 2 ? h("p", { class: "muted" }, "Two eval runs recorded in this store (distill eval --store …) can be compared side by side.") : form,
      a === b && runs.length >= 2 ? h("p", { class: "muted" }, "Pick two different runs.") : null, list);
  }
  const offset = Number(params.get("offset") || 0);
  const query = new URLSearchParams({ a, b, offset, changed });
  let cmp;
  try { cmp = await api(`/ui/api/evals/compare?${query}`); } catch (error) {
    if (error instanceof AuthError) throw error;
    return show(h("h1", { tabindex: -1 }, "Eval runs"), form, h("p", { class: "error", role: "alert" }, error.message), list);
  }
  const verdict = { better: "good", worse: "bad", same: "" };
  const pageTo = (o) => go("/evals", { a, b, changed, offset: o });
  show(h("h1", { tabindex: -1 }, `Eval runs: ${cmp.a.adapter} vs ${cmp.b.adapter}`), form,
    h("h2", {}, "Metrics"),
    table("eval-deltas", "Metric deltas, B minus A", ["metric", `A: ${cmp.a.adapter}`, `B: ${cmp.b.adapter}`, "B − A", ""], cmp.deltas.map((d) => h("tr", {},
      h("th", { scope: "row" }, d.metric), h("td", { class: "num" }, fmt.num(d.a)), h("td", { class: "num" }, fmt.num(d.b)),
      h("td", { class: "num" }, `${d.delta > 0 ? "+" : ""}${fmt.num(d.delta)}`), h("td", {}, badge(d.verdict, verdict[d.verdict]))))),
    h("h2", {}, "Per example"),
    h("p", { id: "eval-compare-summary" }, `${cmp.examples} examples in both · ${cmp.changed} answered differently · ${cmp.fixed} fixed · ${cmp.broken} broken`,
      cmp.unmatched ? ` · ${cmp.unmatched} not in both runs` : ""),
    pager(cmp.offset, cmp.limit, cmp.rows.length, cmp.total, pageTo, "eval-compare-count"),
    table("eval-compare", "Examples, broken and fixed first", ["#", "outcome", "prompt", "teacher", "A (diff vs teacher)", "B (diff vs A)"], cmp.rows.map((r) => h("tr", {},
      h("td", { class: "num" }, r.index), h("td", {}, r.outcome ? badge(r.outcome, r.outcome === "fixed" ? "good" : "bad") : r.changed ? "changed" : "same"),
      h("td", { class: "wide" }, h("pre", {}, r.prompt || "")), h("td", {}, h("pre", {}, r.teacher || "")),
      h("td", {}, diffView(r.teacher, r.a)), h("td", {}, diffView(r.a, r.b))))),
    h("h2", {}, "All eval runs"), list);
}

// -- data: what a dataset build starts from, datasets with their cards, runs, adapters -------

function cardView(d) {
  const c = d.card || {};
  const files = c.files || {};
  const rowsOf = (name) => (files[name] && files[name].rows) ?? "–";
  return h("div", { class: "card dataset", "data-key": d.key },
    h("h3", {}, `${c.route || "dataset"} · ${(c.content_hash || d.key || "").slice(0, 12)}`),
    h("p", { class: "muted" }, `${c.created_at ? fmt.ts(c.created_at) : "no card found"}${d.dir ? ` · ${d.dir}` : ""}`),
    h("p", {}, `train ${rowsOf("train.jsonl")} · eval ${rowsOf("eval.jsonl")} rows · used by ${d.adapters.length ? d.adapters.join(", ") : "no registered adapter"} · ${d.runs} run(s)`),
    d.card ? h("details", {}, h("summary", {}, "dataset card"), longText(JSON.stringify(d.card, null, 2))) : null);
}

async function dataPage(params) {
  const query = params.get("route") ? `?route=${encodeURIComponent(params.get("route"))}` : "";
  const [d, ds] = await Promise.all([api(`/ui/api/data${query}`), api("/ui/api/datasets")]);
  const form = h("form", { class: "filters card" },
    field("route", select("route", d.route || "", d.routes.map((r) => [r, r]))),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => { event.preventDefault(); go("/data", Object.fromEntries(new FormData(form).entries())); });
  const filterTotal = Object.values(d.filters).reduce((a, b) => a + b, 0) || 1;
  show(h("h1", { tabindex: -1 }, "Datasets, runs and adapters"), form,
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, `What dataset build --route ${d.route} starts from`),
        table("filter-counts", "Rows per dataset build filter", ["rows", h("th", { class: "num", scope: "col" }, "count"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "share"))],
          Object.entries(d.filters).sort((a, b) => b[1] - a[1]).map(([k, v]) => h("tr", {},
            h("td", {}, k === "kept" ? "kept for curation" : `removed: ${k}`), h("td", { class: "num" }, v),
            h("td", {}, h("span", { class: "bar", style: `width:${Math.round(120 * v / filterTotal)}px;background:${k === "kept" ? "#1e7a45" : "#5b6576"}` })))))),
      h("div", { class: "card" }, h("h2", {}, "People's annotations in force"),
        h("table", { id: "annotation-counts" }, h("tbody", {}, ["correction", "exclude", "label"].map((k) => h("tr", {},
          h("td", {}, { correction: "corrected answers", exclude: "excluded exchanges", label: "labelled" }[k]),
          h("td", { class: "num" }, d.annotations[k] || 0))))),
        h("p", {}, h("a", { href: `#/traffic?annotated=any&route=${encodeURIComponent(d.route || "")}` }, "see them in Traffic")))),
    h("h2", {}, "Datasets"),
    ds.datasets.length ? h("div", { class: "datasets", id: "datasets" }, ds.datasets.map(cardView))
      : h("p", { class: "muted" }, "No dataset known yet: adapters registered from `distill train` output and eval runs recorded with --store name theirs."),
    h("h2", {}, "Data-size curve (sweeps)"),
    d.curves.length ? h("div", { class: "plots" }, d.curves.map((c) => curveChart(c)))
      : h("p", { class: "muted" }, "No data-size sweep recorded yet (distill sweep --data-sizes …)."),
    h("h2", {}, "Runs"),
    d.runs.length ? null : h("p", { class: "muted" }, "No train, eval or sweep run recorded in this store yet (--store on distill eval / sweep)."),
    table("runs", "Train, eval and sweep runs", ["time", "kind", "adapter", "sweep", "dataset", "base model", "metrics"], d.runs.map((r) => h("tr", {},
      h("td", { class: "nowrap" }, fmt.ts(r.ts)), h("td", {}, r.kind), h("td", {}, (r.adapter_path || "").split("/").filter(Boolean).pop() || "–"),
      h("td", {}, (r.sweep_id || "").slice(0, 8)), h("td", {}, (r.dataset_hash || "").slice(0, 12)), h("td", {}, r.base_model ?? ""),
      h("td", {}, metricCells(r.metrics), r.kind === "eval" && r.config && r.config.out_dir
        ? h("span", {}, " · ", h("a", { href: `#/eval/${encodeURIComponent(r.id)}`, class: "open-eval" }, "examples")) : null)))),
    h("h2", {}, "Adapters and their lineage"),
    d.adapters.length ? null : h("p", { class: "muted" }, "No adapter registered yet (distill adapters register)."),
    table("adapters", "Registered adapters", ["name", "state", "route", "dataset", "metrics", "lineage"], d.adapters.map((a) => h("tr", {},
      h("th", { scope: "row" }, a.name), h("td", {}, badge(a.state, a.state === "stable" ? "good" : "")),
      h("td", {}, a.route ?? ""), h("td", {}, (a.dataset_hash || "").slice(0, 12)), h("td", {}, metricCells(a.metrics)),
      h("td", {}, h("details", {}, h("summary", {}, a.base_model), longText(JSON.stringify(a.lineage, null, 2))))))));
}

function curveChart(c) {
  // x is the share of training data (not time): reuse the time chart's scale with percents.
  const svg = timeChart({ title: `${c.metric} against training data used (sweep ${c.sweep_id.slice(0, 8)})`,
    series: [{ name: c.metric, points: c.points.map(([x, y]) => ({ t: x, y })) }], yMax: 1 });
  for (const text of svg.querySelectorAll("text")) if (/^\d{2}:\d{2}/.test(text.textContent)) text.remove();
  return svg;
}

// -- rollouts: start, watch the gates live, act -----------------------------------------------

// Routes without a rollout in progress: where one can be started.
function freeRoutes(d) {
  const busy = new Set(d.history.filter((x) => ["shadow", "canary", "paused"].includes(x.state)).map((x) => x.route));
  return d.routes.map((r) => r.name).filter((r) => !busy.has(r));
}

let rolloutsGeneration = 0;

async function rolloutsPage() {
  // A refresh still awaiting its answer when the page is drawn again (after a start) must not
  // reschedule itself over the new page's refresh: each drawing has its own generation.
  const generation = ++rolloutsGeneration;
  const d = await api("/ui/api/rollouts");
  show(h("h1", { tabindex: -1 }, "Rollouts"), h("p", { class: "muted" }, refreshNote()), startForm(d),
    h("div", { id: "rollout-cards" }, rolloutCards(d)));
  const refresh = async () => {
    if (generation !== rolloutsGeneration) return;
    if (hashQuery().path !== "/rollouts" || !document.getElementById("rollout-cards")) return;
    const fresh = await api("/ui/api/rollouts");
    if (generation !== rolloutsGeneration) return;
    document.getElementById("rollout-cards").replaceChildren(...rolloutCards(fresh));
    // A rollout that ended frees its route: the start form offers it again (the form on the
    // page says which routes it was drawn for).
    const form = document.getElementById("start-rollout");
    if (form && freeRoutes(fresh).join(",") !== form.dataset.free) form.replaceWith(startForm(fresh));
    document.getElementById("refreshed").textContent = `updated ${fmt.clock(new Date())}, refreshes every ${REFRESH_MS / 1000} s`;
    scheduleRefresh(refresh);
  };
  scheduleRefresh(refresh);
}

async function act(route, action, adapter) {
  const words = { rollback: `Roll back ${adapter} on ${route}? Its traffic weight goes to 0.`, promote: `Promote ${adapter} to 100% of ${route}'s traffic now, skipping the remaining gates?` };
  if (words[action] && !confirm(words[action])) return;
  const out = document.getElementById("action-message");
  try {
    await api(`/admin/rollouts/${encodeURIComponent(route)}/${action}`, { method: "POST" });
    if (out) out.textContent = "";
  } catch (error) {
    if (error instanceof AuthError) return showLogin(error.message);
    if (out) { out.textContent = error.message; out.className = "error"; }
  }
  await rolloutsPage();
}

function startForm(d) {
  const free = freeRoutes(d);
  const g = d.defaults.gates;
  const number = (name, value, step, label, hint) => field(label, h("input", { type: "number", name, id: `start-${name}`, value, step, min: 0, inputmode: "decimal" }), hint);
  const adapters = d.adapters.map((a) => [a.name, `${a.name} (${a.state}${a.route ? `, ${a.route}` : ""})`]);
  const message = h("p", { id: "start-message", role: "status" });
  if (!free.length) {
    return h("div", { class: "card start", id: "start-rollout", "data-free": "" }, h("h2", {}, "Start a rollout"),
      h("p", { id: "start-message", role: "status" }, "Every route has a rollout in progress: promote or roll it back first."));
  }
  const form = h("form", { class: "card start", id: "start-rollout", "data-free": free.join(",") },
    h("h2", {}, "Start a rollout"),
    h("div", { class: "filters" },
      field("route", select("route", free[0] || "", free.map((r) => [r, r]), { id: "start-route" })),
      adapters.length ? field("adapter (from the registry)", select("adapter", "", adapters, { id: "start-adapter" }))
        : field("adapter (served name)", h("input", { name: "adapter", id: "start-adapter", required: true }), "no adapter registered: type the name vLLM serves"),
      field("canary steps, % of traffic", h("input", { name: "steps", id: "start-steps", value: d.defaults.steps.join(", "), "aria-describedby": "start-steps-hint" }), "rising, ending at 100"),
      number("min_agreement", g.min_agreement, 0.01, "min agreement (0–1)"),
      number("min_agreement_pairs", g.min_agreement_pairs, 1, "shadow pairs needed"),
      number("min_requests", g.min_requests, 1, "requests per step"),
      number("min_seconds", g.min_seconds, 1, "seconds per step"),
      number("max_error_rate_increase", g.max_error_rate_increase, 0.01, "max error-rate increase"),
      number("latency_ratio", g.latency_ratio, 0.1, "max p95 latency ratio")),
    message,
    h("button", { type: "submit", id: "start-button" }, "Start in shadow"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    const steps = String(data.steps || "").split(/[\s,]+/).filter(Boolean).map(Number);
    if (!data.route || !data.adapter || steps.some((x) => !Number.isFinite(x))) {
      message.className = "error";
      message.setAttribute("role", "alert");
      message.textContent = !data.route ? "No free route." : !data.adapter ? "Name the adapter to roll out." : `steps "${data.steps}": give percentages like 1, 5, 25, 50, 100`;
      return;
    }
    const gates = {};
    for (const k of ["min_agreement", "min_agreement_pairs", "min_requests", "min_seconds", "max_error_rate_increase", "latency_ratio"]) if (data[k] !== "") gates[k] = Number(data[k]);
    try {
      await api("/admin/rollouts", { method: "POST", body: JSON.stringify({ route: data.route, adapter: data.adapter, steps, gates }) });
    } catch (error) {
      if (error instanceof AuthError) return showLogin(error.message);
      message.className = "error";
      message.setAttribute("role", "alert");
      message.textContent = error.message;
      return;
    }
    await rolloutsPage();
    document.getElementById("start-message").textContent = `Started ${data.adapter} on ${data.route} in shadow.`;
  });
  return form;
}

function rolloutCards(d) {
  return [h("p", { id: "action-message", role: "status" }), ...d.routes.map((r) => {
    const rollouts = d.history.filter((x) => x.route === r.name);
    return h("section", { class: "card route", "data-route": r.name, "aria-label": `route ${r.name}` },
      h("h2", {}, `Route ${r.name}`),
      h("p", {}, "Traffic weights now: ", h("span", { class: "weights-text" }, Object.keys(r.weights).length
        ? Object.entries(r.weights).map(([k, v]) => `${k} ${v}%`).join(", ") : "all on the teacher"),
        r.shadow ? ` · shadowing ${r.shadow[0]} on ${fmt.pct(r.shadow[1])} of traffic` : ""),
      weightBar(r.weights),
      rollouts.length ? rollouts.map((x, k) => rolloutView(x, k === 0)) : h("p", { class: "muted" }, "No rollouts yet."));
  })];
}

// The gates now, student against the teacher over the current step (the controller's windows).
function liveGates(x) {
  const live = x.live, g = x.gates;
  if (!live || !["shadow", "canary", "paused"].includes(x.state)) return null;
  const st = live.student || {}, te = live.teacher || {};
  const rate = (w) => (w.requests ? w.errors / w.requests : 0);
  const limit = (t, ratio, slack) => (t === null || t === undefined ? null : Math.max(t * ratio, t + slack));
  const elapsed = live.step_started_at ? Date.now() / 1000 - live.step_started_at : null;
  const p95Limit = limit(te.p95_ms, g.latency_ratio, g.latency_slack_ms);
  const ttftLimit = limit(te.ttft_p95_ms, g.ttft_ratio, g.ttft_slack_ms);
  const negRate = (w) => (w.feedback ? w.negative_feedback / w.feedback : 0);
  const rows = [
    ["student requests", fmt.int(st.requests), fmt.int(te.requests), `≥ ${g.min_requests}`, st.requests >= g.min_requests ? "ok" : "waiting"],
    ["time on this step", elapsed === null ? "–" : `${Math.round(elapsed)} s`, "", `≥ ${g.min_seconds} s`, elapsed !== null && elapsed >= g.min_seconds ? "ok" : "waiting"],
    ["agreement with teacher", fmt.num(st.agreement), "1 (itself)", `≥ ${g.min_agreement} over ${g.min_agreement_pairs} pairs (${st.agreement_pairs || 0} so far)`,
      (st.agreement_pairs || 0) < g.min_agreement_pairs || st.agreement === null ? "waiting" : st.agreement >= g.min_agreement ? "ok" : "failing"],
    ["error rate", fmt.pct(rate(st)), fmt.pct(rate(te)), `≤ ${fmt.pct(rate(te) + g.max_error_rate_increase)}`, rate(st) <= rate(te) + g.max_error_rate_increase ? "ok" : "failing"],
    ["p95 latency", fmt.ms(st.p95_ms), fmt.ms(te.p95_ms), p95Limit === null ? "needs teacher traffic" : `≤ ${fmt.ms(p95Limit)}`,
      p95Limit === null || st.p95_ms === null ? "waiting" : st.p95_ms <= p95Limit ? "ok" : "failing"],
    ["p95 time to first token", fmt.ms(st.ttft_p95_ms), fmt.ms(te.ttft_p95_ms), ttftLimit === null ? "needs streamed teacher traffic" : `≤ ${fmt.ms(ttftLimit)}`,
      ttftLimit === null || st.ttft_p95_ms === null ? "waiting" : st.ttft_p95_ms <= ttftLimit ? "ok" : "failing"],
    ["negative feedback", fmt.pct(negRate(st)), fmt.pct(negRate(te)), `≤ teacher + ${g.max_negative_feedback_increase} once ${g.min_feedback} rated`,
      (st.feedback || 0) < g.min_feedback ? "waiting" : negRate(st) <= negRate(te) + g.max_negative_feedback_increase ? "ok" : "failing"],
  ];
  const kind = { ok: "good", failing: "bad", waiting: "warn" };
  // Whose numbers these are: in a fleet (or one host's workers) every replica's, merged, as
  // the leader's gates judge them; a single gateway judges its own.
  const scope = {
    fleet: "Fleet-wide numbers: every replica's, merged, as the leader's gates judge them (updated each tick).",
    workers: "Numbers of every worker on this host, merged, as the gates judge them (updated each tick).",
    replica: "This replica's numbers only: the fleet's could not be read just now.",
  }[live.window_scope];
  const gates = table(`gates-${x.id}`, `Gates now for ${x.adapter}`, ["gate", "student", `baseline (${live.baseline || "teacher"})`, "threshold", "status"],
    rows.map(([name, a, b, th, status]) => h("tr", { "data-gate": name }, h("th", { scope: "row" }, name), h("td", { class: "num" }, a), h("td", { class: "num" }, b),
      h("td", {}, th), h("td", {}, badge(status, kind[status])))), { class: "gates" });
  return scope ? h("div", {}, h("p", { class: "muted window-scope", "data-scope": live.window_scope }, scope), gates) : gates;
}

function rolloutView(x, current) {
  const active = ["shadow", "canary", "paused"].includes(x.state);
  const at = stepLabel(x.steps, x.step_index);
  const step = { rolled_back: `0% of traffic (was at ${at})`, promoted: "100% of traffic", replaced: "replaced by a later promotion", paused: `paused at ${at}` }[x.state] || at;
  const stateClass = { promoted: "good", rolled_back: "bad", paused: "warn" }[x.state] || "";
  const button = (action, label, enabled, cls = "secondary") => h("button", { type: "button", class: cls, "data-action": action, disabled: !enabled, onclick: () => act(x.route, action, x.adapter) }, label);
  const buttons = h("div", { class: "actions" },
    button("pause", "Pause", ["shadow", "canary"].includes(x.state)),
    button("resume", "Resume", x.state === "paused"),
    button("promote", "Promote", active),
    button("rollback", "Roll back", active || x.state === "promoted", "danger"));
  const when = (ts) => (ts === "now" ? Date.now() : Date.parse(ts));
  const plots = x.series.filter((sr) => sr.points.length).map((sr) => {
    const bad = (p) => p.threshold !== null && (sr.direction === "min" ? p.value < p.threshold : p.value > p.threshold);
    const yf = sr.name.includes("latency") ? fmt.ms : sr.name.includes("rate") ? fmt.pct : (v) => fmt.num(v, 2);
    const series = [
      { name: "student", points: sr.points.map((p) => ({ t: when(p.ts), y: p.value, bad: bad(p), note: p.decision })) },
      sr.direction === "min" ? null : { name: "teacher", color: "#5b6576", points: sr.points.map((p) => ({ t: when(p.ts), y: p.teacher, note: p.decision })) },
      { name: "threshold", color: "#b3261e", dashed: true, dots: false, points: sr.points.map((p) => ({ t: when(p.ts), y: p.threshold })) },
    ].filter(Boolean);
    return timeChart({ title: `${sr.name} (gate ${sr.gate})`, series, yFormat: yf, yMax: sr.direction === "min" ? 1 : undefined });
  });
  const numbers = (n) => {
    if (!n || !n.student) return "";
    const st = n.student, te = n.teacher || {};
    return `student ${st.requests} req, errors ${fmt.pct(st.error_rate)}, p95 ${fmt.ms(st.p95_ms)}, agreement ${fmt.num(st.agreement)} over ${st.agreement_pairs} pairs · teacher ${te.requests ?? "–"} req, errors ${fmt.pct(te.error_rate)}, p95 ${fmt.ms(te.p95_ms)}`;
  };
  return h("div", { class: `rollout${current ? " current" : ""}`, "data-id": x.id, "data-adapter": x.adapter, "data-state": x.state },
    h("h3", {}, `${current ? "" : "Earlier: "}${x.adapter} `, h("span", { class: `badge ${stateClass}`, "data-role": "state" }, x.state.replace("_", " ")), ` ${step}`),
    h("p", { class: "muted" }, `started ${fmt.ts(x.created_at)} · steps ${x.steps.map((p) => `${p}%`).join(" → ")} · gates: min agreement ${x.gates.min_agreement}, min requests ${x.gates.min_requests}`),
    current ? buttons : null,
    current ? liveGates(x) : null,
    h("p", {}, h("a", { href: `#/compare?student=${encodeURIComponent(x.adapter)}&route=${encodeURIComponent(x.route)}`, class: "failing" }, `${x.adapter}'s examples, worst first →`)),
    plots.length ? h("div", { class: "plots" }, plots) : null,
    table(`decisions-${x.id}`, `Decisions for ${x.adapter}`, ["when", "decision", "from → to", "reasons", "numbers"], x.decisions.map((dd) => h("tr", {},
      h("td", { class: "nowrap" }, fmt.ts(dd.ts)),
      h("td", {}, badge(dd.decision, dd.decision === "rollback" ? "bad" : dd.decision === "promote" ? "good" : "")),
      h("td", {}, dd.decision === "start" ? `starts in ${stepLabel(x.steps, dd.to_step)}`
        : `${stepLabel(x.steps, dd.from_step)} → ${dd.decision === "rollback" ? "0% of traffic" : dd.decision === "promote" ? "100% of traffic" : stepLabel(x.steps, dd.to_step)}`),
      h("td", {}, dd.reason ?? ""), h("td", { class: "small" }, numbers(dd.numbers)))), { class: "decisions" }));
}

// -- router ----------------------------------------------------------------------------------

let lastPath = null;

async function route() {
  clearTimeout(refreshTimer);
  if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
  document.getElementById("logout").hidden = false;
  const { path, params } = hashQuery();
  for (const a of document.querySelectorAll("#nav a")) {
    const on = path.startsWith(a.getAttribute("href").slice(1)) || (path.startsWith("/exchange/") && a.getAttribute("href") === "#/traffic") || (path.startsWith("/eval/") && a.getAttribute("href") === "#/evals");
    a.classList.toggle("active", on);
    if (on) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const fresh = location.hash !== lastPath;
  lastPath = location.hash;
  delete document.body.dataset.rendered;
  try {
    if (path.startsWith("/exchange/")) await exchangePage(decodeURIComponent(path.slice("/exchange/".length)));
    else if (path === "/compare") await comparePage(params);
    else if (path.startsWith("/eval/")) await evalPage(decodeURIComponent(path.slice("/eval/".length)), params);
    else if (path === "/evals") await evalsPage(params);
    else if (path === "/data") await dataPage(params);
    else if (path === "/rollouts") await rolloutsPage();
    else if (path === "/traffic") await trafficPage(params);
    else await overviewPage(params);
  } catch (error) {
    if (error instanceof AuthError) return showLogin(error.message);
    show(h("h1", { tabindex: -1 }, "Something went wrong"), h("p", { class: "error", id: "error", role: "alert" }, error.message));
  }
  document.body.dataset.rendered = location.hash;  // which address the view shows (tests wait on it)
  // A new page starts at its top, with focus on its heading for screen readers and keyboards.
  if (fresh) {
    window.scrollTo(0, 0);
    const heading = view().querySelector("h1");
    if (heading && document.activeElement === document.body) heading.focus({ preventScroll: true });
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  document.getElementById("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); });
  // Keyboard users skip the navigation: focus the page's heading (or the first control).
  document.getElementById("skip").addEventListener("click", () => {
    const target = view().querySelector("h1, input, button, a");
    if (target) target.focus();
  });
  route();
});
