// Distill review console: a hash-routed page over /ui/api. Logged text is only ever put into
// the page as text nodes (never innerHTML), so prompts with markup show as typed.
"use strict";

const TOKEN_KEY = "distill-admin-token";
const SVG_NS = "http://www.w3.org/2000/svg";
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
  if (!response.ok) throw new Error((body.error && body.error.message) || `HTTP ${response.status}`);
  return body;
}

function showLogin(message) {
  document.getElementById("logout").hidden = true;
  const input = h("input", { type: "password", id: "token", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card login", id: "login" },
    h("h1", {}, "Distill review console"),
    h("p", { class: message ? "error" : "muted" }, message || "Enter the gateway's admin token."),
    h("label", { class: "field" }, "Admin token", input),
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
  ms: (v) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`),
  num: (v, d = 3) => (v === null || v === undefined ? "–" : Number(v).toFixed(d)),
  pct: (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)} %`),
  short: (v) => (v ? String(v).slice(5, 19).replace("T", " ") : "–"),
  ts: (v) => (v ? String(v).replace("T", " ").replace(/\.\d+/, "").replace(/\+00:00$/, "Z") : "–"),
};

function statusBadge(status, error) {
  const ok = status === 200 && !error;
  return h("span", { class: `badge ${ok ? "good" : "bad"}` }, status ?? "–");
}

function parseJSON(text) {
  try { return JSON.parse(text); } catch { return null; }
}

function hashQuery() {
  const [path, query] = location.hash.slice(1).split("?");
  return { path: path || "/traffic", params: new URLSearchParams(query || "") };
}

function go(path, params) {
  const clean = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) if (v !== "" && v !== null && v !== undefined && v !== false) clean.set(k, v);
  const query = clean.toString();
  location.hash = `#${path}${query ? `?${query}` : ""}`;
}

// -- word diff (LCS over words; long texts fall back to a plain side by side) -----------------

