// Drover dashboard: a small single-page app over the HTTP API. No
// dependencies; routes are URL fragments (#/tasks?state=failed), the API
// key lives in sessionStorage and travels only in the Authorization header.
"use strict";

const STATES = ["queued", "running", "retrying", "succeeded", "failed", "cancelled"];
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 2000;
const TOKEN_KEY = "drover-api-key";

const $ = (sel, root = document) => root.querySelector(sel);
const main = $("#main");
let timer = null;    // the current page's refresh timer
let renderSeq = 0;   // drops answers of pages no longer shown

// --- API ---------------------------------------------------------------

class APIError extends Error {
  constructor(status, detail) { super(detail); this.status = status; }
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
  const text = await resp.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch (_) { /* not JSON */ }
  if (resp.status === 401) { showLogin(doc && doc.detail); throw new APIError(401, "sign in required"); }
  if (!resp.ok) throw new APIError(resp.status, (doc && (doc.detail || doc.title)) || resp.statusText);
  setLive(true);
  return doc;
}

// --- helpers -------------------------------------------------------------

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat(Infinity)) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}

function stateCell(st) { return el("span", { class: "state s-" + st }, st); }

function ago(iso) {
  if (!iso) return "-";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return Math.round(s) + "s";
  if (s < 3600) return Math.round(s / 60) + "m";
  if (s < 86400) return Math.round(s / 3600) + "h";
  return Math.round(s / 86400) + "d";
}

function dur(ms) {
  if (!ms) return "0";
  if (ms < 1) return (ms * 1000).toFixed(0) + "µs";
  if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + "ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + "s";
  return (ms / 60000).toFixed(1) + "m";
}

function between(a, b) { return a && b ? dur(Date.parse(b) - Date.parse(a)) : "-"; }

function toast(msg) {
  const t = el("div", { class: "toast", role: "status" }, msg);
  document.body.append(t);
  setTimeout(() => t.remove(), 3000);
}

function setLive(ok) { $("#live").classList.toggle("stale", !ok); }

function every(fn) {
  clearInterval(timer);
  timer = setInterval(() => fn().catch(() => setLive(false)), POLL_MS);
}

function problem(err) {
  return el("p", { class: "error" }, err.status ? `${err.status}: ${err.message}` : String(err.message || err));
}

// --- login ---------------------------------------------------------------

function showLogin(detail) {
  clearInterval(timer);
  main.hidden = true;
  $("#login").hidden = false;
  $("#logout").hidden = true;
  if (sessionStorage.getItem(TOKEN_KEY)) {
    $("#login-error").textContent = "That key was not accepted.";
    $("#login-error").hidden = false;
    sessionStorage.removeItem(TOKEN_KEY);
  }
  $("#token").focus();
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("#token").value);
  $("#token").value = "";
  $("#login-error").hidden = true;
  $("#login").hidden = true;
  main.hidden = false;
  $("#logout").hidden = false;
  route();
});

$("#logout").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin();
});

// --- routing -------------------------------------------------------------

