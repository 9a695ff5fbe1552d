// The queue updates itself: /events fires "queue" on every change, then the rows are fetched again.
(function () {
  "use strict";
  const rows = document.getElementById("queue-rows");
  if (!rows) return;
  const live = document.getElementById("live");
  const count = document.getElementById("queue-count");
  let shown = Number(rows.dataset.version || -1);
  let busy = false;
  let wanted = shown; // the newest version announced; a fetch in flight is followed by another if it grew

  async function refresh(version) {
    wanted = Math.max(wanted, version);
    if (busy || version <= shown) return;
    busy = true;
    let ok = false;
    try {
      const resp = await fetch("/queue/rows", { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (resp.status === 401 || resp.redirected) { window.location = "/login?next=/"; return; }
      if (resp.ok) {
        ok = true;
        rows.innerHTML = await resp.text();
        shown = Number(resp.headers.get("x-queue-version") || version);
        rows.dataset.version = String(shown);
        if (count) count.textContent = String(rows.querySelectorAll("tr[data-alert-id]:not(.handled)").length);
      }
    } finally {
      busy = false;
    }
    if (ok && wanted > shown) refresh(wanted);
  }

  const source = new EventSource("/events");
  source.addEventListener("open", () => { if (live) live.textContent = "(live)"; });
  source.addEventListener("error", () => { if (live) live.textContent = "(reconnecting)"; });
  source.addEventListener("queue", (ev) => refresh(Number(ev.data)));
  // Ages go stale while nothing changes: refresh the rows once a minute anyway.
  setInterval(() => { shown = -1; refresh(0); }, 60000);
})();

// The patient page's live ECG: the section is fetched again every data-refresh-ms while the page is on screen
// (a hidden tab reads nothing), and at once when it comes back into view.
(function () {
  "use strict";
  const box = document.getElementById("live-ecg");
  if (!box || !box.dataset.liveUrl) return;
  const period = Math.max(500, Number(box.dataset.refreshMs || 5000));
  let busy = false;

  async function refresh() {
    if (busy || document.visibilityState !== "visible") return;
    busy = true;
    try {
      const resp = await fetch(box.dataset.liveUrl, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (resp.status === 401 || resp.redirected) { window.location = "/login?next=" + window.location.pathname; return; }
      if (resp.ok) box.innerHTML = await resp.text();
    } catch (err) {
      // the network or the console is away for a moment: the next tick tries again
    } finally {
      busy = false;
    }
  }

  setInterval(refresh, period);
  document.addEventListener("visibilitychange", refresh);
})();