function wordDiff(a, b) {
  const x = (a || "").split(/(\s+)/), y = (b || "").split(/(\s+)/);
  if (x.length * y.length > 250000) return null;
  const m = x.length, n = y.length;
  const dp = Array.from({ length: m + 1 }, () => new Uint32Array(n + 1));
  for (let i = m - 1; i >= 0; i--) for (let j = n - 1; j >= 0; j--)
    dp[i][j] = x[i] === y[j] ? dp[i + 1][j + 1] + 1 : Math.max(dp[i + 1][j], dp[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < m || j < n) {
    if (i < m && j < n && x[i] === y[j]) { out.push(["same", x[i]]); i++; j++; }
    else if (j < n && (i === m || dp[i][j + 1] >= dp[i + 1][j])) { out.push(["ins", y[j]]); j++; }
    else { out.push(["del", x[i]]); i++; }
  }
  return out;
}

function diffView(base, other) {
  const parts = wordDiff(base, other);
  if (!parts) return h("pre", {}, other || "");
  return h("pre", { class: "diff" }, parts.map(([kind, text]) =>
    kind === "same" ? text : h("span", { class: kind }, text)));
}

// -- plots (inline SVG built from numbers, labels as text nodes) ------------------------------

function lineChart({ title, points, threshold, xLabels, yMin, yMax, yFormat, width = 420, height = 190 }) {
  const pad = { l: 48, r: 12, t: 22, b: 34 };
  const values = [...points, ...(threshold || [])].filter((p) => p.y !== null && p.y !== undefined);
  let lo = yMin ?? Math.min(...values.map((p) => p.y), 0);
  let hi = yMax ?? Math.max(...values.map((p) => p.y), 1e-9);
  if (hi === lo) hi = lo + 1;
  const xs = points.map((p) => p.x);
  const xLo = Math.min(...xs), xHi = Math.max(...xs);
  const X = (x) => pad.l + (xHi === xLo ? 0.5 : (x - xLo) / (xHi - xLo)) * (width - pad.l - pad.r);
  const Y = (y) => height - pad.b - ((y - lo) / (hi - lo)) * (height - pad.t - pad.b);
  const yf = yFormat || ((v) => fmt.num(v, 2));
  const svg = s("svg", { class: "chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" },
    s("title", {}, title),
    s("text", { x: pad.l, y: 14, "font-weight": 600 }, title));
  for (const v of [lo, (lo + hi) / 2, hi]) {
    svg.append(s("line", { x1: pad.l, x2: width - pad.r, y1: Y(v), y2: Y(v), stroke: "#e3e7ee" }),
      s("text", { x: pad.l - 6, y: Y(v) + 4, "text-anchor": "end" }, yf(v)));
  }
  points.forEach((p, k) => {
    const label = xLabels ? xLabels[k] : String(p.x);
    svg.append(s("text", { x: X(p.x), y: height - pad.b + 14, "text-anchor": "middle" }, label));
  });
  const path = (ps) => ps.map((p, k) => `${k ? "L" : "M"}${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(" ");
  const drawn = (threshold || []).filter((p) => p.y !== null && p.y !== undefined);
  if (drawn.length) {
    // One threshold value (one decision so far): a level line across the plot.
    const line = drawn.length > 1 ? path(drawn) : `M${pad.l},${Y(drawn[0].y).toFixed(1)} L${width - pad.r},${Y(drawn[0].y).toFixed(1)}`;
    svg.append(s("path", { d: line, fill: "none", stroke: "#c0392b", "stroke-dasharray": "5 4", "stroke-width": 1.5 }),
      s("text", { x: width - pad.r, y: Y(drawn[drawn.length - 1].y) - 4, "text-anchor": "end", fill: "#c0392b" }, "threshold"));
  }
  svg.append(s("path", { d: path(points), fill: "none", stroke: "#2f5fd0", "stroke-width": 2 }));
  for (const p of points) {
    svg.append(s("circle", { cx: X(p.x), cy: Y(p.y), r: 3.5, fill: p.bad ? "#c0392b" : "#2f5fd0" },
      s("title", {}, `${p.label || p.x}: ${yf(p.y)}`)));
  }
  return svg;
}

function weightBar(weights) {
  const width = 420, height = 26;
  const entries = Object.entries(weights);
  const students = entries.reduce((a, [, w]) => a + w, 0);
  const parts = [["teacher", Math.max(0, 100 - students)], ...entries];
  const colors = ["#98a2b3", "#2f5fd0", "#1e8449", "#b9770e", "#8e44ad"];
  const svg = s("svg", { class: "chart weights", width, height, viewBox: `0 0 ${width} ${height}` });
  let x = 0;
  parts.forEach(([name, w], k) => {
    const wpx = (w / 100) * width;
    if (wpx > 0) {
      svg.append(s("rect", { x, y: 0, width: wpx, height, fill: colors[k % colors.length] },
        s("title", {}, `${name}: ${w}%`)));
      if (wpx > 60) svg.append(s("text", { x: x + 6, y: 17, fill: "#fff" }, `${name} ${w}%`));
    }
    x += wpx;
  });
  return svg;
}

// -- pages -----------------------------------------------------------------------------------

const FILTERS = ["route", "variant", "kind", "status", "user", "text", "feedback", "annotated", "since", "until"];

function select(name, value, options) {
  return h("select", { name }, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));
}

async function trafficPage(params) {
  const overview = await api("/ui/api/overview");
  const variants = [...new Set(overview.groups.map((g) => g.variant).filter(Boolean))];
  const query = new URLSearchParams();
  for (const k of [...FILTERS, "paired", "offset"]) if (params.get(k)) query.set(k, params.get(k));
  const page = await api(`/ui/api/traffic?${query}`);
  const get = (k) => params.get(k) || "";
  const form = h("form", { class: "filters card", id: "filters" },
    h("label", {}, "route", select("route", get("route"), [["", "all"], ...overview.routes.map((r) => [r, r])])),
    h("label", {}, "variant", select("variant", get("variant"), [["", "all"], ...variants.map((v) => [v, v])])),
    h("label", {}, "kind", select("kind", get("kind"), [["", "all"], ["primary", "primary"], ["shadow", "shadow"], ["fallback", "fallback"], ["secondary", "secondary"]])),
    h("label", {}, "status", select("status", get("status"), [["", "all"], ["ok", "ok"], ["error", "error"]])),
    h("label", {}, "user", h("input", { name: "user", value: get("user"), size: 10 })),
    h("label", {}, "text contains", h("input", { name: "text", value: get("text"), size: 16 })),
    h("label", {}, "feedback", select("feedback", get("feedback"), [["", "all"], ["any", "any"], ["negative", "negative"], ["positive", "positive"], ["none", "none"]])),
    h("label", {}, "annotated", select("annotated", get("annotated"), [["", "all"], ["any", "any"], ["none", "none"], ["correction", "corrected"], ["exclude", "excluded"], ["label", "labelled"]])),
    h("label", {}, "since (UTC)", h("input", { name: "since", value: get("since"), placeholder: "2025-01-31T12:00", size: 15 })),
    h("label", {}, "until (UTC)", h("input", { name: "until", value: get("until"), size: 15 })),
    h("label", {}, "shadow pairs only", h("input", { type: "checkbox", name: "paired", value: "true", checked: get("paired") === "true" })),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    go("/traffic", Object.fromEntries([...data.entries()]));
  });
  const rows = page.rows.map((r) => h("tr", { class: "link", "data-id": r.id, onclick: () => go(`/exchange/${encodeURIComponent(r.id)}`) },
    h("td", { class: "nowrap", title: r.ts }, fmt.short(r.ts)), h("td", { class: "nowrap" }, r.route ?? "–"), h("td", { class: "nowrap" }, r.variant ?? "–"), h("td", {}, r.kind),
    h("td", {}, statusBadge(r.status, r.error)), h("td", { class: "num" }, fmt.ms(r.latency_ms)),
    h("td", { class: "num" }, `${r.prompt_tokens ?? "–"} / ${r.completion_tokens ?? "–"}`), h("td", {}, r.user ?? ""),
    h("td", { class: "text", title: r.prompt || "" }, r.prompt || ""), h("td", { class: "text", title: r.answer || "" }, r.answer || r.error || ""),
    h("td", {}, r.feedback === null ? "" : h("span", { class: `badge ${r.feedback <= 0 ? "bad" : "good"}` }, r.feedback)),
    h("td", {}, (r.annotations || "").split(",").filter(Boolean).map((a) => h("span", { class: "badge warn" }, a)))));
  const offset = page.offset, shown = page.rows.length;
  const pageTo = (o) => go("/traffic", { ...Object.fromEntries(params.entries()), offset: o });
  const pager = h("div", { class: "pager" },
    h("button", { class: "secondary", disabled: offset === 0, onclick: () => pageTo(Math.max(0, offset - page.limit)) }, "← Newer"),
    h("span", { id: "count" }, shown ? `${offset + 1}–${offset + shown} of ${page.total}` : `0 of ${page.total}`),
    h("button", { class: "secondary", disabled: offset + shown >= page.total, onclick: () => pageTo(offset + page.limit) }, "Older →"));
  show(h("h1", {}, "Traffic"), form, pager,
    h("table", { id: "traffic" }, h("thead", {}, h("tr", {}, ["time", "route", "variant", "kind", "status", "latency", "tokens in/out", "user", "prompt", "answer", "feedback", "annotations"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows)),
    rows.length ? null : h("p", { class: "muted" }, "No exchanges match these filters."));
}

function messagesView(requestText) {
  const request = parseJSON(requestText);
  if (request && Array.isArray(request.messages)) {
    return request.messages.map((m) => h("div", { class: "message" },
      h("div", { class: "muted" }, m.role || "?"),
      h("pre", {}, typeof m.content === "string" ? m.content : JSON.stringify(m.content, null, 2))));
  }
  if (request && request.prompt !== undefined) return h("pre", {}, String(request.prompt));
  return h("pre", {}, requestText || "");
}

function latestByKind(annotations) {
  const latest = {};
  for (const a of annotations) if (!latest[a.kind]) latest[a.kind] = a;  // newest first
  return latest;
}

async function exchangePage(id) {
  const x = await api(`/ui/api/exchanges/${encodeURIComponent(id)}`);
  const latest = latestByKind(x.annotations);
  const excluded = latest.exclude && (!latest.include || latest.exclude.ts > latest.include.ts);
  const message = h("p", { id: "saved", class: "notice" });
  const save = async (body) => {
    try {
      await api("/admin/annotations", { method: "POST", body: JSON.stringify({ request_id: x.id, ...body }) });
    } catch (error) {
      message.className = "error";
      message.textContent = error.message;
      return;
    }
    await exchangePage(id);
    document.getElementById("saved").textContent = `Saved (${body.kind}).`;
  };
  const answerBox = h("textarea", { id: "correction", rows: 4 }, (latest.correction && latest.correction.answer) || x.answer || "");
  const noteBox = h("input", { id: "note", placeholder: "why (optional)", size: 40 });
  const labelBox = h("input", { id: "label", value: (latest.label && latest.label.label) || "", size: 20 });
  const meta = [["route", x.route], ["variant", x.variant], ["kind", x.kind], ["status", x.status], ["error", x.error || "–"],
    ["latency", fmt.ms(x.latency_ms)], ["time to first token", fmt.ms(x.ttft_ms)], ["upstream", fmt.ms(x.upstream_ms)],
    ["tokens in / out", `${x.prompt_tokens ?? "–"} / ${x.completion_tokens ?? "–"}`], ["finish", x.finish_reason ?? "–"],
    ["user", x.user ?? "–"], ["session", x.session ?? "–"], ["stream", String(x.stream)], ["model", x.model ?? "–"],
    ["upstream model", x.upstream_model ?? "–"], ["time", fmt.ts(x.ts)], ["pair", x.pair_id ?? "–"], ["tags", x.tags ?? "–"]];
  show(
    h("h1", {}, "Exchange ", h("code", {}, x.id), " ", excluded ? h("span", { class: "badge bad", id: "excluded" }, "excluded from training") : null,
      latest.correction ? h("span", { class: "badge warn" }, "corrected") : null),
    h("dl", { class: "meta card" }, meta.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")])),
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, "Request"), messagesView(x.request)),
      h("div", { class: "card" }, h("h2", {}, "Response"), h("pre", { id: "answer" }, x.answer ?? x.error ?? ""),
        latest.correction ? [h("h2", {}, "Correction (gold)"), diffView(x.answer, latest.correction.answer)] : null)),
    x.pair.length ? h("div", { class: "card", id: "pair" }, h("h2", {}, "Its pair (differences against this answer)"),
      x.pair.map((p) => h("div", {}, h("p", {}, h("a", { href: `#/exchange/${encodeURIComponent(p.id)}` }, `${p.kind} · ${p.variant}`), " ",
        statusBadge(p.status, p.error), ` ${fmt.ms(p.latency_ms)}`), diffView(x.answer, p.answer ?? p.error)))) : null,
    h("div", { class: "card" }, h("h2", {}, "Correct for training"), message,
      h("label", { class: "field" }, "Gold answer (replaces the teacher's answer in the next dataset)", answerBox),
      h("div", { class: "actions" }, noteBox,
        h("button", { id: "save-correction", onclick: () => save({ kind: "correction", answer: answerBox.value, note: noteBox.value || null }) }, "Save correction"),
        excluded
          ? h("button", { class: "secondary", id: "include", onclick: () => save({ kind: "include", note: noteBox.value || null }) }, "Include in training again")
          : h("button", { class: "danger", id: "exclude", onclick: () => save({ kind: "exclude", note: noteBox.value || null }) }, "Exclude from training")),
      h("div", { class: "actions" }, h("label", { class: "field" }, "Label", labelBox),
        h("button", { class: "secondary", id: "save-label", onclick: () => save({ kind: "label", label: labelBox.value }) }, "Save label"))),
    h("div", { class: "card" }, h("h2", {}, "History"),
      x.annotations.length || x.feedback.length ? h("table", { id: "history" },
        h("thead", {}, h("tr", {}, ["when", "what", "who", "value", "note"].map((c) => h("th", {}, c)))),
        h("tbody", {}, x.annotations.map((a) => h("tr", {}, h("td", {}, fmt.ts(a.ts)), h("td", {}, a.kind), h("td", {}, a.author),
          h("td", {}, a.answer ?? a.label ?? ""), h("td", {}, a.note ?? ""))),
        x.feedback.map((f) => h("tr", {}, h("td", {}, fmt.ts(f.ts)), h("td", {}, "feedback"), h("td", {}, f.source ?? "client"),
          h("td", {}, `score ${f.score ?? "–"} ${f.label ?? ""}`), h("td", {}, f.comment ?? ""))))) : h("p", { class: "muted" }, "No feedback or annotations yet.")),
    h("details", { class: "card" }, h("summary", {}, "Raw JSON"),
      h("pre", {}, JSON.stringify(parseJSON(x.request), null, 2) || x.request || ""),
      h("pre", {}, JSON.stringify(parseJSON(x.response), null, 2) || x.response || "")));
}