function parseHash() {
  const h = location.hash.replace(/^#/, "") || "/";
  const [path, qs] = h.split("?");
  return { path, params: new URLSearchParams(qs || "") };
}

function route() {
  clearInterval(timer);
  const seq = ++renderSeq;
  const { path, params } = parseHash();
  $("#logout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  let page = "overview", render;
  if (path === "/" || path === "") render = () => overview(seq);
  else if (path === "/tasks") { page = "tasks"; render = () => tasks(seq, params); }
  else if (path.startsWith("/task/")) { page = "tasks"; render = () => detail(seq, decodeURIComponent(path.slice(6))); }
  else if (path === "/groups") { page = "groups"; render = () => groups(seq); }
  else if (path.startsWith("/group/")) { page = "groups"; render = () => groupDetail(seq, decodeURIComponent(path.slice(7)), params); }
  else if (path === "/runners") { page = "runners"; render = () => runners(seq); }
  else if (path === "/deadletters") { page = "deadletters"; render = () => deadLetters(seq, params); }
  else render = async () => { main.replaceChildren(el("h1", {}, "Not found"), el("p", {}, el("a", { href: "#/" }, "Overview"))); };
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  document.body.dataset.page = page;
  render().catch((err) => { if (err.status !== 401) main.replaceChildren(problem(err)); });
}

window.addEventListener("hashchange", route);

// --- overview ------------------------------------------------------------

async function overview(seq) {
  main.replaceChildren(
    el("h1", {}, "Overview"),
    el("div", { class: "cards", id: "state-cards" }),
    el("div", { class: "charts" },
      el("div", { class: "chart" }, el("h2", {}, "Throughput, last hour (tasks finished per minute)"), el("div", { id: "chart-throughput" }),
        legend([["succeeded", "succeeded"], ["failed", "failed"], ["cancelled", "cancelled"]])),
      el("div", { class: "chart" }, el("h2", {}, "Latency, last hour (p95 per minute)"), el("div", { id: "chart-latency" }),
        legend([["queue wait", "retrying"], ["run time", "running"]]))),
    el("h2", {}, "By function"), el("div", { class: "scroll", id: "by-function" }),
    el("h2", {}, "By queue"), el("div", { class: "scroll", id: "by-queue" }));
  const load = async () => {
    const st = await api("GET", "/v1/stats");
    if (seq !== renderSeq) return;
    const cards = [el("div", { class: "card", id: "count-total" }, el("span", { class: "n" }, st.total), el("span", { class: "l" }, "tasks")),
      el("a", { class: "card", id: "count-runners", href: "#/runners" }, el("span", { class: "n" }, st.runners_online), el("span", { class: "l" }, "runners online"))];
    for (const s of STATES) {
      cards.push(el("a", { class: "card", id: "count-" + s, href: "#/tasks?state=" + s, "data-count": st.states[s] || 0 },
        el("span", { class: "n s-" + s }, st.states[s] || 0), el("span", { class: "l" }, s)));
    }
    $("#state-cards").replaceChildren(...cards);
    $("#chart-throughput").replaceChildren(barChart(st.minutes));
    $("#chart-latency").replaceChildren(lineChart(st.minutes));
    $("#by-function").replaceChildren(countTable("function", st.functions));
    $("#by-queue").replaceChildren(countTable("queue", st.queues));
  };
  await load();
  every(load);
}

function legend(items) {
  return el("div", { class: "legend" }, items.map(([l, c]) => el("span", {}, el("i", { class: "b-" + c }), l)));
}

function countTable(kind, m) {
  const names = Object.keys(m || {}).sort();
  if (!names.length) return el("p", { class: "muted empty" }, "no tasks yet");
  return el("table", {},
    el("thead", {}, el("tr", {}, el("th", {}, kind), STATES.map((s) => el("th", { class: "num" }, s)))),
    el("tbody", {}, names.map((n) => el("tr", {}, el("td", {}, el("a", { href: `#/tasks?${kind}=${encodeURIComponent(n)}` }, n)),
      STATES.map((s) => el("td", { class: "num" }, (m[n][s] || 0) ? el("a", { href: `#/tasks?${kind}=${encodeURIComponent(n)}&state=${s}` }, m[n][s]) : "0"))))));
}

const SVGNS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function axis(root, W, H, max, fmt) {
  root.append(svg("line", { x1: 0, y1: H, x2: W, y2: H, stroke: "#ccd" }));
  const t = svg("text", { x: 2, y: 10, "font-size": 10, fill: "#889" });
  t.textContent = fmt(max);
  root.append(t);
  const l = svg("text", { x: 2, y: H - 3, "font-size": 10, fill: "#889" });
  l.textContent = "-60m";
  root.append(l);
  const r = svg("text", { x: W - 22, y: H - 3, "font-size": 10, fill: "#889" });
  r.textContent = "now";
  root.append(r);
}

function barChart(minutes) {
  const W = 600, H = 160, n = minutes.length || 60, bw = W / n;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "tasks finished per minute" });
  const max = Math.max(1, ...minutes.map((m) => m.succeeded + m.failed + m.cancelled));
  minutes.forEach((m, i) => {
    let y = H;
    for (const [k, c] of [["succeeded", "#1f9d55"], ["failed", "#d33a3a"], ["cancelled", "#7a5bd1"]]) {
      const h = (m[k] / max) * (H - 14);
      if (h > 0) { y -= h; root.append(svg("rect", { x: i * bw + 1, y, width: Math.max(bw - 2, 1), height: h, fill: c })); }
    }
  });
  axis(root, W, H, max, (v) => v + "/min");
  return root;
}

