// The task list: refreshes the rows that changed from the JSON API, and moves focus with j/k
// and arrows. It waits while someone is selecting text in the list.
// Every value goes in through textContent: nothing a user or a model wrote becomes markup.
"use strict";
(function () {
  const table = document.getElementById("tasks");
  if (!table) return;
  const body = table.tBodies[0];
  const REFRESH_MS = 2000;
  let etag = null;

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

  // As web/templating.py's repo_label: a workspace task says which workspace and version.
  function repoLabel(repo) {
    const m = /^workspace:([0-9a-f]+)@(\d+)$/.exec(repo);
    return m ? "workspace " + m[1].slice(0, 8) + ", version " + m[2] : repo;
  }

  // The row's cells as the list draws them: [text, href or class] per column.
  function cells(t) {
    return [
      { text: t.title, href: "/tasks/" + encodeURIComponent(t.id) },
      { text: t.state, className: "state s-" + t.state },
      { text: t.origin.kind },
      { text: repoLabel(t.repo) },
      { text: age(t.created_at), dateTime: t.created_at },
      { text: t.attempts_ended + "/" + t.attempts_requested },
      { text: money(t.cost_usd) },
    ];
  }

  function newRow(t) {
    const tr = document.createElement("tr");
    tr.dataset.id = t.id;
    const link = document.createElement("a");
    link.className = "task-link";
    tr.insertCell().appendChild(link);
    tr.insertCell().appendChild(document.createElement("span"));
    tr.insertCell();
    tr.insertCell().className = "repo";
    tr.insertCell().appendChild(document.createElement("time"));
    tr.insertCell();
    tr.insertCell();
    return tr;
  }

  // Writes only what differs: an unchanged cell keeps its text node, and any selection in it.
  function update(tr, t) {
    const wanted = cells(t);
    Array.from(tr.cells).forEach(function (td, i) {
      const want = wanted[i];
      const node = td.firstElementChild || td;
      if (node.textContent !== want.text) node.textContent = want.text;
      if (want.href && node.getAttribute("href") !== want.href) node.setAttribute("href", want.href);
      if (want.className && node.className !== want.className) node.className = want.className;
      if (want.dateTime && node.dateTime !== want.dateTime) node.dateTime = want.dateTime;
    });
  }

  function selecting() {
    const selection = window.getSelection();
    return selection && !selection.isCollapsed && table.contains(selection.anchorNode);
  }

  async function refresh() {
    if (document.hidden) return;
    let page = null;
    try {
      // The last page's ETag: an unchanged list answers 304, a few hundred bytes.
      const headers = etag ? { "If-None-Match": etag } : {};
      const response = await fetch("/api/tasks?" + table.dataset.query,
        { credentials: "same-origin", cache: "no-store", headers: headers });
      if (response.status === 401) { window.location.assign("/login"); return; }
      if (response.status === 200) page = await response.json();
      // Drawn only when not selecting: a page kept undrawn is fetched whole next time.
      if (page && page.items.length > 0 && !selecting()) {
        draw(page);
        etag = response.headers.get("ETag");
      }
    } catch (err) {
      return; // the server is restarting: the next tick tries again
    }
    table.dataset.refreshes = String(Number(table.dataset.refreshes || 0) + 1);
  }

  function draw(page) {
    const focused = document.activeElement;
    const existing = new Map();
    for (const tr of body.rows) if (tr.dataset.id) existing.set(tr.dataset.id, tr);
    let at = body.firstElementChild;
    for (const t of page.items) {
      const tr = existing.get(t.id) || newRow(t);
      existing.delete(t.id);
      update(tr, t);
      // Move a row only when it is out of place, so focus and text stay put otherwise.
      if (tr !== at) body.insertBefore(tr, at);
      else at = at.nextElementSibling;
    }
    for (const gone of existing.values()) gone.remove();
    for (const stale of body.querySelectorAll("tr.empty")) stale.remove();
    if (focused && focused.isConnected && document.activeElement !== focused) focused.focus();
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

  if (table.dataset.frozen !== "true") window.setInterval(refresh, REFRESH_MS);
})();
