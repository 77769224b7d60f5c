// astuner logview: a hash-routed page over /api/*. Every piece of record text reaches the DOM
// through textContent or an attribute value, never as markup (see el()); the server's CSP
// forbids inline scripts as a second line of defence.
"use strict";

const app = document.getElementById("app");
const crumbs = document.getElementById("crumbs");
const live = document.getElementById("live");
const CHUNK = 2000; // tokens rendered per batch on the sample page
let refreshTimer = null;

// ---- tiny DOM helper: strings become text nodes, never HTML ----------------------------------
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = String(v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function fmt(v, digits = 3) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return digits === 0 ? String(Math.round(v)) : v.toFixed(digits);
  return String(v);
}

async function api(name, params) {
  const q = new URLSearchParams(params || {}).toString();
  const r = await fetch(`/api/${name}${q ? "?" + q : ""}`);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || `HTTP ${r.status}`);
  return body;
}

function setCrumbs(items) {
  crumbs.replaceChildren(...items.map(([label, href]) => (href ? el("a", { href }, label) : el("span", {}, label))));
}

function showError(err) {
  app.replaceChildren(el("p", { class: "error", id: "load-error" }, `Could not load: ${err.message}`));
}

// ---- router ------------------------------------------------------------------------------
function parseHash() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query] = raw.split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return { parts, query: new URLSearchParams(query || "") };
}

async function route() {
  clearInterval(refreshTimer);
  refreshTimer = null;
  const { parts, query } = parseHash();
  try {
    if (parts[0] === "step") await stepPage(parts[1], Number(parts[2]), query);
    else if (parts[0] === "episode") await episodePage(parts[1], Number(parts[2]), parts[3]);
    else if (parts[0] === "sample") await samplePage(parts[1], Number(parts[2]), parts[3], Number(parts[4]));
    else await overviewPage();
  } catch (err) {
    showError(err);
  }
  document.body.dataset.page = parts[0] || "overview";
  document.body.dataset.ready = "1";
}

window.addEventListener("hashchange", () => {
  document.body.dataset.ready = "0";
  route();
});
route();

const stepHref = (kind, step) => `#/step/${kind}/${step}`;
const episodeHref = (kind, step, id) => `#/episode/${kind}/${step}/${encodeURIComponent(id)}`;
const sampleHref = (kind, step, id, i) => `#/sample/${kind}/${step}/${encodeURIComponent(id)}/${i}`;

// ---- overview ----------------------------------------------------------------------------
async function overviewPage() {
  const ov = await api("overview");
  renderOverview(ov);
  if (ov.running) {
    let last = JSON.stringify([ov.metrics.length, ov.steps]);
    refreshTimer = setInterval(async () => {
      try {
        const next = await api("overview");
        const sig = JSON.stringify([next.metrics.length, next.steps]);
        if (sig !== last) {
          last = sig;
          renderOverview(next);
        }
        live.hidden = !next.running;
      } catch (_) { /* the next tick retries */ }
    }, 5000);
  }
}