function lineChart(minutes) {
  const W = 600, H = 160, n = minutes.length || 60;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "queue wait and run time p95" });
  const max = Math.max(1, ...minutes.map((m) => Math.max(m.queue_wait_p95_ms, m.run_time_p95_ms)));
  for (const [k, c] of [["queue_wait_p95_ms", "#d48a00"], ["run_time_p95_ms", "#2f6fde"]]) {
    const pts = minutes.map((m, i) => `${(i + 0.5) * (W / n)},${H - (m[k] / max) * (H - 14)}`).join(" ");
    root.append(svg("polyline", { points: pts, fill: "none", stroke: c, "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
  }
  axis(root, W, H, max, dur);
  return root;
}

// --- tasks ---------------------------------------------------------------

async function tasks(seq, params) {
  const f = { state: params.get("state") || "", function: params.get("function") || "", queue: params.get("queue") || "" };
  const cursors = (params.get("page") || "").split(",").filter(Boolean);
  const form = el("form", { class: "filters", id: "filters" },
    el("label", {}, "state", el("select", { name: "state", id: "filter-state" },
      el("option", { value: "" }, "any"), STATES.map((s) => el("option", { value: s, selected: s === f.state }, s)))),
    el("label", {}, "function", el("input", { name: "function", id: "filter-function", value: f.function, placeholder: "any", size: 12 })),
    el("label", {}, "queue", el("input", { name: "queue", id: "filter-queue", value: f.queue, placeholder: "any", size: 10 })),
    el("label", {}, "task ID", el("input", { name: "id", id: "filter-id", placeholder: "01J…", size: 28, class: "mono" })),
    el("button", { type: "submit", class: "primary" }, "Filter"));
  form.addEventListener("change", (ev) => { if (ev.target.name === "state") form.requestSubmit(); });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const d = new FormData(form);
    const id = (d.get("id") || "").trim();
    if (id) { location.hash = "#/task/" + encodeURIComponent(id); return; }
    const q = new URLSearchParams();
    for (const k of ["state", "function", "queue"]) if (d.get(k)) q.set(k, d.get(k).trim());
    location.hash = "#/tasks" + (q.toString() ? "?" + q : "");
  });
  const table = el("div", { class: "scroll" });
  const pager = el("div", { class: "pager" });
  main.replaceChildren(el("h1", {}, "Tasks"), form, table, pager);

  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  q.set("limit", "50");
  if (cursors.length) q.set("cursor", cursors[cursors.length - 1]);

  const load = async () => {
    const page = await api("GET", "/v1/tasks?" + q);
    if (seq !== renderSeq) return;
    if (!page.tasks.length) {
      table.replaceChildren(el("p", { class: "muted empty", id: "no-tasks" }, "No tasks match."));
    } else {
      let tbody = $("tbody", table);
      if (!tbody) {
        tbody = el("tbody", { id: "task-rows" });
        table.replaceChildren(el("table", { id: "task-table" },
          el("thead", {}, el("tr", {}, el("th", {}, "ID"), el("th", {}, "function"), el("th", { class: "hide-narrow" }, "queue"),
            el("th", {}, "state"), el("th", { class: "num" }, "attempt"), el("th", { class: "hide-narrow" }, "age"),
            el("th", { class: "hide-narrow" }, "runner / error"), el("th", {}, ""))), tbody));
      }
      tbody.replaceChildren(...page.tasks.map(taskRow));
    }
    const nav = [];
    if (cursors.length) {
      const prev = new URLSearchParams(params); const rest = cursors.slice(0, -1);
      if (rest.length) prev.set("page", rest.join(",")); else prev.delete("page");
      nav.push(el("a", { href: "#/tasks?" + prev, id: "prev-page" }, "← newer"));
    }
    if (page.next_cursor) {
      const next = new URLSearchParams(params); next.set("page", [...cursors, page.next_cursor].join(","));
      nav.push(el("a", { href: "#/tasks?" + next, id: "next-page" }, "older →"));
    }
    pager.replaceChildren(...nav, el("span", { class: "muted" }, `${page.tasks.length} shown`));
  };
  await load();
  every(load);
}