async function comparePage(params) {
  const overview = await api("/ui/api/overview");
  const students = [...new Set(overview.groups.filter((g) => g.kind === "shadow").map((g) => g.variant))];
  const get = (k) => params.get(k) || "";
  const query = new URLSearchParams({ order: get("order") || "disagreement", offset: get("offset") || "0" });
  if (get("route")) query.set("route", get("route"));
  if (get("student")) query.set("student", get("student"));
  const page = await api(`/ui/api/pairs?${query}`);
  const form = h("form", { class: "filters card" },
    h("label", {}, "route", select("route", get("route"), [["", "all"], ...overview.routes.map((r) => [r, r])])),
    h("label", {}, "student", select("student", get("student"), [["", "all"], ...students.map((v) => [v, v])])),
    h("label", {}, "order", select("order", get("order") || "disagreement", [["disagreement", "worst first"], ["newest", "newest first"]])),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => { event.preventDefault(); go("/compare", Object.fromEntries(new FormData(form).entries())); });
  const offset = page.offset, shown = page.rows.length;
  const pageTo = (o) => go("/compare", { ...Object.fromEntries(params.entries()), offset: o });
  show(h("h1", {}, "Compare: student vs the answer users got (shadow pairs)"), form,
    h("p", { id: "pair-summary" }, `${page.total} pairs · exact agreement ${fmt.pct(page.agreement_rate)} · mean disagreement ${fmt.num(page.mean_disagreement)}`),
    h("div", { class: "pager" },
      h("button", { class: "secondary", disabled: offset === 0, onclick: () => pageTo(Math.max(0, offset - page.limit)) }, "← Previous"),
      h("span", {}, shown ? `${offset + 1}–${offset + shown} of ${page.total}` : "no pairs"),
      h("button", { class: "secondary", disabled: offset + shown >= page.total, onclick: () => pageTo(offset + page.limit) }, "Next →")),
    h("table", { id: "pairs" }, h("thead", {}, h("tr", {}, ["disagreement", "student", "prompt", "answer users got", "student's answer (diff)", ""].map((c) => h("th", {}, c)))),
      h("tbody", {}, page.rows.map((r) => h("tr", {},
        h("td", { class: "num" }, fmt.num(r.disagreement, 2), h("br"), h("span", { class: "bar", style: `width:${Math.round(60 * r.disagreement)}px` })),
        h("td", {}, r.student, h("br"), h("span", { class: "muted" }, `vs ${r.baseline}`)),
        h("td", { style: "max-width:24rem" }, h("pre", {}, r.prompt || "")),
        h("td", {}, h("pre", {}, r.primary_answer || "")),
        h("td", {}, diffView(r.primary_answer, r.student_answer)),
        h("td", {}, h("a", { href: `#/exchange/${encodeURIComponent(r.primary_id)}`, class: "open-pair" }, "open / correct")))))));
}

