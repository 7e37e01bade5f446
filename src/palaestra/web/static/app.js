// Palaestra trajectory viewer: hash-routed pages over the JSON API in palaestra/web/_app.py.
//
// Every piece of trajectory text is untrusted (model and environment output), so
// the DOM is built with createElement and text nodes only: no string is ever parsed as HTML.
// Routes:  #/                      runs
//          #/run/RUN?env=&outcome=&split=&suite=&group=&q=&offset=
//          #/episode/RUN?id=EPISODE_ID&step=N
//          #/diff?run_a=&episode_a=&run_b=&episode_b=
// An episode of a search agent also shows its search tree (GET /api/runs/RUN/tree?id=).
"use strict";

const PAGE = 50;
const OUTCOMES = ["success", "failure", "limit", "error"];

// ---- DOM helpers ---------------------------------------------------------------

// h("a", {href: "#/", class: "x"}, "text", child, [more]) -> element. Strings become
// text nodes; null/undefined/false children are skipped.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "value") el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

function badge(outcome) {
  return h("span", {class: `badge ${OUTCOMES.includes(outcome) ? outcome : ""}`}, outcome);
}

function bar(fraction) {
  const f = Math.max(0, Math.min(1, Number(fraction) || 0));
  const fill = h("span", {class: "fill"});
  fill.style.width = `${(f * 100).toFixed(1)}%`; // CSSOM, allowed by the CSP
  return h("span", {class: "bar", title: f.toFixed(2)}, fill);
}

function num(x, digits = 2) {
  return x === null || x === undefined ? "–" : Number(x).toFixed(digits);
}

function pct(x) {
  return x === null || x === undefined ? "–" : `${Math.round(x * 100)}%`;
}

// An id such as "shop-v1/train/hard/0-04c007a4e2#0" that may wrap only after a "/" (a
// <wbr> there), never inside a part (at a "-"): whole parts per line on a phone.
function breakable(id) {
  return String(id).split("/").flatMap((part, i, all) => i < all.length - 1
    ? [h("span", {class: "nowrap"}, `${part}/`), h("wbr", {})]
    : [h("span", {class: "nowrap"}, part)]);
}

// Wide tables scroll sideways inside their own box instead of widening the page.
function scroller(table) {
  return h("div", {class: "table-scroll"}, table);
}

function text(t, cls = "text") {
  return h("pre", {class: cls}, t ?? "");
}

// ---- routing and data ----------------------------------------------------------

function link(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") qs.set(k, String(v));
  }
  const s = qs.toString();
  return `#${path}${s ? "?" + s : ""}`;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?", 2);
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  return {parts, params: new URLSearchParams(query || "")};
}

async function api(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") qs.set(k, String(v));
  }
  const url = qs.toString() ? `${path}?${qs}` : path;
  const r = await fetch(url, {cache: "no-store"});
  if (!r.ok) {
    let msg = `${r.status} ${r.statusText}`;
    try { msg = (await r.json()).message || msg; } catch (_) { /* not JSON */ }
    throw new Error(msg);
  }
  return r.json();
}

let renderSeq = 0;
let keyHandler = null; // the current page's keyboard handler, if any

function crumbs(...items) {
  const nav = document.getElementById("crumbs");
  const out = [];
  items.forEach((it, i) => {
    if (i) out.push(h("span", {class: "sep"}, "›"));
    out.push(it.href ? h("a", {href: it.href}, it.label) : h("span", {}, it.label));
  });
  nav.replaceChildren(...out);
}

async function route() {
  const seq = ++renderSeq;
  keyHandler = null;
  const app = document.getElementById("app");
  const {parts, params} = parseHash();
  let node;
  try {
    if (parts[0] === "run" && parts[1]) node = await runPage(parts[1], params);
    else if (parts[0] === "episode" && parts[1]) node = await episodePage(parts[1], params);
    else if (parts[0] === "diff") node = await diffPage(params);
    else node = await runsPage();
  } catch (err) {
    crumbs({label: "Runs", href: "#/"});
    node = h("div", {class: "card error-box", role: "alert"}, h("strong", {}, "Error: "), err.message);
  }
  if (seq === renderSeq) app.replaceChildren(node); // a newer navigation wins
}

// ---- runs ----------------------------------------------------------------------

