// The task list: refreshes its rows from the JSON API, and moves focus with j/k and arrows.
// Every value goes in through textContent: nothing a user or a model wrote becomes markup.
"use strict";
(function () {
  const table = document.getElementById("tasks");
  if (!table) return;
  const body = table.tBodies[0];
  const REFRESH_MS = 2000;

  function age(iso) {
    const s = Math.max(0, Math.floor((Date.now() - Date.parse(iso)) / 1000));
    if (s >= 86400) return Math.floor(s / 86400) + "d";
    if (s >= 3600) return Math.floor(s / 3600) + "h";
    if (s >= 60) return Math.floor(s / 60) + "m";
    return s + "s";
  }

  function money(v) {
    return v > 0 && v < 0.01 ? "$" + v.toFixed(4) : "$" + v.toFixed(2);
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    if (className) td.className = className;
    td.textContent = text;
    return td;
  }

  function row(t) {
    const tr = document.createElement("tr");
    tr.dataset.id = t.id;
    const link = document.createElement("a");
    link.className = "task-link";
    link.href = "/tasks/" + encodeURIComponent(t.id);
    link.textContent = t.title;
    tr.insertCell().appendChild(link);
    const state = document.createElement("span");
    state.className = "state s-" + t.state;
    state.textContent = t.state;
    tr.insertCell().appendChild(state);
    cell(tr, t.origin.kind);
    cell(tr, t.repo, "repo");
    const time = document.createElement("time");
    time.dateTime = t.created_at;
    time.textContent = age(t.created_at);
    tr.insertCell().appendChild(time);
    cell(tr, t.attempts_ended + "/" + t.attempts_requested);
    cell(tr, money(t.cost_usd));
    return tr;
  }

  async function refresh() {
    if (document.hidden) return;
    const params = new URLSearchParams({ limit: table.dataset.limit });
    for (const name of ["state", "origin", "repo", "cursor"]) {
      if (table.dataset[name]) params.set(name, table.dataset[name]);
    }
    let page;
    try {
      const response = await fetch("/api/tasks?" + params, { credentials: "same-origin" });
      if (response.status === 401) { window.location.assign("/login"); return; }
      if (!response.ok) return;
      page = await response.json();
    } catch (err) {
      return; // the server is restarting: the next tick tries again
    }
    if (page.items.length === 0) return; // keep the server's "no tasks" row
    const focusedId = document.activeElement && document.activeElement.closest("tr")
      ? document.activeElement.closest("tr").dataset.id : null;
    const rows = page.items.map(row);
    body.replaceChildren(...rows);
    if (focusedId) {
      const again = body.querySelector('tr[data-id="' + CSS.escape(focusedId) + '"] a');
      if (again) again.focus();
    }
  }

  function move(step) {
    const links = Array.from(body.querySelectorAll("a.task-link"));
    if (links.length === 0) return;
    const at = links.indexOf(document.activeElement);
    const next = at < 0 ? (step > 0 ? 0 : links.length - 1)
      : Math.min(links.length - 1, Math.max(0, at + step));
    links[next].focus();
  }

  document.addEventListener("keydown", function (event) {
    const target = event.target;
    if (target.matches && target.matches("input, select, textarea")) return;
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    // Arrows move between tasks only inside the list, so they still scroll the page elsewhere.
    const inList = table.contains(document.activeElement);
    if (event.key === "j" || (inList && event.key === "ArrowDown")) { move(1); event.preventDefault(); }
    if (event.key === "k" || (inList && event.key === "ArrowUp")) { move(-1); event.preventDefault(); }
  });

  window.setInterval(refresh, REFRESH_MS);
})();
