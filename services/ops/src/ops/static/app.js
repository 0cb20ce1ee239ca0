// MandaAct console: plain JS, no build. The user view calls the services' own APIs (CORS);
// the operator view calls the ops API of this origin.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { config: null, token: null, claims: null, view: "user", timers: [], tail: null };
// Read-your-writes (SPEC §12): the latest MandaAct-Consistency token of each service this
// console wrote to, sent with every call to a service, so a read never shows the world before
// the user's own last writes (the checklist right after a new grid, the XP right after a tick).
const consistency = {};
const POS_CELL = [0, 1, 2, 3, 5, 6, 7, 8]; // positions 1..8 around a block's centre

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function claimsOf(token) {
  try {
    const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(part + "=".repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return null;
  }
}

async function call(base, path, options = {}) {
  const tokens = base ? Object.values(consistency) : [];
  const response = await fetch(base + path, {
    ...options,
    headers: {
      Authorization: `Bearer ${state.token}`,
      ...(options.body ? { "Content-Type": "application/json" } : {}),
      ...(tokens.length ? { "MandaAct-Consistency": tokens.join(",") } : {}),
      ...(options.headers || {}),
    },
  });
  const written = response.headers.get("MandaAct-Consistency");
  if (base && written) consistency[base] = written;
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const why = body && (body.detail || body.title) ? body.detail || body.title : response.status;
    throw new Error(`${options.method || "GET"} ${path}: ${why}`);
  }
  return body;
}

const clip = (text, n) => (text.length > n ? text.slice(0, n) + "…" : text);
const svc = (name) => state.config.services[name];
const showError = (err) => { $("#error").textContent = err ? String(err.message || err) : ""; };

// ---- sign in ----
async function signIn(token) {
  const claims = claimsOf(token);
  if (!claims || !claims.tid || !claims.sub) throw new Error("that is not a MandaAct token");
  state.token = token;
  state.claims = claims;
  sessionStorage.setItem("mandaact-token", token);
  const roles = claims.roles || [];
  $("#who").textContent = `${claims.tid} / ${claims.sub}${roles.length ? " · " + roles.join(", ") : ""}`;
  $("#login").hidden = true;
  $("#tabs").hidden = false;
  $("#tab-operator").hidden = !roles.includes("operator");
  show(roles.includes("operator") ? "operator" : "user");
}

function show(view) {
  state.view = view;
  for (const name of ["user", "operator"]) {
    $(`#${name}`).hidden = name !== view;
    $(`#tab-${name}`).setAttribute("aria-pressed", String(name === view));
  }
  state.timers.forEach(clearInterval);
  state.timers = [];
  if (view === "user") {
    refreshUser();
  } else {
    refreshOperator();
    state.timers.push(setInterval(refreshOperator, 2000));
  }
}

// ---- user view ----
async function refreshUser() {
  showError(null);
  await Promise.all([loadGrid(), loadChecklist(), loadProgress(), loadReport()]).catch(showError);
}

async function loadGrid() {
  const page = await call(svc("goals"), "/v1/mandalarts?limit=20");
  const grid = page.items.find((g) => g.active) || page.items[0];
  drawGrid(grid);
}

function drawGrid(grid) {
  const cells = Array.from({ length: 81 }, () => ({ text: "", kind: "empty" }));
  const put = (block, cell, text, kind) => {
    const row = Math.floor(block / 3) * 3 + Math.floor(cell / 3);
    const col = (block % 3) * 3 + (cell % 3);
    cells[row * 9 + col] = { text, kind };
  };
  $("#grid-title").textContent = grid ? grid.title : "No grid yet";
  if (grid) {
    put(4, 4, grid.title, "core");
    for (const sub of grid.sub_goals) {
      const block = POS_CELL[sub.position - 1];
      put(4, block, sub.title, "sub");
      put(block, 4, sub.title, "sub");
      for (const action of sub.actions) put(block, POS_CELL[action.position - 1], action.title, "action");
    }
  }
  const node = $("#grid");
  node.replaceChildren(
    ...cells.map((c, i) => {
      const col = i % 9, row = Math.floor(i / 9);
      const edges = [col % 3 === 2 && col < 8 ? "block-edge-r" : "", row % 3 === 2 && row < 8 ? "block-edge-b" : ""];
      return el("div", { class: `cell ${c.kind} ${edges.join(" ")}`, "data-row": row, "data-col": col }, c.text);
    }),
  );
}