function renderOverview(ov) {
  document.title = `${ov.name} · astuner logview`;
  live.hidden = !ov.running;
  setCrumbs([[ov.name, null]]);
  const train = ov.metrics.filter((m) => m.phase !== "validation");
  const val = ov.metrics.filter((m) => m.phase === "validation");
  const charts = el("div", { class: "charts" },
    chart("reward", train, "reward_mean", val, "val/reward_mean"),
    chart("success rate", train, "success_rate", val, "val/success_rate"),
    chart("madness rate", train, "madness_rate", val, "val/madness_rate"),
    chart("tool-use rate", train, "tool_use_rate", val, "val/tool_use_rate"),
    chart("turns per episode", train, "turns_per_episode", val, "val/turns_per_episode"),
    chart("failed + timed-out episodes", train.map((m) => ({ step: m.step, v: (m.episodes_failed || 0) + (m.episodes_timeout || 0) })), "v"),
    chart("step seconds", train, "step_seconds"),
  );
  const byStep = new Map(train.map((m) => [m.step, m]));
  const valByStep = new Map(val.map((m) => [m.step, m]));
  const rows = ov.steps.map((s) => {
    const m = s.kind === "val" ? valByStep.get(s.step) || {} : byStep.get(s.step) || {};
    const p = s.kind === "val" ? "val/" : "";
    return el("tr", { "data-kind": s.kind, "data-step": s.step },
      el("td", {}, el("a", { href: stepHref(s.kind, s.step) }, `${s.kind === "val" ? "validation" : "train"} ${s.step}`)),
      el("td", { class: "num" }, fmt(m[p + "episodes"], 0)),
      el("td", { class: "num reward" }, fmt(m[p + "reward_mean"])),
      el("td", { class: "num" }, fmt(m[p + "success_rate"])),
      el("td", { class: "num" }, fmt(m[p + "madness_rate"])),
      el("td", { class: "num" }, fmt((m[p + "episodes_failed"] ?? null) === null ? null : m[p + "episodes_failed"] + (m[p + "episodes_timeout"] || 0), 0)),
      el("td", { class: "num" }, fmt(m.zero_signal_groups, 0)),
      el("td", { class: "num" }, fmt(m.step_seconds ?? m[p + "rollout_seconds"], 1)),
    );
  });
  app.replaceChildren(
    el("h1", {}, ov.name),
    el("p", { class: "muted" }, ov.path, " · tokenizer: ", ov.tokenizer),
    el("h2", {}, "Curves"),
    ov.metrics.length ? charts : el("p", { class: "muted" }, "no metrics yet"),
    el("h2", {}, `Steps (${ov.steps.length})`),
    el("table", { id: "steps" },
      el("thead", {}, el("tr", {}, ...["step", "episodes", "reward", "success", "madness", "failed", "zero-signal groups", "seconds"].map((h, i) => el("th", { class: i ? "num" : "" }, h)))),
      el("tbody", {}, rows)),
    el("h2", {}, "Config"),
    el("details", {}, el("summary", {}, "config.yaml"), el("pre", { id: "config" }, ov.config)),
  );
}

function chart(title, rows, key, valRows, valKey) {
  const series = [[rows, key, "series-train"]];
  if (valRows && valRows.length) series.push([valRows, valKey, "series-val"]);
  const pts = series.map(([rs, k]) => rs.filter((r) => typeof r[k] === "number").map((r) => [r.step, r[k]]));
  const all = pts.flat();
  const box = el("div", { class: "chart", "data-chart": key });
  box.append(el("h3", {}, title, valRows && valRows.length ? el("span", { class: "muted" }, "  (solid: train, dashed: validation)") : null));
  if (!all.length) {
    box.append(el("p", { class: "muted" }, "no data"));
    return box;
  }
  const NS = "http://www.w3.org/2000/svg";
  const W = 300, H = 140, L = 34, B = 18, T = 6, R = 6;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) x1 = x0 + 1;
  if (y0 === y1) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - B - T);
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => {
    const n = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
    if (text !== undefined) n.textContent = text;
    svg.append(n);
    return n;
  };
  add("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" });
  add("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" });
  add("text", { x: 2, y: T + 8 }, fmt(y1, 2));
  add("text", { x: 2, y: H - B }, fmt(y0, 2));
  add("text", { x: L, y: H - 4 }, `step ${x0}`);
  add("text", { x: W - R - 40, y: H - 4 }, `step ${x1}`);
  series.forEach(([, , cls], i) => {
    if (!pts[i].length) return;
    add("polyline", { points: pts[i].map(([x, y]) => `${sx(x)},${sy(y)}`).join(" "), class: cls });
    for (const [x, y] of pts[i]) add("circle", { cx: sx(x), cy: sy(y), r: 2.5, class: cls }).append(Object.assign(document.createElementNS(NS, "title"), { textContent: `step ${x}: ${fmt(y)}` }));
  });
  box.append(svg);
  return box;
}

