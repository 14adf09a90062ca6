// Live events for a page: AutanLive.follow(taskId, onEvent, onClosed) returns a stop function.
// Every tab shares the browser's one connection through live-worker.js (a SharedWorker), so
// twenty open tasks hold one of the six connections a browser allows a host, not twenty.
// Where SharedWorker is missing, a page holds a stream of its own.
"use strict";
window.AutanLive = (function () {
  const handlers = new Map(); // task id -> { onEvent, onClosed }
  let port = null;

  if (typeof SharedWorker === "function") {
    const worker = new SharedWorker("/static/live-worker.js", { name: "autan-live" });
    port = worker.port;
    port.onmessage = function (message) {
      const m = message.data;
      if (m.type === "event") {
        const h = handlers.get(m.event.task_id);
        if (h) h.onEvent(m.event);
      }
      if (m.type === "closed") for (const h of handlers.values()) h.onClosed();
    };
    port.start();
    // A closing tab unsubscribes: the worker drops its tasks, and the connection follows the rest.
    window.addEventListener("pagehide", function () { port.postMessage({ type: "bye" }); });
  }

  function ownStream(taskId, onEvent, onClosed) {
    const source = new EventSource("/api/live?task=" + encodeURIComponent(taskId));
    source.onmessage = function (frame) { onEvent(JSON.parse(frame.data)); };
    source.onerror = function () { if (source.readyState === EventSource.CLOSED) onClosed(); };
    return function () { source.close(); };
  }

  function follow(taskId, onEvent, onClosed) {
    if (port === null) return ownStream(taskId, onEvent, onClosed);
    handlers.set(taskId, { onEvent: onEvent, onClosed: onClosed });
    port.postMessage({ type: "follow", task: taskId });
    return function () {
      handlers.delete(taskId);
      port.postMessage({ type: "stop", task: taskId });
    };
  }

  return { follow: follow };
})();