async function loadChecklist() {
  const list = await call(svc("checkins"), "/v1/checklist");
  $("#checklist-date").textContent = list.date;
  $("#checklist-counts").textContent = `${list.done_count} of ${list.due_count} done${list.perfect ? " · perfect day!" : ""}`;
  $("#checklist-counts").dataset.done = list.done_count;
  $("#checklist").replaceChildren(
    ...list.items.map((item) => {
      const box = el("input", {
        type: "checkbox",
        checked: item.done,
        "data-action": item.action_id,
        "aria-label": item.title,
        onchange: (e) => tick(item, list.date, e.target),
      });
      return el("li", { class: item.done ? "done" : "" }, box, el("span", {}, item.title),
        el("small", { class: "muted" }, item.type));
    }),
  );
}

async function tick(item, day, box) {
  box.disabled = true;
  const before = Number($("#xp-total").textContent);
  try {
    const path = `/v1/checkins/${item.action_id}?date=${day}`;
    await call(svc("checkins"), path, { method: box.checked ? "PUT" : "DELETE" });
    await loadChecklist();
    // XP is awarded by the gamification worker from the event: watch it arrive.
    for (let i = 0; i < 40; i++) {
      const progress = await loadProgress();
      if (progress.xp_total !== before) break;
      await new Promise((r) => setTimeout(r, 250));
    }
  } catch (err) {
    showError(err);
    box.checked = !box.checked;
  } finally {
    box.disabled = false;
  }
}

async function loadProgress() {
  const p = await call(svc("gamification"), "/v1/me/progress");
  $("#level").textContent = p.level;
  $("#xp-total").textContent = p.xp_total;
  const span = Math.max(1, p.xp_for_next_level);
  const pct = Math.min(100, Math.round((100 * p.xp_into_level) / span));
  $("#xp-fill").style.width = `${pct}%`;
  $("#xp-bar").setAttribute("aria-valuenow", p.xp_into_level);
  $("#xp-bar").setAttribute("aria-valuemax", span);
  $("#xp-text").textContent = `${p.xp_into_level} / ${p.xp_for_next_level} XP to level ${p.level + 1}`;
  $("#streak").textContent = p.streak.current;
  $("#streak-longest").textContent = p.streak.longest;
  $("#freezes").textContent = p.streak.freezes ?? 0;
  $("#perfect").textContent = p.perfect_days;
  $("#badges").replaceChildren(...p.badges.map((b) => el("li", { title: b.unlocked_at }, b.code)));
  return p;
}

async function loadReport() {
  const page = await call(svc("reports"), "/v1/reports?limit=1");
  const last = page.items[0];
  $("#report").textContent = last
    ? `${last.week}: ${last.headline} (${last.generator})`
    : "none yet";
}

// ---- operator view ----
async function refreshOperator() {
  try {
    const [overview, letters] = await Promise.all([
      call("", "/v1/ops/overview"),
      call("", "/v1/ops/dead-letters?limit=200"),
    ]);
    drawOverview(overview);
    drawLetters(letters.items);
    showError(null);
  } catch (err) {
    showError(err);
  }
}

function drawOverview(o) {
  $("#services tbody").replaceChildren(
    ...o.services.map((s) => el("tr", { "data-service": s.service },
      el("td", {}, s.service), el("td", {}, s.ready ? "ready" : "NOT READY"),
      el("td", {}, s.outbox_pending ?? "–"), el("td", {}, s.outbox_oldest_age_seconds ?? "–"),
      el("td", {}, s.outbox_parked ?? "–"))),
  );
  $("#lag tbody").replaceChildren(
    ...o.groups.map((g) => el("tr", { "data-group": g.group },
      el("td", {}, g.group),
      el("td", { class: g.lag > 0 ? "lagging" : "", "data-lag": g.lag }, g.lag),
      el("td", { class: "muted" }, g.partitions.filter((p) => p.lag > 0)
        .map((p) => `${p.topic}[${p.partition}] ${p.lag}`).join(", ") || "–"),
      el("td", {}, o.dead_letters[g.group] ?? 0))),
  );
}