async function evalPage(id, params) {
  const offset = Number(params.get("offset") || 0);
  const page = await api(`/ui/api/runs/${encodeURIComponent(id)}/examples?offset=${offset}`);
  const shown = page.rows.length;
  const pageTo = (o) => go(`/eval/${encodeURIComponent(id)}`, { offset: o });
  show(h("h1", {}, "Compare: student vs teacher on an eval run"),
    h("p", { id: "eval-summary" }, `${page.total} held-out examples · ${page.disagreements} disagreements · worst first`),
    h("div", { class: "pager" },
      h("button", { class: "secondary", disabled: offset === 0, onclick: () => pageTo(Math.max(0, offset - page.limit)) }, "← Previous"),
      h("span", {}, shown ? `${offset + 1}–${offset + shown} of ${page.total}` : "no examples"),
      h("button", { class: "secondary", disabled: offset + shown >= page.total, onclick: () => pageTo(offset + page.limit) }, "Next →")),
    h("table", { id: "eval-examples" }, h("thead", {}, h("tr", {}, ["agrees", "token F1", "prompt", "teacher", "student (diff)"].map((c) => h("th", {}, c)))),
      h("tbody", {}, page.rows.map((r) => h("tr", {},
        h("td", {}, r.agree ? "yes" : "no"), h("td", { class: "num" }, fmt.num(r.token_f1, 2)),
        h("td", { style: "max-width:24rem" }, h("pre", {}, r.prompt || "")),
        h("td", {}, h("pre", {}, r.teacher || "")),
        h("td", {}, diffView(r.teacher, r.student)))))));
}