function taskRow(t) {
  const note = t.error ? el("td", { class: "err hide-narrow" }, t.error.slice(0, 120)) : el("td", { class: "hide-narrow" }, t.runner || "-");
  const act = el("td", {});
  if (!TERMINAL.has(t.state)) act.append(el("button", { class: "danger cancel", "data-id": t.id, onclick: () => cancelTask(t.id) }, "Cancel"));
  else if (t.state === "failed" || t.state === "cancelled") act.append(el("button", { class: "retry", "data-id": t.id, onclick: () => retryTask(t.id) }, "Retry"));
  return el("tr", { "data-id": t.id, "data-state": t.state },
    el("td", { class: "mono" }, el("a", { href: "#/task/" + t.id }, t.id)),
    el("td", {}, t.function), el("td", { class: "hide-narrow" }, t.queue),
    el("td", { class: "state-cell" }, stateCell(t.state)),
    el("td", { class: "num" }, `${t.attempt}/${t.max_attempts}`),
    el("td", { class: "hide-narrow" }, ago(t.created_at)), note, act);
}

// cancelTask cancels a task and updates its row (or the detail page) in
// place with the status the API answered.
async function cancelTask(id) {
  try {
    const st = await api("DELETE", "/v1/tasks/" + encodeURIComponent(id));
    toast("Cancelled " + id);
    const tr = document.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
    if (tr && st) tr.replaceWith(taskRow(st));
    else route();
  } catch (err) {
    if (err.status !== 401) toast("Cancel failed: " + err.message);
    route();
  }
}

async function retryTask(id) {
  try {
    const st = await api("POST", "/v1/tasks/" + encodeURIComponent(id) + "/retry");
    toast("Retrying as " + st.id);
    location.hash = "#/task/" + st.id;
  } catch (err) { if (err.status !== 401) toast("Retry failed: " + err.message); }
}

// --- task detail -----------------------------------------------------------

