// The browser's one live connection, shared by every tab of the dashboard (a SharedWorker).
// Tabs say which tasks they show; this holds one EventSource on /api/live for all of them,
// hands each event to the tabs that show its task, and keeps each task's events so that a
// tab opened later on a followed task gets them without a second connection.
"use strict";
const ports = new Map(); // a tab's port -> the task ids it follows
const tasks = new Map(); // task id -> { seq: the last event's seq, events: every event so far }
let source = null;
let following = ""; // the task ids `source` follows, sorted and joined
let pending = null;

function wanted() {
  const ids = new Set();
  for (const followed of ports.values()) for (const id of followed) ids.add(id);
  return Array.from(ids).sort();
}

function onFrame(frame) {
  const event = JSON.parse(frame.data);
  const task = tasks.get(event.task_id);
  if (!task || event.seq <= task.seq) return; // a reconnect replays nothing twice
  task.seq = event.seq;
  task.events.push(event);
  for (const [port, followed] of ports) {
    if (followed.has(event.task_id)) port.postMessage({ type: "event", event: event });
  }
}

// One connection for the tasks the tabs follow now: a new one only when that set changed.
function connect() {
  pending = null;
  const ids = wanted();
  if (ids.join(",") === following && source) return;
  if (source) source.close();
  source = null;
  following = ids.join(",");
  if (ids.length === 0) return;
  const query = ids.map(function (id) {
    return "task=" + encodeURIComponent(id + ":" + tasks.get(id).seq);
  }).join("&");
  const opened = new EventSource("/api/live?" + query);
  opened.onmessage = onFrame;
  opened.onerror = function () {
    if (opened.readyState !== EventSource.CLOSED || source !== opened) return;
    // Refused (signed out, a revoked token): the tabs say so; a tab that follows anew retries.
    source = null;
    following = "";
    for (const port of ports.keys()) port.postMessage({ type: "closed" });
  };
  source = opened;
}

function soon() {
  // Tabs opening together follow their tasks within moments: one new connection for them all.
  if (pending === null) pending = setTimeout(connect, 50);
}

function follow(port, id) {
  ports.get(port).add(id);
  const task = tasks.get(id);
  if (task) for (const event of task.events) port.postMessage({ type: "event", event: event });
  else tasks.set(id, { seq: 0, events: [] });
  soon();
}

function forget(port, id) {
  const followed = ports.get(port);
  if (followed) followed.delete(id);
  if (!wanted().includes(id)) tasks.delete(id);
  soon();
}

self.onconnect = function (connection) {
  const port = connection.ports[0];
  ports.set(port, new Set());
  port.onmessage = function (message) {
    const m = message.data;
    if (m.type === "follow") follow(port, m.task);
    if (m.type === "stop") forget(port, m.task);
    if (m.type === "bye") {
      const followed = Array.from(ports.get(port) || []);
      ports.delete(port);
      for (const id of followed) forget(port, id);
    }
  };
  port.start();
};