function metricCells(metrics) {
  if (!metrics || typeof metrics !== "object") return "";
  const keys = ["accuracy", "exact_match", "token_f1", "rouge_l", "json_valid", "p50_latency_ms", "train_loss", "eval_loss"];
  return keys.filter((k) => typeof metrics[k] === "number").map((k) => `${k} ${fmt.num(metrics[k])}`).join(" · ");
}

async function dataPage(params) {
  const query = params.get("route") ? `?route=${encodeURIComponent(params.get("route"))}` : "";
  const d = await api(`/ui/api/data${query}`);
  const form = h("form", { class: "filters card" },
    h("label", {}, "route", select("route", d.route || "", d.routes.map((r) => [r, r]))),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (event) => { event.preventDefault(); go("/data", Object.fromEntries(new FormData(form).entries())); });
  const filterTotal = Object.values(d.filters).reduce((a, b) => a + b, 0) || 1;
  show(h("h1", {}, "Datasets, runs and adapters"), form,
    h("div", { class: "grid2" },
      h("div", { class: "card" }, h("h2", {}, `What dataset build --route ${d.route} starts from`),
        h("table", { id: "filter-counts" }, h("thead", {}, h("tr", {}, h("th", {}, "rows"), h("th", { class: "num" }, "count"), h("th", {}, ""))),
          h("tbody", {}, Object.entries(d.filters).sort((a, b) => b[1] - a[1]).map(([k, v]) => h("tr", {},
            h("td", {}, k === "kept" ? "kept for curation" : `removed: ${k}`), h("td", { class: "num" }, v),
            h("td", {}, h("span", { class: "bar", style: `width:${Math.round(160 * v / filterTotal)}px;background:${k === "kept" ? "#1e8449" : "#98a2b3"}` }))))))),
      h("div", { class: "card" }, h("h2", {}, "People's annotations in force"),
        h("table", { id: "annotation-counts" }, h("tbody", {}, ["correction", "exclude", "label"].map((k) => h("tr", {},
          h("td", {}, { correction: "corrected answers", exclude: "excluded exchanges", label: "labelled" }[k]),
          h("td", { class: "num" }, d.annotations[k] || 0))))),
        h("p", {}, h("a", { href: `#/traffic?annotated=any&route=${encodeURIComponent(d.route || "")}` }, "see them in Traffic")))),
    h("h2", {}, "Data-size curve (sweeps)"),
    d.curves.length ? h("div", { class: "plots" }, d.curves.map((c) => lineChart({
      title: `${c.metric} against training data used (sweep ${c.sweep_id.slice(0, 8)})`,
      points: c.points.map(([x, y]) => ({ x, y })), xLabels: c.points.map(([x]) => `${x}%`), yMin: 0, yMax: 1,
    }))) : h("p", { class: "muted" }, "No data-size sweep recorded yet (distill sweep --data-sizes …)."),
    h("h2", {}, "Runs"),
    d.runs.length ? null : h("p", { class: "muted" }, "No train, eval or sweep run recorded in this store yet (--store on distill eval / sweep)."),
    h("table", { id: "runs" }, h("thead", {}, h("tr", {}, ["time", "kind", "sweep", "dataset", "base model", "metrics"].map((c) => h("th", {}, c)))),
      h("tbody", {}, d.runs.map((r) => h("tr", {}, h("td", {}, fmt.ts(r.ts)), h("td", {}, r.kind), h("td", {}, (r.sweep_id || "").slice(0, 8)),
        h("td", {}, (r.dataset_hash || "").slice(0, 12)), h("td", {}, r.base_model ?? ""),
        h("td", {}, metricCells(r.metrics), r.kind === "eval" && r.config && r.config.out_dir
          ? h("span", {}, " · ", h("a", { href: `#/eval/${encodeURIComponent(r.id)}`, class: "open-eval" }, "examples")) : null))))),
    h("h2", {}, "Adapters and their lineage"),
    d.adapters.length ? null : h("p", { class: "muted" }, "No adapter registered yet (distill adapters register)."),
    h("table", { id: "adapters" }, h("thead", {}, h("tr", {}, ["name", "state", "route", "dataset", "metrics", "lineage"].map((c) => h("th", {}, c)))),
      h("tbody", {}, d.adapters.map((a) => h("tr", {}, h("td", {}, a.name), h("td", {}, h("span", { class: `badge ${a.state === "stable" ? "good" : ""}` }, a.state)),
        h("td", {}, a.route ?? ""), h("td", {}, (a.dataset_hash || "").slice(0, 12)), h("td", {}, metricCells(a.metrics)),
        h("td", {}, h("details", {}, h("summary", {}, a.base_model), h("pre", {}, JSON.stringify(a.lineage, null, 2)))))))));
}