async function detail(seq, id) {
  // Arguments and opened logs are read once, not at every refresh.
  let args = null;
  const logs = new Map(); // "attempt/stream" → text or error
  const argsBox = () => {
    if (args === null) return el("p", { class: "muted" }, "loading…");
    if (args.error) return el("p", { class: "muted", id: "args-none" }, args.error);
    return el("pre", { id: "args" }, args.text);
  };
  const loadArgs = async () => {
    try {
      const resp = await fetchAuthed("/v1/tasks/" + encodeURIComponent(id) + "/args");
      const text = await resp.text();
      if (resp.ok) {
        let shown = text;
        try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* as is */ }
        args = { text: clipText(shown) };
      } else {
        let doc = null; try { doc = JSON.parse(text); } catch (_) { /* not JSON */ }
        args = { error: (doc && doc.detail) || resp.statusText };
      }
    } catch (err) { args = { error: String(err.message || err) }; }
  };
  const openLog = async (attempt, stream) => {
    const key = attempt + "/" + stream;
    try {
      const resp = await fetchAuthed(`/v1/tasks/${encodeURIComponent(id)}/logs/${attempt}/${stream}`);
      const text = await resp.text();
      if (resp.ok) logs.set(key, { text: clipText(text) || "(empty)" });
      else { let doc = null; try { doc = JSON.parse(text); } catch (_) { /* not JSON */ } logs.set(key, { error: (doc && doc.detail) || resp.statusText }); }
    } catch (err) { logs.set(key, { error: String(err.message || err) }); }
    if (seq === renderSeq) await load();
  };
  const logsBox = (t) => {
    if (t.function !== "exec") return el("p", { class: "muted", id: "logs-none" }, "Only exec tasks keep logs (stdout and stderr of each attempt).");
    if (!t.attempt) return el("p", { class: "muted", id: "logs-none" }, "No attempt has run yet.");
    const items = [];
    for (let a = 1; a <= t.attempt; a++) {
      for (const stream of ["stdout", "stderr"]) {
        const got = logs.get(a + "/" + stream);
        items.push(el("div", { class: "log", "data-log": a + "/" + stream },
          el("button", { class: "link-btn", onclick: () => openLog(a, stream) }, `attempt ${a} ${stream}`),
          got ? (got.error ? el("p", { class: "muted" }, got.error) : el("pre", {}, got.text)) : null));
      }
    }
    return el("div", { id: "logs" }, items);
  };
  await loadArgs();
  const load = async () => {
    const t = await api("GET", "/v1/tasks/" + encodeURIComponent(id));
    if (seq !== renderSeq) return;
    const fields = [["ID", el("span", { class: "mono" }, t.id)], ["function", t.function], ["queue", t.queue],
      ["state", stateCell(t.state)], ["attempt", `${t.attempt} of ${t.max_attempts}`],
      ["created", t.created_at], ["started", t.started_at || "-"], ["finished", t.finished_at || "-"],
      ["queue wait", between(t.created_at, t.started_at)], ["run time", between(t.started_at, t.finished_at)],
      ["runner", t.runner || "-"]];
    if (t.idempotency_key) fields.push(["idempotency key", t.idempotency_key]);
    const retryOf = (t.idempotency_key || "").startsWith("retry:") ? t.idempotency_key.slice(6) : "";
    if (retryOf) fields.push(["retry of", el("a", { href: "#/task/" + encodeURIComponent(retryOf), class: "mono", id: "retry-of" }, retryOf)]);
    if (t.next_attempt_at && t.state === "retrying") fields.push(["next attempt", t.next_attempt_at]);
    if (t.group) fields.push(["group", el("span", {}, el("a", { href: "#/group/" + encodeURIComponent(t.group.id), class: "mono", id: "group-link" }, t.group.id), ` member ${t.group.index}`)]);
    if (t.callback_of) fields.push(["callback of group", el("a", { href: "#/group/" + encodeURIComponent(t.callback_of), class: "mono", id: "callback-of" }, t.callback_of)]);
    if (t.previous) fields.push(["chain: previous step", el("a", { href: "#/task/" + encodeURIComponent(t.previous), class: "mono", id: "chain-previous" }, t.previous)]);
    if (t.next) fields.push(["chain: next step", el("a", { href: "#/task/" + encodeURIComponent(t.next), class: "mono", id: "chain-next" }, t.next)]);
    const actions = el("div", { class: "actions" });
    if (!TERMINAL.has(t.state)) actions.append(el("button", { class: "danger", id: "cancel", onclick: () => cancelTask(t.id) }, "Cancel task"));
    if (t.state === "failed" || t.state === "cancelled") actions.append(el("button", { class: "primary", id: "retry", onclick: () => retryTask(t.id) }, "Retry as a new task"));
    const result = el("div", { id: "result" });
    if (t.state === "succeeded") {
      if (t.result !== undefined) result.append(el("pre", {}, JSON.stringify(t.result, null, 2)));
      else if (t.result_ref) result.append(el("button", { onclick: () => download(t.id) }, "Download result (" + t.result_ref + ")"));
      else result.append(el("p", { class: "muted" }, "no result"));
    } else result.append(el("p", { class: "muted" }, "no result yet"));
    main.replaceChildren(
      el("p", {}, el("a", { href: "#/tasks" }, "← tasks")),
      el("h1", {}, "Task ", el("span", { class: "mono" }, t.id)),
      actions,
      el("dl", { class: "fields" }, fields.map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      el("h2", {}, "Timeline"), timeline(t),
      el("h2", {}, "Arguments"), argsBox(),
      el("h2", {}, "Result"), result,
      el("h2", {}, "Logs"), logsBox(t));
  };
  await load();
  every(load);
}