function selectedIds() {
  return [...document.querySelectorAll("#dead-letters tbody input:checked")].map((b) => ({
    group: b.dataset.group, id: b.dataset.id,
  }));
}

function drawLetters(items) {
  const kept = new Set(selectedIds().map((s) => `${s.group}/${s.id}`));
  $("#dead-letters tbody").replaceChildren(
    ...items.map((d) => el("tr", { "data-letter": `${d.group}/${d.id}` },
      el("td", {}, el("input", {
        type: "checkbox", "data-group": d.group, "data-id": d.id,
        checked: kept.has(`${d.group}/${d.id}`), onchange: updateButtons,
      })),
      el("td", {}, d.group), el("td", {}, d.id),
      el("td", {}, `${d.topic}[${d.partition}]@${d.offset}`), el("td", {}, d.key || "–"),
      el("td", { class: "error-text", title: d.error }, clip(d.error, 160)),
      el("td", { class: "value", title: d.value || "" }, clip(d.value || "", 160)),
      el("td", { class: "muted" }, d.dead_lettered_at))),
  );
  updateButtons();
}

function updateButtons() {
  const any = selectedIds().length > 0;
  $("#redrive").disabled = !any;
  $("#discard").disabled = !any;
}

async function handle(action) {
  const byGroup = {};
  for (const s of selectedIds()) (byGroup[s.group] ||= []).push(s.id);
  try {
    let done = 0;
    for (const [group, ids] of Object.entries(byGroup)) {
      const result = await call("", `/v1/ops/dead-letters/${group}/${action}`, {
        method: "POST", body: JSON.stringify({ ids }),
      });
      done += result.count;
    }
    $("#dlt-status").textContent = `${action === "redrive" ? "redriven" : "discarded"}: ${done}`;
    document.querySelectorAll("#dead-letters tbody input:checked").forEach((b) => { b.checked = false; });
    await refreshOperator();
  } catch (err) {
    showError(err);
  }
}

async function follow() {
  if (state.tail) state.tail.abort();
  state.tail = new AbortController();
  const tenant = $("#tail-tenant").value.trim();
  const list = $("#events");
  list.replaceChildren();
  try {
    const response = await fetch(`/v1/ops/events${tenant ? "?tenant=" + encodeURIComponent(tenant) : ""}`, {
      headers: { Authorization: `Bearer ${state.token}` }, signal: state.tail.signal,
    });
    if (!response.ok) throw new Error(`events: ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const data = chunk.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
        if (!data) continue;
        const e = JSON.parse(data);
        list.prepend(el("li", { "data-topic": e.topic },
          `${e.topic} ${e.headers.ce_tenantid || ""} ${e.key || ""} ${(e.value || "").slice(0, 160)}`));
        while (list.children.length > 200) list.lastChild.remove();
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") showError(err);
  }
}

// ---- start ----
async function main() {
  state.config = await (await fetch("/console/config.json")).json();
  $("#dev-login").hidden = !state.config.dev_tokens;
  $("#tab-user").addEventListener("click", () => show("user"));
  $("#tab-operator").addEventListener("click", () => show("operator"));
  $("#redrive").addEventListener("click", () => handle("redrive"));
  $("#discard").addEventListener("click", () => handle("discard"));
  $("#tail-start").addEventListener("click", follow);
  $("#dev-login").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = new FormData(e.target);
    try {
      const response = await fetch("/console/dev-token", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({
          tenant: form.get("tenant"), user: form.get("user"),
          roles: form.get("operator") ? ["operator"] : [],
        }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.detail || response.status);
      await signIn(body.token);
    } catch (err) {
      $("#login-error").textContent = String(err.message || err);
    }
  });
  $("#paste-login").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await signIn(new FormData(e.target).get("token").trim());
    } catch (err) {
      $("#login-error").textContent = String(err.message || err);
    }
  });
  const saved = sessionStorage.getItem("mandaact-token");
  if (saved) signIn(saved).catch(() => sessionStorage.removeItem("mandaact-token"));
}

main().catch(showError);
