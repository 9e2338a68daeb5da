// The history table follows the tray: a row whose job changed is drawn again by the server
// (templates/exports/history_row.html, the row the page was rendered with) and swapped in; on the first
// page, an export started since the page loaded appears at the top.
(function () {
  "use strict";

  const table = document.querySelector("table.history");
  if (!table) return;
  const body = table.querySelector("tbody");
  const rowUrlTemplate = table.dataset.rowUrl;
  const fetching = new Map(); // job id -> true while its row is on its way, "again" if it changed meanwhile

  function rowOf(jobId) {
    return body.querySelector('tr[data-job-id="' + jobId + '"]');
  }

  // A job the first page does not show yet belongs at its top only if it started after the newest row.
  function belongsOnTop(job) {
    const newest = body.querySelector("tr");
    return "newest" in table.dataset && (!newest || Date.parse(job.created_at) > Date.parse(newest.dataset.createdAt));
  }

  function redraw(jobId) {
    if (fetching.has(jobId)) {
      fetching.set(jobId, "again");
      return;
    }
    fetching.set(jobId, true);
    window.exportsHttp
      .fetchFragment(window.exportsHttp.urlFor(rowUrlTemplate, jobId), "tbody")
      .then((fresh) => {
        if (fresh) place(jobId, fresh);
      })
      .catch(() => {}) // the next change tries again
      .finally(() => {
        const again = fetching.get(jobId) === "again";
        fetching.delete(jobId);
        if (again) redraw(jobId);
      });
  }

  function place(jobId, fresh) {
    const row = rowOf(jobId);
    if (row) {
      row.replaceWith(fresh);
    } else {
      body.prepend(fresh);
      table.closest(".table-scroll").hidden = false;
      const none = document.querySelector('[data-role="no-exports"]');
      if (none) none.hidden = true;
    }
  }

  document.addEventListener("export:changed", (event) => {
    const job = event.detail;
    const row = rowOf(job.id);
    if (row ? Date.parse(job.updated_at) > Date.parse(row.dataset.updatedAt) : belongsOnTop(job)) redraw(job.id);
  });
})();
