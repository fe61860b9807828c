// The operator page: fills itself from /api/*, only ever through textContent (nothing from
// a run, an event or a dead letter is ever read as HTML).
"use strict";

const REFRESH_MS = 2000;

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined || text === "" ? "-" : String(text);
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function when(iso) {
  if (!iso) return "-";
  const d = typeof iso === "number" ? new Date(iso * 1000) : new Date(iso);
  return d.toISOString().replace(/\.\d+Z$/, "Z");
}

function ago(iso, now) {
  if (!iso) return "-";
  const seconds = Math.max(0, Math.round(now - new Date(iso).getTime() / 1000));
  if (seconds < 60) return seconds + "s ago";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m" + String(seconds % 60).padStart(2, "0") + "s ago";
  return Math.floor(seconds / 3600) + "h" + String(Math.floor(seconds / 60) % 60).padStart(2, "0") + "m ago";
}

function notice(text, isError) {
  const p = document.getElementById("notice");
  p.textContent = text;
  p.className = isError ? "error" : "";
  p.hidden = false;
}

async function api(path, body) {
  const init = body === undefined
    ? { credentials: "same-origin" }
    : {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      };
  const response = await fetch(path, init);
  if (response.status === 401) {
    window.location.assign("/");
    throw new Error("signed out");
  }
  const payload = await response.json();
  if (!response.ok && payload.error) throw new Error(payload.error);
  return payload;
}

function fill(table, rows, build) {
  const tbody = document.querySelector("#" + table + " tbody");
  tbody.replaceChildren(...rows.map(build));
  document.getElementById(table + "-empty").hidden = rows.length > 0;
  document.getElementById(table + "-count").textContent = "(" + rows.length + ")";
}

function runRow(now) {
  return (run) => {
    const tr = document.createElement("tr");
    tr.dataset.commandId = run.command_id;
    cell(tr, run.command_id, "id");
    cell(tr, run.command_type);
    cell(tr, run.connection);
    cell(tr, run.status);
    cell(tr, ago(run.status_since, now));
    cell(tr, run.estimated.next_poll_at ? when(run.estimated.next_poll_at) : "-");
    cell(tr, run.estimated.polls);
    cell(tr, run.stuck ? "stuck" : "", run.stuck ? "stuck" : "");
    cell(tr, Object.entries(run.vendor_ref).map(([k, v]) => k + "=" + v).join(", "), "ref");
    const actions = cell(tr, "");
    actions.textContent = "";
    if (run.can_cancel) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.action = "cancel";
      button.textContent = "Cancel run";
      button.addEventListener("click", () => cancel(run.command_id, button));
      actions.appendChild(button);
    }
    return tr;
  };
}

function endedRow(ended) {
  const tr = document.createElement("tr");
  tr.dataset.commandId = ended.command_id;
  tr.dataset.kind = ended.kind;
  cell(tr, when(ended.at));
  cell(tr, ended.command_id, "id");
  cell(tr, ended.command_type);
  cell(tr, ended.connection);
  cell(tr, ended.kind, "kind-" + ended.kind);
  cell(tr, ended.error_kind ? ended.error_kind + ": " + ended.error_message : ended.status, "text");
  return tr;
}

function letterRow(letter) {
  const tr = document.createElement("tr");
  tr.dataset.commandId = letter.command_id || "";
  cell(tr, letter.position);
  cell(tr, letter.command_id || "<no id>", "id");
  cell(tr, letter.command_type);
  cell(tr, letter.kind);
  cell(tr, letter.attempts);
  cell(tr, letter.dead_at ? when(letter.dead_at) : "-");
  cell(tr, letter.queue);
  cell(tr, letter.reason, "text");
  const actions = cell(tr, "");
  actions.textContent = "";
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.action = "replay";
  button.textContent = "Replay";
  const id = letter.command_id || letter.message_id;
  if (!letter.replayable || !id) {
    button.disabled = true;
    button.title = letter.why_not || "this letter has no id to select it by";
  } else {
    button.addEventListener("click", () => replay(id, button));
  }
  actions.appendChild(button);
  return tr;
}

async function refresh() {
  try {
    const [runs, recent] = await Promise.all([api("/api/runs"), api("/api/recent")]);
    fill("runs", runs.runs, runRow(runs.now));
    fill("recent", recent.ended, endedRow);
    document.getElementById("updated").textContent = "updated " + when(runs.now);
  } catch (error) {
    document.getElementById("updated").textContent = "not updated: " + error.message;
  }
}

async function refreshLetters() {
  const button = document.getElementById("letters-refresh");
  button.disabled = true;
  try {
    const payload = await api("/api/dead-letters");
    fill("letters", payload.letters, letterRow);
  } catch (error) {
    notice("Dead letters not read: " + error.message, true);
  } finally {
    button.disabled = false;
  }
}

async function replay(id, button) {
  if (!window.confirm("Replay dead letter " + id + " as a new command?")) return;
  button.disabled = true;
  try {
    const payload = await api("/api/replay", { id: id });
    notice(payload.message, !payload.replayed);
  } catch (error) {
    notice("Replay failed: " + error.message, true);
  }
  await Promise.all([refreshLetters(), refresh()]);
}

async function cancel(commandId, button) {
  if (!window.confirm("Ask the vendor to stop the run of " + commandId + "?")) return;
  button.disabled = true;
  try {
    const payload = await api("/api/cancel", { command_id: commandId });
    notice(payload.message, false);
  } catch (error) {
    notice("Cancel not sent: " + error.message, true);
    button.disabled = false;
  }
  await refresh();
}

document.getElementById("letters-refresh").addEventListener("click", refreshLetters);
refresh();
refreshLetters();
setInterval(refresh, REFRESH_MS);