async function runsPage() {
  const runs = await api("/api/runs");
  crumbs({label: "Runs"});
  const rows = runs.map((r) =>
    h("tr", {},
      h("td", {}, h("a", {href: link(`/run/${encodeURIComponent(r.id)}`), class: "run-link"}, r.id),
        h("div", {class: "muted small"}, r.path)),
      h("td", {}, r.kind),
      h("td", {}, r.model),
      h("td", {}, r.agent),
      h("td", {}, r.suite || ""),
      h("td", {class: "num"}, r.episodes),
      h("td", {}, OUTCOMES.filter((o) => r.outcomes[o]).map((o) =>
        h("a", {href: link(`/run/${encodeURIComponent(r.id)}`, {outcome: o}), class: "count"},
          badge(o), " ", r.outcomes[o]))),
      h("td", {class: "num"}, pct(r.success_rate)),
      h("td", {}, bar(r.mean_progress), " ", num(r.mean_progress)),
      h("td", {class: "muted small"}, r.created_at ? r.created_at.replace("T", " ").slice(0, 16) : ""),
    ));
  return h("section", {},
    h("h1", {}, "Runs"),
    scroller(h("table", {class: "grid"},
      h("thead", {}, h("tr", {}, ["run", "kind", "model", "agent", "suite", "episodes", "outcomes",
        "success", "progress", "created"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows))),
    h("p", {class: "muted small"}, "Success excludes error episodes. Refresh to see episodes a running job has added."));
}

// ---- one run's episodes --------------------------------------------------------

const FILTERS = [["env", "environment"], ["outcome", "outcome"], ["split", "split"],
  ["suite", "suite"], ["group", "suite group"]];

async function runPage(run, params) {
  const filters = Object.fromEntries(FILTERS.map(([k]) => [k, params.get(k) || ""]));
  const q = params.get("q") || "";
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);
  const [runs, page] = await Promise.all([
    api("/api/runs"),
    api(`/api/runs/${encodeURIComponent(run)}/episodes`, {...filters, q, offset, limit: PAGE}),
  ]);
  const info = runs.find((r) => r.id === run);
  crumbs({label: "Runs", href: "#/"}, {label: run});
  const go = (changes) => {
    const next = {...filters, q, offset: 0, ...changes};
    location.hash = link(`/run/${encodeURIComponent(run)}`, next);
  };

  // Suite filters only for runs that have suites (eval runs).
  const controls = FILTERS.filter(([k]) => (k !== "suite" && k !== "group") ||
    Object.keys(page.facets[k]).length > 0).map(([k, label]) => {
    // Every outcome is offered (with 0), and so is a filter value from the URL.
    const counts = k === "outcome" ? Object.fromEntries(OUTCOMES.map((o) => [o, 0])) : {};
    Object.assign(counts, page.facets[k]);
    if (filters[k] && !(filters[k] in counts)) counts[filters[k]] = 0;
    const opts = [h("option", {value: ""}, "all")];
    for (const [v, n] of Object.entries(counts)) {
      opts.push(h("option", {value: v, selected: v === filters[k]}, `${v} (${n})`));
    }
    return h("label", {}, label,
      h("select", {name: k, "data-filter": k, onchange: (e) => go({[k]: e.target.value})}, opts));
  });
  const search = h("input", {type: "search", name: "q", placeholder: "task id or instruction",
    value: q});
  const form = h("form", {class: "filters", onsubmit: (e) => { e.preventDefault(); go({q: search.value}); }},
    controls, h("label", {}, "search", search),
    h("button", {type: "submit"}, "Apply"),
    h("a", {href: link(`/run/${encodeURIComponent(run)}`), class: "button"}, "Clear"));

  const rows = page.episodes.map((e) =>
    h("tr", {class: "episode-row"},
      h("td", {}, h("a", {href: link(`/episode/${encodeURIComponent(run)}`, {id: e.episode_id}),
        class: "episode-link"}, e.episode_id)),
      h("td", {}, badge(e.outcome)),
      h("td", {class: "nowrap"}, e.env_id,
        h("div", {class: "muted small"}, `${e.split} · ${e.difficulty}`)),
      h("td", {class: "num"}, num(e.score)),
      h("td", {}, bar(e.progress), " ", num(e.progress)),
      h("td", {class: "num"}, e.n_steps),
      h("td", {class: "num"}, `${e.prompt_tokens} / ${e.completion_tokens}`),
      h("td", {class: "num"}, e.format_errors || ""),
      h("td", {class: "num"}, e.invalid_actions || ""),
      e.suite !== null || e.group !== null
        ? h("td", {class: "small"}, [e.suite, e.group].filter(Boolean).join(" · "),
          e.perturbations.length ? h("div", {class: "muted"}, e.perturbations.join(", ")) : null)
        : h("td", {}),
      h("td", {class: "instruction", title: e.instruction}, e.instruction),
    ));
  const last = Math.min(page.total, page.offset + page.episodes.length);
  const pager = h("div", {class: "pager"},
    h("button", {type: "button", disabled: page.offset <= 0,
      onclick: () => go({offset: Math.max(0, page.offset - PAGE)})}, "‹ Prev"),
    h("span", {class: "muted"}, page.total ? `${page.offset + 1}–${last} of ${page.total}` : "no episodes match"),
    h("button", {type: "button", disabled: last >= page.total,
      onclick: () => go({offset: page.offset + PAGE})}, "Next ›"));

  return h("section", {},
    h("h1", {}, run),
    info ? h("p", {class: "muted"}, `${info.kind} · model ${info.model} · agent ${info.agent}` +
      (info.suite ? ` · suite ${info.suite}` : "") + ` · ${info.episodes} episodes · ${info.path}`) : null,
    form,
    scroller(h("table", {class: "grid episodes"},
      h("thead", {}, h("tr", {}, ["episode", "outcome", "env", "score", "progress", "steps",
        "tokens in / out", "fmt err", "invalid", "suite", "instruction"].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows))),
    pager);
}

// ---- one episode, replayed step by step ---------------------------------------

function messageList(messages) {
  return messages.map((m) => h("div", {class: `msg ${m.role}`},
    h("div", {class: "role"}, m.role), text(m.content)));
}

// The step at which a safety environment (safe-v1, refusal-v1) judged the risk realised.
function riskStep(ep) {
  return ep.steps.findIndex((s) => s.info && s.info.safety && s.info.safety.risk_realised);
}

function stepView(ep, i) {
  const s = ep.steps[i];
  const harm = s.info && s.info.safety ? s.info.safety.harm : null;
  const flags = [
    i === riskStep(ep) ? h("span", {class: "flag bad", id: "risk-flag"},
      harm ? `risk realised: ${harm}` : "risk realised") : null,
    s.format_error !== null ? h("span", {class: "flag bad"}, "format error") : null,
    s.invalid_action ? h("span", {class: "flag bad"}, "invalid action") : null,
    s.repeated_action ? h("span", {class: "flag warn"}, "repeated action") : null,
    s.terminated ? h("span", {class: "flag"}, "terminated") : null,
    s.truncated ? h("span", {class: "flag"}, "truncated") : null,
  ];
  return h("div", {class: "step", id: "step"},
    h("div", {class: "stats"},
      h("span", {}, h("b", {}, "reward "), h("span", {id: "step-reward"}, num(s.reward))),
      h("span", {}, h("b", {}, "progress "), bar(s.progress), " ", num(s.progress)),
      h("span", {}, h("b", {}, "tokens "), `${s.prompt_tokens} in / ${s.completion_tokens} out`),
      h("span", {class: "muted"}, `model ${num(s.model_seconds, 3)} s · env ${num(s.env_seconds, 3)} s`),
      flags),
    s.prompt_messages.length ? h("details", {class: "panel", open: true},
      h("summary", {}, i === 0 ? "Observation (the task)" : "Observation (new this turn)"),
      messageList(s.prompt_messages)) : null,
    s.thought ? h("div", {class: "panel"}, h("h3", {}, "Thought"), text(s.thought, "text thought")) : null,
    h("div", {class: "panel"}, h("h3", {}, "Action"),
      s.action !== null ? text(s.action, "text action") : h("p", {class: "muted"}, "(none parsed)")),
    s.format_error !== null ? h("div", {class: "panel bad"}, h("h3", {}, "Format error"), text(s.format_error)) : null,
    h("div", {class: "panel"}, h("h3", {}, s.format_error !== null ? "Feedback" : "Environment feedback"),
      text(s.observation, "text observation")),
    h("details", {class: "panel"}, h("summary", {}, "Raw model output"), text(s.raw_output)));
}

// The search tree as nested lists; the committed path is marked "best".
function treeNode(tree, kids, best, id) {
  const n = tree.nodes[id];
  const cls = ["tree-node", best.has(id) ? "best" : "", n.success ? "success" : "",
    n.invalid ? "invalid" : "", n.terminal && !n.success ? "failed" : ""].filter(Boolean).join(" ");
  const stats = [`V ${num(n.value)}`, `Q ${num(n.q)}`, n.visits ? `N ${n.visits}` : null,
    n.samples > 1 ? `×${n.samples}` : null, `progress ${num(n.progress)}`].filter(Boolean).join(" · ");
  const below = kids.get(id) || [];
  return h("li", {class: cls, "data-node": id},
    h("div", {class: "tree-line", title: n.observation},
      h("span", {class: "idx"}, `#${id}`), " ",
      h("span", {class: "tree-action"}, n.action ?? "(start)"), " ",
      h("span", {class: "muted small"}, stats)),
    below.length ? h("ul", {class: "tree"}, below.map((c) => treeNode(tree, kids, best, c))) : null);
}

async function treePanel(run, id, ep) {
  const info = ep.metadata.search;
  if (!info) return null;
  const tree = await api(`/api/runs/${encodeURIComponent(run)}/tree`, {id});
  const kids = new Map();
  for (const n of tree.nodes) {
    if (n.parent === null) continue;
    if (!kids.has(n.parent)) kids.set(n.parent, []);
    kids.get(n.parent).push(n.id);
  }
  const used = tree.used;
  return h("details", {class: "panel search-tree", id: "search-tree"},
    h("summary", {}, `Search tree: ${tree.algorithm} · value ${tree.value} · ${tree.nodes.length} nodes · ` +
      `${used.expansions} expansions · ${used.tokens} tokens · stop: ${used.stop_reason}`),
    h("ul", {class: "tree root"}, treeNode(tree, kids, new Set(tree.best_path), 0)));
}

async function episodePage(run, params) {
  const id = params.get("id") || "";
  const ep = await api(`/api/runs/${encodeURIComponent(run)}/episode`, {id});
  const searchTree = await treePanel(run, id, ep);
  const others = (await api("/api/task", {id: ep.task.task_id}))
    .filter((o) => !(o.run === run && o.episode_id === id));
  const episodeId = `${ep.task.task_id}#${ep.attempt}`;
  crumbs({label: "Runs", href: "#/"}, {label: run, href: link(`/run/${encodeURIComponent(run)}`)},
    {label: episodeId});
  const n = ep.steps.length;
  const system = ep.messages.filter((m) => m.role === "system");
  let cur = Math.min(Math.max(0, parseInt(params.get("step") || "0", 10) || 0), Math.max(0, n - 1));

  const header = h("div", {class: "card"},
    h("h1", {}, h("span", {class: "id"}, breakable(episodeId)), " ", badge(ep.outcome)),
    h("p", {class: "instruction-full"}, ep.task.instruction),
    h("div", {class: "meta"},
      [["env", ep.task.env_id], ["split", ep.task.split], ["difficulty", ep.task.difficulty],
        ["attempt", ep.attempt], ["agent", ep.agent], ["model", ep.model_id],
        ["score", num(ep.score)], ["progress", num(ep.progress)], ["steps", n],
        ["tokens", `${ep.prompt_tokens} in / ${ep.completion_tokens} out`],
        ["wall", `${num(ep.wall_seconds)} s`],
        ep.limit_reason ? ["limit", ep.limit_reason] : null,
        ep.metadata.suite ? ["suite", `${ep.metadata.suite} · ${ep.metadata.suite_group ?? ""}`] : null,
      ].filter(Boolean).map(([k, v]) => h("span", {}, h("b", {}, k), " ", String(v)))),
    system.length ? h("details", {class: "panel"}, h("summary", {}, "System prompt"),
      system.map((m) => text(m.content))) : null,
    ep.error ? h("details", {class: "panel bad"},
      h("summary", {}, `${ep.error.source} error: ${ep.error.type}: ${ep.error.message}`),
      text(ep.error.traceback)) : null,
    others.length ? h("div", {class: "compare"}, h("b", {}, "Compare with: "),
      others.map((o) => h("a", {class: "compare-link button",
        href: link("/diff", {run_a: run, episode_a: id, run_b: o.run, episode_b: o.episode_id})},
        `${o.run} #${o.attempt} `, badge(o.outcome)))) : null,
    searchTree);

  if (!n) return h("section", {}, header, h("p", {class: "muted"}, "This episode has no steps."));

  const slider = h("input", {type: "range", min: 0, max: n - 1, value: cur, id: "step-slider",
    "aria-label": "step"});
  const label = h("span", {class: "step-label", id: "step-label"});
  const holder = h("div", {});
  const risk = riskStep(ep);
  const timeline = h("ol", {class: "timeline", start: 0},
    ep.steps.map((s, i) => h("li", {"data-step": i, onclick: () => show(i),
      class: [s.format_error !== null || s.invalid_action ? "bad" : "",
        i === risk ? "risk" : ""].filter(Boolean).join(" ")},
      h("span", {class: "idx"}, i), s.action ?? "(format error)",
      i === risk ? h("span", {class: "risk-mark", title: "risk realised"}, " ⚠ risk") : null)));
  const show = (i) => {
    cur = Math.max(0, Math.min(n - 1, i));
    slider.value = String(cur);
    label.textContent = `Step ${cur + 1} / ${n}`;
    holder.replaceChildren(stepView(ep, cur));
    for (const li of timeline.children) li.classList.toggle("current", Number(li.dataset.step) === cur);
    // Remember the step in the URL without a new history entry or a re-render.
    history.replaceState(null, "", link(`/episode/${encodeURIComponent(run)}`, {id, step: cur}));
  };
  slider.addEventListener("input", () => show(Number(slider.value)));
  keyHandler = (e) => {
    const to = {ArrowLeft: cur - 1, ArrowRight: cur + 1, Home: 0, End: n - 1}[e.key];
    if (to === undefined) return false;
    show(to);
    return true;
  };
  const controls = h("div", {class: "player"},
    h("button", {type: "button", onclick: () => show(0), title: "First (Home)"}, "« First"),
    h("button", {type: "button", id: "prev", onclick: () => show(cur - 1), title: "Previous (←)"}, "◀ Prev"),
    slider,
    h("button", {type: "button", id: "next", onclick: () => show(cur + 1), title: "Next (→)"}, "Next ▶"),
    h("button", {type: "button", onclick: () => show(n - 1), title: "Last (End)"}, "Last »"),
    label);
  show(cur);
  return h("section", {}, header, controls,
    h("div", {class: "replay"}, holder, h("aside", {}, h("h3", {}, "Actions"), timeline)));
}

// ---- two episodes of one task, side by side -----------------------------------

function sideHeader(title, run, ep, epId) {
  return h("div", {class: "card side"},
    h("div", {class: "muted small"}, title),
    h("h2", {}, h("a", {href: link(`/episode/${encodeURIComponent(run)}`, {id: epId})}, `${run} · #${ep.attempt}`),
      " ", badge(ep.outcome)),
    h("div", {class: "meta"},
      [["agent", ep.agent], ["model", ep.model_id], ["score", num(ep.score)],
        ["progress", num(ep.progress)], ["steps", ep.steps.length]]
        .map(([k, v]) => h("span", {}, h("b", {}, k), " ", String(v)))));
}

function diffCell(step, action) {
  if (!step) return h("td", {class: "ended muted"}, "(episode over)");
  return h("td", {},
    action !== null ? h("div", {class: "action"}, action) : h("div", {class: "action bad"}, "(format error)"),
    h("div", {class: "obs"}, step.observation));
}

async function diffPage(params) {
  const p = Object.fromEntries(["run_a", "episode_a", "run_b", "episode_b"].map((k) => [k, params.get(k)]));
  const d = await api("/api/diff", p);
  crumbs({label: "Runs", href: "#/"}, {label: "diff"});
  const idA = `${d.a.task.task_id}#${d.a.attempt}`;
  const idB = `${d.b.task.task_id}#${d.b.attempt}`;
  const rows = d.rows.map((r) => h("tr", {
    class: (r.same ? "same" : "diverge") + (r.index === d.first_divergence ? " first" : ""),
    "data-step": r.index},
  h("td", {class: "idx"}, r.index, r.index === d.first_divergence ? h("div", {class: "marker"}, "diverges") : null),
  diffCell(d.a.steps[r.index], r.action_a),
  diffCell(d.b.steps[r.index], r.action_b)));
  const summary = d.first_divergence === null
    ? "The two episodes took the same actions at every step."
    : `The actions first differ at step ${d.first_divergence}; ` +
      `${d.rows.filter((r) => !r.same).length} of ${d.rows.length} steps differ.`;
  return h("section", {},
    h("h1", {}, "Diff: ", h("span", {class: "id"}, breakable(d.a.task.task_id))),
    h("p", {class: "instruction-full"}, d.a.task.instruction),
    h("div", {class: "sides"}, sideHeader("A", d.run_a, d.a, idA), sideHeader("B", d.run_b, d.b, idB)),
    h("p", {class: "divergence", id: "divergence"}, summary),
    scroller(h("table", {class: "grid diff"},
      h("thead", {}, h("tr", {}, h("th", {}, "step"), h("th", {}, `A · ${d.run_a}`), h("th", {}, `B · ${d.run_b}`))),
      h("tbody", {}, rows))));
}

// ---- wiring --------------------------------------------------------------------

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", () => {
  document.getElementById("refresh").addEventListener("click", route);
  document.addEventListener("keydown", (e) => {
    const t = e.target;
    if (t instanceof HTMLElement && t.matches("input, select, textarea")) return;
    if (e.altKey || e.ctrlKey || e.metaKey) return;
    if (keyHandler && keyHandler(e)) e.preventDefault();
    else if (e.key === "r" || e.key === "R") route();
  });
  route();
});