// ---- a step ------------------------------------------------------------------------------
async function stepPage(kind, step, query) {
  const opts = {
    kind, step,
    sort: query.get("sort") || "task",
    order: query.get("order") || "asc",
    status: query.get("status") || "",
    flag: query.get("flag") || "",
    q: query.get("q") || "",
    offset: Number(query.get("offset") || 0),
    limit: Number(query.get("limit") || 100),
  };
  const data = await api("step", opts);
  setCrumbs([["experiment", "#/"], [`${kind === "val" ? "validation" : "train"} step ${step}`, null]]);
  const go = (change) => {
    const next = { ...opts, ...change };
    if (!("offset" in change)) next.offset = 0;
    const q = new URLSearchParams();
    for (const k of ["sort", "order", "status", "flag", "q", "offset", "limit"]) if (next[k] !== "" && next[k] !== undefined) q.set(k, next[k]);
    location.hash = `${stepHref(kind, step)}?${q}`;
  };
  const select = (id, label, value, choices, key) => el("label", {}, label,
    el("select", { id, onchange: (e) => go({ [key]: e.target.value }) },
      ...choices.map(([v, t]) => { const o = el("option", { value: v }, t); o.selected = v === value; return o; })));
  const search = el("input", { id: "filter-q", type: "search", placeholder: "task / episode / error", value: opts.q });
  search.addEventListener("keydown", (e) => { if (e.key === "Enter") go({ q: search.value }); });
  const controls = el("div", { class: "controls" },
    select("filter-status", "status", opts.status, [["", "all"], ["ok", "ok"], ["failed", "failed"], ["timeout", "timeout"]], "status"),
    select("filter-flag", "only", opts.flag, [["", "–"], ["success", "successful"], ["no_success", "not successful"], ["mad", "madness"], ["drift", "drift"]], "flag"),
    select("sort", "sort by", opts.sort, [["task", "task"], ["reward", "reward"], ["advantage", "advantage"], ["status", "status"], ["tokens", "tokens"], ["seconds", "seconds"]], "sort"),
    select("order", "order", opts.order, [["asc", "ascending"], ["desc", "descending"]], "order"),
    search,
  );
  const head = ["episode", "task", "#", "status", "reward", "advantage", "success", "flags", "calls", "trained tokens", "seconds", "error"];
  const numeric = new Set(["#", "reward", "advantage", "calls", "trained tokens", "seconds"]);
  const body = el("tbody", {});
  let lastTask = null;
  for (const e of data.episodes) {
    if (opts.sort === "task" && e.task_id !== lastTask) {
      lastTask = e.task_id;
      const g = data.groups[e.task_id];
      body.append(el("tr", { class: "group" }, el("td", { colspan: head.length },
        `task ${e.task_id}`, g ? `  ·  ${g.n} scored, mean reward ${fmt(g.reward_mean)}` : "  ·  no scored episode",
        g && g.zero_signal && g.n > 1 ? el("span", { class: "badge", title: "all rewards equal: no learning signal" }, " zero signal") : null)));
    }
    const flags = [
      ...e.madness.map((m) => el("span", { class: "badge mad" }, m)),
      e.drift ? el("span", { class: "badge drift" }, `drift ${e.drift}`) : null,
      e.tool_call_parse_failures ? el("span", { class: "badge mad", title: "tool calls that did not parse (returned to the agent as text)" }, `unparsable tool call ${e.tool_call_parse_failures}`) : null,
      e.context_overflow ? el("span", { class: "badge mad" }, "context overflow") : null,
    ];
    body.append(el("tr", { class: "episode", "data-episode": e.episode_id, "data-status": e.status },
      el("td", {}, el("a", { href: episodeHref(kind, step, e.episode_id) }, e.episode_id)),
      el("td", {}, e.task_id),
      el("td", { class: "num" }, fmt(e.repeat_index, 0)),
      el("td", {}, el("span", { class: `badge ${e.status}` }, e.status)),
      el("td", { class: "num reward" }, fmt(e.reward)),
      el("td", { class: "num advantage" }, fmt(e.advantage)),
      el("td", {}, e.is_success === null ? "–" : e.is_success ? "✓" : "✗"),
      el("td", {}, ...flags),
      el("td", { class: "num" }, fmt(e.calls, 0)),
      el("td", { class: "num" }, fmt(e.trained_tokens, 0)),
      el("td", { class: "num" }, fmt(e.seconds, 1)),
      el("td", { class: "error" }, e.error || ""),
    ));
  }
  const first = data.matched ? data.offset + 1 : 0;
  const last = Math.min(data.offset + data.limit, data.matched);
  const pager = el("div", { class: "pager" },
    el("button", { id: "prev", disabled: data.offset <= 0 ? "" : null, onclick: () => go({ offset: Math.max(0, data.offset - data.limit) }) }, "‹ previous"),
    el("span", { id: "range" }, `${first}–${last} of ${data.matched}` + (data.matched !== data.total ? ` (filtered from ${data.total})` : "")),
    el("button", { id: "next", disabled: last >= data.matched ? "" : null, onclick: () => go({ offset: data.offset + data.limit }) }, "next ›"),
  );
  app.replaceChildren(
    el("h1", {}, `${kind === "val" ? "Validation" : "Training"} step ${step}`),
    el("p", { class: "muted" }, `${data.total} episodes: ${data.counts.ok} ok, ${data.counts.failed} failed, ${data.counts.timeout} timed out · ${Object.keys(data.groups).length} tasks scored`),
    controls, pager,
    el("table", { id: "episodes" }, el("thead", {}, el("tr", {}, ...head.map((h) => el("th", { class: numeric.has(h) ? "num" : "" }, h)))), body),
  );
}

