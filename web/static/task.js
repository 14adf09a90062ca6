// A task's trajectory, live: the task's events from the browser's live connection, each drawn
// into its attempt's column. Every value goes in through textContent, never as markup.
"use strict";
(function () {
  const article = document.getElementById("task");
  if (!article) return;
  const taskId = article.dataset.id;
  const endedAtLoad = article.dataset.ended === "true";
  const taskLog = document.getElementById("task-events");
  // Attempt and call id -> the call's <details>, where its output folds in: two attempts
  // often number their calls alike, and each output belongs in its own attempt's column.
  const toolCalls = new Map();
  const KINDS = {
    "task.created": "Task created", "task.reviewing": "Reviewing", "task.review": "Review",
    "task.finished": "Task ended", "task.reported": "Reported", "attempt.state": "Attempt",
    "model.message": "Model", "tool.call": "Tool call", "tool.output": "Output",
    "file.change": "File changed", "tests.finished": "Tests", "context.compacted": "Context",
    "network.connection": "Network", "message": "Message",
    "person.message": "Message from a person", "person.delivered": "Read by the agent",
  };

  function kindInWords(kind) {
    return KINDS[kind] || kind.replace(/[._]/g, " ");
  }

  function callKey(event, id) {
    return (event.attempt_id || "task") + "\n" + id;
  }
  let lastSeq = 0;

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function json(value) {
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }

  function column(event) {
    if (!event.attempt_id) return null;
    return article.querySelector('[data-attempt-id="' + CSS.escape(event.attempt_id) + '"]');
  }

  function describe(event, li) {
    const d = event.data || {};
    switch (event.kind) {
      case "model.message": {
        li.appendChild(el("pre", d.text || ""));
        for (const call of d.tool_calls || []) li.appendChild(el("div", "→ " + call.name, "hint"));
        return;
      }
      case "tool.call": {
        const details = el("details");
        details.appendChild(el("summary", d.name || "tool"));
        details.appendChild(el("pre", json(d.arguments)));
        li.appendChild(details);
        if (d.id) toolCalls.set(callKey(event, d.id), details);
        return;
      }
      case "tool.output": {
        const folded = d.id ? toolCalls.get(callKey(event, d.id)) : null;
        const body = el("pre", d.output || "");
        if (folded) {
          folded.querySelector("summary").textContent += d.ok === false ? " (failed)" : " ✓";
          folded.appendChild(el("div", "output", "kind"));
          folded.appendChild(body);
          li.remove();
          return;
        }
        const details = el("details");
        details.appendChild(el("summary", (d.name || "tool") + " output"));
        details.appendChild(body);
        li.appendChild(details);
        return;
      }
      case "person.message":
        li.appendChild(el("span", (d.by || "someone") + (d.attempt ? " to attempt " + d.attempt : "") + ":", "hint"));
        li.appendChild(el("pre", d.text || ""));
        return;
      case "person.delivered":
        li.appendChild(el("span", "message " + d.seq + " before step " + d.step, "hint"));
        return;
      case "task.created":
        li.appendChild(el("span", d.attempts === 1 ? "one attempt" : d.attempts + " attempts"));
        return;
      case "file.change":
        li.appendChild(el("code", (d.status || "changed") + " " + (d.path || "")));
        return;
      case "network.connection":
        li.appendChild(el("code", (d.allowed ? "allowed " : "refused ") + d.host + ":" + d.port));
        li.appendChild(el("span", " — " + d.reason, "hint"));
        return;
      case "attempt.state":
        li.appendChild(el("span", d.state + (d.reason ? " — " + d.reason : "")));
        return;
      case "task.finished":
        li.appendChild(el("span", d.state + (d.reason ? " — " + d.reason : "")));
        return;
      case "task.review": {
        const who = d.by === "model" ? "the model's pick" : "the ranking's pick";
        const pick = "picked attempt " + d.picked.attempt + " (" + who + ")";
        li.appendChild(el("span", pick + " — " + d.reason));
        return;
      }
      default:
        li.appendChild(el("pre", json(d)));
    }
  }

  function setState(node, state) {
    if (!node || !state) return;
    node.textContent = state;
    node.className = "state s-" + state;
  }

  function draw(event) {
    if (event.seq <= lastSeq) return; // a reconnect replays nothing twice
    lastSeq = event.seq;
    const col = column(event);
    const list = col ? col.querySelector(".trajectory") : taskLog;
    const li = el("li");
    li.dataset.seq = String(event.seq);
    li.dataset.kind = event.kind;
    li.appendChild(el("span", kindInWords(event.kind), "kind"));
    list.appendChild(li);
    describe(event, li);
    if (li.isConnected) list.scrollTop = list.scrollHeight;
    if (event.kind === "attempt.state" && col) {
      setState(col.querySelector('[data-role="state"]'), event.data.state);
    }
    if (event.kind === "attempt.state" && event.data.state === "provisioning") {
      setState(document.getElementById("task-state"), "running");
    }
    if (event.kind === "task.finished") {
      setState(document.getElementById("task-state"), event.data.state);
    }
  }

  const LIVE = ["queued", "provisioning", "running", "waiting_model", "verifying"];

  // The stream ends with the task; after a cancel, running attempts stop a moment later.
  // Follow their states from the task's JSON until each has ended.
  async function settleAttempts() {
    let task;
    try {
      const response = await fetch("/api/tasks/" + encodeURIComponent(taskId));
      if (!response.ok) return;
      task = await response.json();
    } catch (err) {
      task = null;
    }
    let live = task === null;
    for (const attempt of task ? task.attempts : []) {
      const col = article.querySelector('[data-attempt-id="' + CSS.escape(attempt.id) + '"]');
      if (col) setState(col.querySelector('[data-role="state"]'), attempt.state);
      live = live || LIVE.includes(attempt.state);
    }
    if (live) window.setTimeout(settleAttempts, 1000);
  }

  // The browser's shared live connection (live.js); the page draws each of the task's events.
  let stop = null;
  function onEvent(event) {
    draw(event);
    window.dispatchEvent(new CustomEvent("autan:event", { detail: event }));
    if (event.kind === "task.finished") {
      stop(); // the task's events end here
      article.dataset.ended = "true";
      // Results (diffs, tests, cost) are drawn by the server: fetch them once.
      if (!endedAtLoad) window.setTimeout(function () { window.location.reload(); }, 800);
      else settleAttempts();
    }
  }
  stop = window.AutanLive.follow(taskId, onEvent, function () {
    taskLog.appendChild(el("li", "stream closed"));
  });
})();