function timeline(t) {
  const items = [el("li", { class: "s-queued" }, el("b", {}, "submitted"), " ", el("span", { class: "when" }, t.created_at))];
  if (t.attempt > 1) items.push(el("li", { class: "s-retrying" }, el("b", {}, `${t.attempt - 1} earlier attempt${t.attempt > 2 ? "s" : ""} failed`), " and were retried"));
  if (t.started_at) items.push(el("li", { class: "s-running" }, el("b", {}, `attempt ${t.attempt} started`), ` on ${t.runner || "?"} `, el("span", { class: "when" }, t.started_at)));
  if (t.state === "retrying") items.push(el("li", { class: "s-retrying" }, el("b", {}, `attempt ${t.attempt} failed`), ": ", t.error || "", " ", el("span", { class: "when" }, "next at " + (t.next_attempt_at || "?"))));
  if (TERMINAL.has(t.state)) items.push(el("li", { class: "s-" + t.state }, el("b", {}, t.state), t.error ? ": " + t.error : "", " ", el("span", { class: "when" }, t.finished_at || "")));
  return el("ol", { class: "timeline" }, items);
}

// fetchAuthed GETs path with the API key, for bodies that are not JSON.
function fetchAuthed(path) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  return fetch(path, { headers, cache: "no-store" });
}

// clipText keeps the first 256 KiB of a text for display.
function clipText(s) {
  const max = 256 << 10;
  return s.length > max ? s.slice(0, max) + "\n… (" + (s.length - max) + " more characters)" : s;
}