// ---- an episode --------------------------------------------------------------------------
function messageView(m) {
  const role = String(m.role || "?");
  const box = el("div", { class: `msg ${role}` }, el("div", { class: "role" }, role, m.name ? ` · ${m.name}` : ""));
  const content = m.content;
  if (typeof content === "string") box.append(el("div", { class: "text" }, content));
  else if (Array.isArray(content)) {
    for (const part of content) box.append(el("div", { class: "text" }, typeof part === "string" ? part : part.text ?? JSON.stringify(part)));
  } else if (content !== null && content !== undefined) box.append(el("div", { class: "text" }, JSON.stringify(content)));
  for (const tc of m.tool_calls || []) {
    const fn = tc.function || tc;
    box.append(el("div", { class: "toolcall" }, `→ ${fn.name}(${typeof fn.arguments === "string" ? fn.arguments : JSON.stringify(fn.arguments)})`));
  }
  return box;
}

async function episodePage(kind, step, id) {
  const ep = await api("episode", { kind, step, id });
  const s = ep.summary;
  setCrumbs([["experiment", "#/"], [`${kind === "val" ? "validation" : "train"} step ${step}`, stepHref(kind, step)], [`episode ${id}`, null]]);
  const lastCall = ep.calls[ep.calls.length - 1];
  const conversation = lastCall ? [...(lastCall.messages || []), { role: "assistant", content: lastCall.response_text }] : [];
  const calls = el("table", { id: "calls" },
    el("thead", {}, el("tr", {}, ...["call", "start s", "seconds", "prompt tokens", "response tokens", "finish", "spliced", "drift", "madness", "response"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ep.calls.map((c) => el("tr", { "data-call": c.index },
      el("td", { class: "num" }, c.index),
      el("td", { class: "num" }, fmt(c.start_s, 2)),
      el("td", { class: "num" }, fmt(c.seconds, 2)),
      el("td", { class: "num" }, c.prompt_tokens),
      el("td", { class: "num" }, c.response_tokens),
      el("td", {}, c.finish_reason),
      el("td", { class: "num" }, c.spliced),
      el("td", { class: "num" }, c.drift ? el("span", { class: "badge drift" }, c.drift) : "0"),
      el("td", {}, ...Object.entries(c.madness).map(([k, v]) => el("span", { class: "badge mad", title: v }, k))),
      el("td", {}, el("details", {}, el("summary", {}, `${(c.response_text || "").length} chars`), el("pre", {}, c.response_text || ""))),
    ))));
  const samples = el("table", { id: "samples" },
    el("thead", {}, el("tr", {}, ...["sample", "calls merged", "prompt tokens", "response tokens", "trained tokens", "truncated"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ep.samples.map((x) => el("tr", {},
      el("td", {}, el("a", { href: sampleHref(kind, step, id, x.index), class: "sample-link" }, `sample ${x.index}`)),
      el("td", {}, x.call_indices.join(", ")),
      el("td", { class: "num" }, x.prompt_tokens),
      el("td", { class: "num" }, x.response_tokens),
      el("td", { class: "num" }, x.trained_tokens),
      el("td", {}, x.response_truncated ? "yes" : "no"),
    ))));
  app.replaceChildren(
    el("h1", {}, `Episode ${id}`),
    el("p", {}, `task ${s.task_id} · repeat ${s.repeat_index} · `, el("span", { class: `badge ${s.status}` }, s.status),
      ` · reward `, el("b", { id: "episode-reward" }, fmt(s.reward)), ` · advantage ${fmt(s.advantage)} · success ${s.is_success === null ? "–" : s.is_success ? "yes" : "no"}`,
      ...s.madness.map((m) => el("span", { class: "badge mad" }, m))),
    ep.error ? el("pre", { class: "error", id: "episode-error" }, ep.error) : null,
    el("h2", {}, `Samples (${ep.samples.length})`), ep.samples.length ? samples : el("p", { class: "muted" }, "no training samples (failed episodes have none)"),
    el("h2", {}, "Conversation (as the agent saw it at its last call, then its answer)"),
    el("div", { id: "conversation" }, conversation.map(messageView)),
    el("h2", {}, `LLM calls (${ep.calls.length})`), calls,
    el("h2", {}, "Output metadata and metrics"),
    el("pre", {}, JSON.stringify({ output_metadata: ep.output_metadata, metrics: ep.metrics }, null, 1)),
  );
}

// ---- a sample: every token as a chip ---------------------------------------------------------
function lpBucket(lp) {
  const p = Math.exp(lp);
  return p >= 0.9 ? 0 : p >= 0.6 ? 1 : p >= 0.3 ? 2 : p >= 0.1 ? 3 : 4;
}

async function samplePage(kind, step, id, index) {
  const sm = await api("sample", { kind, step, id, index });
  setCrumbs([["experiment", "#/"], [`${kind === "val" ? "validation" : "train"} step ${step}`, stepHref(kind, step)], [`episode ${id}`, episodeHref(kind, step, id)], [`sample ${index}`, null]]);
  const t = sm.tokens;
  const n = t.id.length;
  const trained = t.mask.reduce((a, b) => a + b, 0);
  const markerAt = new Map(sm.markers.map((m) => [m.position, m]));
  const box = el("div", { class: "tokens", id: "tokens", "data-total": n });
  const sentinel = el("div", { id: "sentinel" });
  let rendered = 0;
  const renderChunk = () => {
    const frag = document.createDocumentFragment();
    const end = Math.min(n, rendered + CHUNK);
    for (let i = rendered; i < end; i++) {
      const m = markerAt.get(i);
      if (m) {
        const label = `${m.merge ? "merge · " : ""}call ${m.call ?? "?"}` + (m.drift ? ` · drift ${m.drift}` : "") + (m.spliced ? ` · spliced ${m.spliced}` : "");
        frag.append(el("span", { class: `marker${m.drift ? " drift" : ""}`, title: m.drift ? "this call's prompt re-tokenized earlier turns into other ids" : "a sampled turn starts here" }, label));
      }
      const isPrompt = i < sm.prompt_length;
      const cls = isPrompt ? "prompt" : t.mask[i] ? `trained lp${lpBucket(t.logprob[i] ?? 0)}` : "masked";
      const text = t.text ? t.text[i] : `‹${t.id[i]}›`;
      const shown = text.replace(/\n/g, "↵\n");
      const lp = t.logprob[i];
      const tip = `#${i} · id ${t.id[i]} · ${JSON.stringify(text)}` +
        (lp === null || lp === undefined ? "" : ` · logprob ${lp.toFixed(4)} (p=${Math.exp(lp).toFixed(3)})`) +
        ` · ${isPrompt ? "prompt" : t.mask[i] ? "trained" : "masked (not trained)"}`;
      frag.append(el("span", { class: `tok ${cls}`, title: tip, "data-i": i }, shown));
    }
    rendered = end;
    box.append(frag);
    box.dataset.rendered = String(rendered);
    if (rendered >= n) observer.disconnect();
  };
  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && rendered < n) renderChunk();
  });
  app.replaceChildren(
    el("h1", {}, `Sample ${index} of episode ${id}`),
    el("p", { id: "sample-stats" },
      `${n} tokens: ${sm.prompt_length} prompt, ${n - sm.prompt_length} response of which `, el("b", { id: "trained-count" }, trained), " trained",
      ` · calls ${sm.call_indices.join(", ")} · reward ${fmt(sm.reward)} · advantage ${fmt(sm.advantage)}`,
      sm.response_truncated ? " · response truncated" : ""),
    el("div", { class: "legend" },
      el("span", {}, el("span", { class: "swatch prompt" }), "prompt"),
      el("span", {}, el("span", { class: "swatch masked" }), "masked (context, not trained)"),
      el("span", {}, el("span", { class: "swatch lp0" }), el("span", { class: "swatch lp2" }), el("span", { class: "swatch lp4" }), "trained, by probability (high → low)"),
      el("span", { class: "marker" }, "call / merge point"), el("span", { class: "marker drift" }, "drift"),
      t.text ? null : el("span", { class: "muted" }, "(no tokenizer found: ids shown)"),
      el("button", { id: "render-all", onclick: () => { while (rendered < n) renderChunk(); } }, "render all tokens")),
    box, sentinel,
  );
  renderChunk();
  observer.observe(sentinel);
}