async function rolloutsPage() {
  const d = await api("/ui/api/rollouts");
  const act = async (route, action) => {
    if (action === "rollback" && !confirm(`Roll back ${route}? The student's weight goes to 0.`)) return;
    try {
      await api(`/admin/rollouts/${encodeURIComponent(route)}/${action}`, { method: "POST" });
    } catch (error) {
      alert(error.message);
    }
    await rolloutsPage();
  };
  const cards = d.routes.map((r) => {
    const rollouts = d.history.filter((x) => x.route === r.name);
    return h("div", { class: "card route", "data-route": r.name },
      h("h2", {}, `Route ${r.name}`),
      h("p", {}, "Traffic weights now: ", h("span", { class: "weights-text" }, Object.keys(r.weights).length
        ? Object.entries(r.weights).map(([k, v]) => `${k} ${v}%`).join(", ") : "all on the teacher"),
        r.shadow ? ` · shadowing ${r.shadow[0]} on ${fmt.pct(r.shadow[1])} of traffic` : ""),
      weightBar(r.weights),
      rollouts.length ? rollouts.map((x, k) => rolloutView(x, k === 0, act)) : h("p", { class: "muted" }, "No rollouts yet."));
  });
  show(h("h1", {}, "Rollouts"), ...cards);
}

function rolloutView(x, current, act) {
  const active = ["shadow", "canary", "paused"].includes(x.state);
  const at = x.step_index < 0 ? "shadow" : `step ${x.step_index + 1}/${x.steps.length} (${x.steps[x.step_index]}%)`;
  const step = { rolled_back: `0% of traffic (was at ${at})`, promoted: "100% of traffic", replaced: "replaced by a later promotion" }[x.state] || at;
  const stateClass = { promoted: "good", rolled_back: "bad", paused: "warn" }[x.state] || "";
  const buttons = h("div", { class: "actions" },
    h("button", { class: "secondary", "data-action": "pause", disabled: !["shadow", "canary"].includes(x.state), onclick: () => act(x.route, "pause") }, "Pause"),
    h("button", { class: "secondary", "data-action": "resume", disabled: x.state !== "paused", onclick: () => act(x.route, "resume") }, "Resume"),
    h("button", { class: "secondary", "data-action": "promote", disabled: !active, onclick: () => act(x.route, "promote") }, "Promote"),
    h("button", { class: "danger", "data-action": "rollback", disabled: !(active || x.state === "promoted"), onclick: () => act(x.route, "rollback") }, "Roll back"));
  const plots = x.series.filter((g) => g.points.length).map((g) => lineChart({
    title: `${g.name} (gate ${g.gate})`,
    points: g.points.map((p, k) => ({ x: k, y: p.value, label: `${p.decision} ${fmt.ts(p.ts)}`, bad: p.threshold !== null && (g.direction === "min" ? p.value < p.threshold : p.value > p.threshold) })),
    threshold: g.points.map((p, k) => ({ x: k, y: p.threshold })),
    xLabels: g.points.map((p) => p.decision), yMin: 0, yMax: g.direction === "min" ? 1 : undefined,
  }));
  const numbers = (n) => {
    if (!n || !n.student) return "";
    const st = n.student;
    return `student: ${st.requests} req, errors ${fmt.pct(st.error_rate)}, p95 ${fmt.ms(st.p95_ms)}, agreement ${fmt.num(st.agreement)} over ${st.agreement_pairs} pairs`;
  };
  return h("div", { class: "rollout", "data-adapter": x.adapter, "data-state": x.state },
    h("h2", {}, `${current ? "" : "Earlier: "}${x.adapter} `, h("span", { class: `badge ${stateClass}`, "data-role": "state" }, x.state.replace("_", " ")), ` ${step}`),
    h("p", { class: "muted" }, `started ${fmt.ts(x.created_at)} · steps ${x.steps.join(" → ")} % · gates: min agreement ${x.gates.min_agreement}, min requests ${x.gates.min_requests}`),
    current ? buttons : null,
    h("p", {}, h("a", { href: `#/compare?student=${encodeURIComponent(x.adapter)}&route=${encodeURIComponent(x.route)}`, class: "failing" }, `${x.adapter}'s examples, worst first →`)),
    plots.length ? h("div", { class: "plots" }, plots) : null,
    h("table", { class: "decisions" }, h("thead", {}, h("tr", {}, ["when", "decision", "step", "reason", "numbers"].map((c) => h("th", {}, c)))),
      h("tbody", {}, x.decisions.map((dd) => h("tr", {}, h("td", {}, fmt.ts(dd.ts)),
        h("td", {}, h("span", { class: `badge ${dd.decision === "rollback" ? "bad" : dd.decision === "promote" ? "good" : ""}` }, dd.decision)),
        h("td", {}, `${dd.from_step} → ${dd.to_step}`), h("td", {}, dd.reason ?? ""), h("td", {}, numbers(dd.numbers)))))));
}

// -- router ----------------------------------------------------------------------------------

async function route() {
  if (!sessionStorage.getItem(TOKEN_KEY)) return showLogin();
  document.getElementById("logout").hidden = false;
  const { path, params } = hashQuery();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", path.startsWith(a.getAttribute("href").slice(1)));
  try {
    if (path.startsWith("/exchange/")) await exchangePage(decodeURIComponent(path.slice("/exchange/".length)));
    else if (path === "/compare") await comparePage(params);
    else if (path.startsWith("/eval/")) await evalPage(decodeURIComponent(path.slice("/eval/".length)), params);
    else if (path === "/data") await dataPage(params);
    else if (path === "/rollouts") await rolloutsPage();
    else await trafficPage(params);
  } catch (error) {
    if (error instanceof AuthError) return showLogin(error.message);
    show(h("h1", {}, "Something went wrong"), h("p", { class: "error", id: "error" }, error.message));
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  document.getElementById("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); });
  route();
});
