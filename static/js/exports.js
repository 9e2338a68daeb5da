// The export tray: live progress over a WebSocket, polling while the socket is down.
// Percentages shown are only ever the server's; nothing is interpolated here.
(function () {
  "use strict";

  const tray = document.getElementById("export-tray");
  if (!tray) return;

  const ACTIVE = new Set(["pending", "processing"]);
  const PING_TIMEOUT_MS = 50000; // the server pings every 20 s
  const POLL_INTERVAL_MS = 2000;
  const MAX_BACKOFF_MS = 30000;

  const list = tray.querySelector('[data-role="jobs"]');
  const empty = tray.querySelector('[data-role="empty"]');
  const signin = tray.querySelector('[data-role="signin"]');
  const connection = tray.querySelector('[data-role="connection"]');
  const summary = tray.querySelector('[data-role="summary"]');
  const toggle = tray.querySelector('[data-role="toggle"]');
  const trayBody = tray.querySelector(".tray-body");
  const notify = tray.querySelector('[data-role="notify"]');
  const notices = document.getElementById("export-notices");
  // The bar as templates/exports/bar.html draws it, blank and with every control: each new bar is a copy.
  const blankBar = document.getElementById("export-bar-template").content.querySelector(".export-bar");
  const baseTitle = document.title;
  let unseenEnd = "";
  const statusUrlTemplate = tray.dataset.statusUrl;
  const jobs = new Map(); // id -> job, one bar per job
  const estimates = new Map(); // id -> {seconds, at}: the worker's time-left estimate and when it arrived
  let socket = null;
  let cursor = null;
  let attempts = 0;
  let reconnectTimer = null;
  let pollTimer = null;
  let watchdog = null;
  let signedOut = false;

  function statusUrl(id) {
    return window.exportsHttp.urlFor(statusUrlTemplate, id);
  }

  // The estimate is the worker's (smoothed over the job's whole history, counted down by the server to the
  // moment it answered): the page only counts it down between answers, so every page shows the same.
  function noteEstimate(job) {
    if (job.status !== "processing" || job.cancel_requested || job.remaining_seconds == null) {
      estimates.delete(job.id);
    } else {
      estimates.set(job.id, { seconds: job.remaining_seconds, at: performance.now() });
    }
  }

  function etaFor(id) {
    const estimate = estimates.get(id);
    if (!estimate) return "";
    const seconds = estimate.seconds - (performance.now() - estimate.at) / 1000;
    if (seconds < 60) return "less than a minute left";
    if (seconds < 90) return "about a minute left";
    return "about " + Math.round(seconds / 60) + " min left";
  }

  function refreshEstimates() {
    for (const id of estimates.keys()) {
      const bar = list.querySelector('[data-job-id="' + id + '"] [data-role="eta"]');
      if (bar) bar.textContent = etaFor(id);
    }
  }

  // One of the bar's controls (a link or a button) as bar.html draws it; the links get the job's video.
  function control(name, job) {
    const element = blankBar.querySelector('[data-control="' + name + '"]').cloneNode(true);
    if (name === "download") element.href = job.working_video.download_url;
    if (name === "open") element.href = job.working_video.url;
    return element;
  }

  // Fill a bar, drawn by the server or copied from the template, with the job's JSON: what the server would draw.
  function fill(bar, job) {
    bar.className = "export-bar status-" + job.status;
    bar.dataset.jobId = job.id;
    bar.dataset.status = job.status;
    bar.dataset.progress = String(job.progress);
    bar.querySelector(".bar-kind").textContent = job.kind_label;
    bar.querySelector(".bar-project").textContent = job.project_name;
    bar.querySelector('[data-role="percent"]').textContent = job.progress + " %";
    bar.querySelector('[data-role="fill"]').style.width = job.progress + "%";
    bar.querySelector(".bar-track").setAttribute("aria-valuenow", String(job.progress));
    bar.querySelector('[data-role="message"]').textContent = job.display_message;
    bar.querySelector('[data-role="actions"]').replaceChildren(...job.controls.map((name) => control(name, job)));
  }

  // A new bar for the job, not in the tray yet.
  function draw(job) {
    const bar = blankBar.cloneNode(true);
    fill(bar, job);
    return bar;
  }

  function render(job) {
    let bar = list.querySelector('[data-job-id="' + job.id + '"]');
    if (bar) {
      fill(bar, job);
    } else {
      bar = draw(job);
      list.appendChild(bar);
    }
    noteEstimate(job);
    bar.querySelector('[data-role="eta"]').textContent = etaFor(job.id);
  }

  function update(job) {
    const known = jobs.get(job.id);
    // Never step back to an older state of the same job (a late poll answer after a socket message).
    if (known && known.updated_at > job.updated_at) return;
    jobs.set(job.id, job);
    render(job);
    refreshEmpty();
    document.dispatchEvent(new CustomEvent("export:changed", { detail: job })); // the history table follows
    if (known && ACTIVE.has(known.status) && !ACTIVE.has(job.status)) finished(job);
  }

  // An export this page saw running has ended: tell the page (the project page adds the video), the user
  // wherever they look (a notice here; the tab title and, if they opted in, a notification when hidden).
  function finished(job) {
    document.dispatchEvent(new CustomEvent("export:finished", { detail: job }));
    if (job.status === "cancelled") return;
    const what = job.kind_label + " export of " + job.project_name;
    const text = job.status === "complete" ? what + " is ready." : what + " failed.";
    showNotice(job, text);
    if (document.hidden) {
      unseenEnd = job.status === "complete" ? "✓ Done" : "✕ Failed";
      refreshTitle();
      if (window.Notification && Notification.permission === "granted" && notifyWanted()) {
        const body = job.status === "complete" ? "Open the tab to download it." : job.display_message;
        new Notification(text, { body: body });
      }
    }
  }

  function showNotice(job, text) {
    const notice = document.createElement("div");
    notice.className = "export-notice status-" + job.status;
    notice.setAttribute("role", "status");
    notice.dataset.jobId = job.id;
    const words = document.createElement("span");
    words.textContent = text;
    notice.appendChild(words);
    if (job.controls.includes("download")) notice.appendChild(control("download", job));
    const close = control("dismiss", job); // drawn as the bar's Dismiss, but it closes the notice only
    close.dataset.action = "close-notice";
    delete close.dataset.control;
    close.addEventListener("click", () => notice.remove());
    notice.appendChild(close);
    notices.appendChild(notice);
  }

  // The tab's title: the running percents, or a mark for an export that ended while the tab was hidden.
  function refreshTitle() {
    const running = Array.from(jobs.values()).filter((job) => ACTIVE.has(job.status));
    let prefix = unseenEnd;
    if (!prefix && running.length) prefix = running.map((job) => job.progress + " %").join(", ");
    document.title = prefix ? prefix + " · " + baseTitle : baseTitle;
  }

  function notifyWanted() {
    return document.cookie.split(/;\s*/).includes("export_notify=yes");
  }

  function refreshNotify() {
    notify.hidden = !window.Notification || Notification.permission === "denied" ||
      (notifyWanted() && Notification.permission === "granted");
  }

  // Asked only when the user opts in from the tray, never on page load.
  function askToNotify() {
    Notification.requestPermission().then((permission) => {
      if (permission === "granted") {
        document.cookie = "export_notify=yes; path=/; max-age=31536000; SameSite=Lax";
      }
      refreshNotify();
    });
  }

  function remove(id) {
    jobs.delete(id);
    estimates.delete(id);
    const bar = list.querySelector('[data-job-id="' + id + '"]');
    if (bar) bar.remove();
    refreshEmpty();
  }

  function refreshEmpty() {
    empty.hidden = jobs.size > 0;
    refreshSummary();
  }

  // The header line, which stays when the tray is collapsed: how many run, and their percents.
  function refreshSummary() {
    const running = Array.from(jobs.values()).filter((job) => ACTIVE.has(job.status));
    let text = "";
    if (running.length) {
      const percents = running.slice(0, 3).map((job) => job.progress + "\u00a0%"); // never split from its number
      text = running.length + " running · " + percents.join(", ") + (running.length > 3 ? "…" : "");
    } else if (jobs.size) {
      text = "none running";
    }
    summary.textContent = text;
    refreshTitle();
  }

  function isCollapsed() {
    return getComputedStyle(trayBody).display === "none";
  }

  function toggleTray() {
    tray.dataset.state = isCollapsed() ? "open" : "collapsed";
    document.cookie = "export_tray=" + tray.dataset.state + "; path=/; max-age=31536000; SameSite=Lax";
    refreshToggle();
  }

  function refreshToggle() {
    toggle.setAttribute("aria-expanded", String(!isCollapsed()));
  }

  function applySnapshot(snapshotJobs) {
    const ids = new Set(snapshotJobs.map((job) => job.id));
    for (const id of Array.from(jobs.keys())) {
      if (!ids.has(id)) remove(id); // dismissed or deleted elsewhere
    }
    snapshotJobs.forEach(update);
  }

  function showSignedOut() {
    signedOut = true;
    signin.hidden = false;
    connection.textContent = "";
    stopPolling();
    if (socket) socket.close();
  }

  function setConnection(text) {
    connection.textContent = text;
  }

  // Polling fallback: while the socket is down, ask the status endpoint (which reconciles) for each active job.
  function startPolling() {
    if (pollTimer || signedOut) return;
    pollTimer = window.setInterval(pollOnce, POLL_INTERVAL_MS);
    pollOnce();
  }

  function stopPolling() {
    if (pollTimer) window.clearInterval(pollTimer);
    pollTimer = null;
  }

  function pollOnce() {
    for (const job of jobs.values()) {
      if (!ACTIVE.has(job.status)) continue;
      fetch(statusUrl(job.id), { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((response) => {
          if (response.status === 401 || response.status === 403) {
            showSignedOut();
            return null;
          }
          return response.ok ? response.json() : null;
        })
        .then((body) => {
          if (body && body.job) update(body.job);
        })
        .catch(() => {});
    }
  }

  function armWatchdog() {
    if (watchdog) window.clearTimeout(watchdog);
    watchdog = window.setTimeout(() => {
      // No message, not even a ping: the socket is half-open. Treat it as dead.
      if (socket) socket.close();
    }, PING_TIMEOUT_MS);
  }

  function scheduleReconnect() {
    if (reconnectTimer || signedOut) return;
    const ceiling = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** attempts);
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // exponential backoff with jitter
    attempts += 1;
    reconnectTimer = window.setTimeout(() => {
      reconnectTimer = null;
      connect();
    }, delay);
  }

  function connect() {
    if (signedOut || (socket && socket.readyState <= WebSocket.OPEN)) return;
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    const query = cursor ? "?cursor=" + encodeURIComponent(cursor) : "";
    socket = new WebSocket(scheme + window.location.host + tray.dataset.socketPath + query);
    socket.addEventListener("open", () => {
      attempts = 0;
      armWatchdog();
    });
    socket.addEventListener("message", (event) => {
      armWatchdog();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch (error) {
        return;
      }
      if (message.type === "snapshot") {
        cursor = message.cursor;
        applySnapshot(message.jobs);
        stopPolling();
        setConnection("live");
      } else if (message.type === "job") {
        update(message.job);
      }
    });
    socket.addEventListener("close", (event) => {
      if (watchdog) window.clearTimeout(watchdog);
      socket = null;
      if (event.code === 4401) {
        showSignedOut();
        return;
      }
      setConnection("reconnecting…");
      startPolling();
      scheduleReconnect();
    });
  }

  function post(url) {
    return window.exportsHttp.postJson(url).then((result) => {
      if (result.status === 401) showSignedOut();
      return result;
    });
  }

  list.addEventListener("click", (event) => {
    const target = event.target.closest("[data-action]");
    if (!target) return;
    const bar = target.closest("[data-job-id]");
    const id = bar.dataset.jobId;
    const base = statusUrl(id);
    if (target.dataset.action === "cancel") {
      const job = jobs.get(id);
      const what = job ? job.kind_label + " export of " + job.project_name : "export";
      if (!window.confirm("Cancel this " + what + "? What it rendered so far is discarded.")) return;
      target.replaceWith(control("cancelling", job));
      post(base + "cancel/").then((result) => result.body.job && update(result.body.job));
    } else if (target.dataset.action === "retry") {
      target.disabled = true;
      post(base + "retry/").then((result) => {
        // 201: the new job; 409: the retry it already has. Either way this one is retried now.
        if (result.body.job && (result.status === 201 || result.status === 409)) {
          const original = jobs.get(id);
          if (original) {
            const controls = original.controls.filter((name) => name !== "retry");
            update(Object.assign({}, original, { retry_id: result.body.job.id, controls: controls }));
          }
          update(result.body.job);
        } else {
          target.disabled = false;
        }
      });
    } else if (target.dataset.action === "dismiss") {
      post(base + "dismiss/").then((result) => result.status === 200 && remove(id));
    }
  });

  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && unseenEnd) {
      unseenEnd = "";
      refreshTitle();
    }
    // Timers are throttled in background tabs: catch up at once when the tab is seen again.
    if (document.visibilityState !== "visible" || signedOut) return;
    if (!socket) {
      if (reconnectTimer) window.clearTimeout(reconnectTimer);
      reconnectTimer = null;
      connect();
      pollOnce();
    }
  });

  // Start from what the server rendered into the page (the same state as the bars), then go live.
  const initial = document.getElementById("export-tray-jobs");
  if (initial) JSON.parse(initial.textContent).forEach(update);

  window.setInterval(refreshEstimates, 1000);
  toggle.addEventListener("click", toggleTray);
  notify.addEventListener("click", askToNotify);
  refreshNotify();
  refreshToggle();
  refreshSummary();

  window.exportTray = {
    add: update, // the export forms hand over the job they started
    jobs: jobs,
    draw: draw, // the bar a job's JSON makes, which must be the one the server draws for it (a browser test checks)
  };
  connect();
})();