async function download(id) {
  const resp = await fetchAuthed("/v1/tasks/" + encodeURIComponent(id) + "/result");
  if (!resp.ok) { toast("Download failed: " + resp.status); return; }
  const url = URL.createObjectURL(await resp.blob());
  const a = el("a", { href: url, download: id + "-result" });
  document.body.append(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// --- runners ---------------------------------------------------------------

async function runners(seq) {
  const box = el("div", { class: "scroll" });
  main.replaceChildren(el("h1", {}, "Runners"), el("p", { class: "muted" }, "Runners that sent a heartbeat in the last minute."), box);
  const load = async () => {
    const doc = await api("GET", "/v1/runners");
    if (seq !== renderSeq) return;
    const rs = (doc.runners || []).sort((a, b) => (a.name || a.id).localeCompare(b.name || b.id));
    if (!rs.length) { box.replaceChildren(el("p", { class: "muted empty" }, "No runners seen recently.")); return; }
    box.replaceChildren(el("table", { id: "runner-table" },
      el("thead", {}, el("tr", {}, ["name", "host", "functions", "traits", "in flight", "exec", "started", "last seen"].map((h, i) =>
        el("th", { class: i === 5 ? "hide-narrow" : (i === 4 ? "num" : undefined) }, h)))),
      el("tbody", {}, rs.map((r) => el("tr", { "data-id": r.id },
        el("td", {}, r.name || r.id), el("td", {}, r.host || "-"),
        el("td", { class: "wrap" }, (r.functions || []).join(", ")),
        el("td", { class: "wrap traits" }, traits(r.traits)),
        el("td", { class: "num in-flight" }, el("span", {}, `${r.active}/${r.concurrency}`),
          meter(r.concurrency ? r.active / r.concurrency : 0, "")),
        el("td", { class: "wrap hide-narrow" }, r.exec || "-"),
        el("td", {}, ago(r.started_at) + " ago"),
        el("td", {}, ago(r.seen_at) + " ago"))))));
  };
  await load();
  every(load);
}

// traits renders a runner's traits, whichever shape the API gives them
// (a map of names to values, or a list); "-" without any.
function traits(tr) {
  if (!tr) return "-";
  const items = Array.isArray(tr) ? tr.map(String) : Object.entries(tr).map(([k, v]) => v === true || v === "" ? k : `${k}=${v}`);
  if (!items.length) return "-";
  return items.sort().map((x) => el("span", { class: "tag" }, x));
}

// --- groups ----------------------------------------------------------------

// groups lists the groups among the newest tasks (the API has no list of
// groups) and opens any group by ID.
async function groups(seq) {
  const form = el("form", { class: "filters", id: "group-form" },
    el("label", {}, "group ID", el("input", { name: "id", id: "group-id", placeholder: "01J…", size: 28, class: "mono" })),
    el("button", { type: "submit", class: "primary" }, "Open"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const id = new FormData(form).get("id").trim();
    if (id) location.hash = "#/group/" + encodeURIComponent(id);
  });
  const box = el("div", { class: "scroll" });
  main.replaceChildren(el("h1", {}, "Groups and chains"), form,
    el("p", { class: "muted" }, "Groups and chains that the newest 1,000 tasks belong to."), box);
  const load = async () => {
    const page = await api("GET", "/v1/tasks?limit=1000");
    if (seq !== renderSeq) return;
    const seen = new Map(), chains = [];
    for (const t of page.tasks) {
      const gid = t.group ? t.group.id : t.callback_of;
      if (gid && !seen.has(gid)) seen.set(gid, t.created_at);
      if (t.next && !t.previous) chains.push(t);
    }
    const gs = await Promise.all([...seen.keys()].slice(0, 50).map((id) =>
      api("GET", "/v1/groups/" + encodeURIComponent(id) + "?limit=0").catch(() => null)));
    if (seq !== renderSeq) return;
    const rows = gs.filter(Boolean).sort((a, b) => b.created_at.localeCompare(a.created_at));
    const parts = [];
    if (!rows.length && !chains.length) parts.push(el("p", { class: "muted empty", id: "no-groups" }, "No groups or chains among the newest tasks."));
    if (rows.length) parts.push(el("h2", {}, "Groups"), el("table", { id: "group-table" },
      el("thead", {}, el("tr", {}, ["group", "state", "progress", "callback", "created"].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((g) => el("tr", { "data-id": g.id, "data-state": g.state },
        el("td", { class: "mono" }, el("a", { href: "#/group/" + g.id }, g.id)),
        el("td", {}, stateCell(g.state)), el("td", {}, progressBar(g)),
        el("td", {}, g.callback ? [el("a", { href: "#/task/" + g.callback, class: "mono" }, g.callback.slice(-8)), " ", stateCell(g.callback_state || "waiting")] : "-"),
        el("td", {}, ago(g.created_at) + " ago"))))));
    if (chains.length) parts.push(el("h2", {}, "Chains (first steps)"), el("table", { id: "chain-table" },
      el("thead", {}, el("tr", {}, ["first step", "function", "state", "next step", "created"].map((h) => el("th", {}, h)))),
      el("tbody", {}, chains.map((t) => el("tr", { "data-id": t.id },
        el("td", { class: "mono" }, el("a", { href: "#/task/" + t.id }, t.id)), el("td", {}, t.function),
        el("td", {}, stateCell(t.state)), el("td", { class: "mono" }, el("a", { href: "#/task/" + t.next }, t.next)),
        el("td", {}, ago(t.created_at) + " ago"))))));
    box.replaceChildren(...parts);
  };
  await load();
  every(load);
}

function progressBar(g) {
  return el("span", { class: "progress", title: `${g.done} of ${g.size} done` },
    meter(g.size ? g.done / g.size : 0, "wide"), ` ${g.done}/${g.size}`);
}

// meter is a bar filled to frac (0..1). Its width is set through the
// CSSOM: the Content-Security-Policy refuses style attributes.
function meter(frac, cls) {
  const fill = el("i");
  fill.style.width = Math.round(100 * Math.min(1, Math.max(0, frac))) + "%";
  return el("span", { class: "meter " + cls }, fill);
}

async function groupDetail(seq, id, params) {
  const cursor = parseInt(params.get("cursor") || "0", 10) || 0;
  const load = async () => {
    const g = await api("GET", `/v1/groups/${encodeURIComponent(id)}?limit=50&cursor=${cursor}`);
    if (seq !== renderSeq) return;
    const cards = STATES.map((s) => el("div", { class: "card", id: "group-count-" + s, "data-count": (g.counts || {})[s] || 0 },
      el("span", { class: "n s-" + s }, (g.counts || {})[s] || 0), el("span", { class: "l" }, s)));
    const actions = el("div", { class: "actions" });
    if (!TERMINAL.has(g.state)) actions.append(el("button", { class: "danger", id: "cancel-group", onclick: async () => {
      try { await api("DELETE", "/v1/groups/" + encodeURIComponent(g.id)); toast("Cancelled group " + g.id); } catch (err) { if (err.status !== 401) toast("Cancel failed: " + err.message); }
      route();
    } }, "Cancel group"));
    const nav = [];
    if (cursor > 0) nav.push(el("a", { href: `#/group/${g.id}?cursor=${Math.max(0, cursor - 50)}`, id: "prev-page" }, "← earlier members"));
    if (g.next_cursor) nav.push(el("a", { href: `#/group/${g.id}?cursor=${g.next_cursor}`, id: "next-page" }, "later members →"));
    main.replaceChildren(
      el("p", {}, el("a", { href: "#/groups" }, "← groups")),
      el("h1", {}, "Group ", el("span", { class: "mono" }, g.id)), actions,
      el("dl", { class: "fields" }, [["state", stateCell(g.state)], ["members", g.size], ["done", progressBar(g)],
        ["on failure", g.on_failure || "-"], ["created", g.created_at],
        ["callback", g.callback ? el("span", {}, el("a", { href: "#/task/" + g.callback, class: "mono", id: "group-callback" }, g.callback), " ", stateCell(g.callback_state || "waiting")) : "none"]]
        .map(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])),
      el("div", { class: "cards" }, cards),
      el("h2", {}, `Members ${g.cursor}–${g.cursor + (g.members || []).length - 1}`),
      el("div", { class: "scroll" }, el("table", { id: "member-table" },
        el("thead", {}, el("tr", {}, el("th", { class: "num" }, "#"), el("th", {}, "ID"), el("th", {}, "function"), el("th", {}, "state"),
          el("th", { class: "num" }, "attempt"), el("th", { class: "hide-narrow" }, "runner / error"))),
        el("tbody", { id: "member-rows" }, (g.members || []).map((t) => el("tr", { "data-id": t.id, "data-state": t.state },
          el("td", { class: "num" }, t.group ? t.group.index : ""), el("td", { class: "mono" }, el("a", { href: "#/task/" + t.id }, t.id)),
          el("td", {}, t.function), el("td", {}, stateCell(t.state)), el("td", { class: "num" }, `${t.attempt}/${t.max_attempts}`),
          t.error ? el("td", { class: "err hide-narrow" }, t.error.slice(0, 120)) : el("td", { class: "hide-narrow" }, t.runner || "-")))))),
      el("div", { class: "pager" }, ...nav));
  };
  await load();
  every(load);
}

// --- dead letters ----------------------------------------------------------

async function deadLetters(seq) {
  const box = el("div", { class: "scroll" });
  const queue = el("input", { id: "redrive-queue", placeholder: "all queues", size: 12 });
  const btn = el("button", { class: "primary", id: "redrive" }, "Redrive");
  btn.addEventListener("click", async () => {
    btn.disabled = true;
    try {
      const body = queue.value.trim() ? { queue: queue.value.trim() } : {};
      const out = await api("POST", "/v1/deadletters/redrive", body);
      toast(`Redriven ${out.redriven.length} task${out.redriven.length === 1 ? "" : "s"}`);
    } catch (err) { if (err.status !== 401) toast("Redrive failed: " + err.message); }
    btn.disabled = false;
    route();
  });
  main.replaceChildren(el("h1", {}, "Dead letters"),
    el("p", { class: "muted" }, "Task messages the queue gave up on (SQS redrive policy). The sweeper marked them failed and keeps them here; Redrive submits each again as a new task whose idempotency key retry:<id> links it to the old one, and deletes the dead letter once the new task is enqueued."),
    el("div", { class: "filters" }, el("label", {}, "queue", queue), btn), box);
  const load = async () => {
    const doc = await api("GET", "/v1/deadletters");
    if (seq !== renderSeq) return;
    const ds = doc.dead_letters || [];
    if (!ds.length) { box.replaceChildren(el("p", { class: "muted empty", id: "no-deadletters" }, "No dead letters.")); return; }
    box.replaceChildren(el("table", { id: "deadletter-table" },
      el("thead", {}, el("tr", {}, ["task", "function", "queue", "dead-lettered"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ds.map((d) => el("tr", { "data-id": d.id },
        el("td", { class: "mono" }, el("a", { href: "#/task/" + d.id }, d.id)), el("td", {}, d.function), el("td", {}, d.queue),
        el("td", {}, ago(d.at) + " ago"))))));
  };
  await load();
  every(load);
}

route();
