// The project page's export forms: build each kind's params, POST them, show field errors inline.
(function () {
  "use strict";

  const section = document.getElementById("export-forms");
  if (!section) return;

  function number(input) {
    return input.value === "" ? null : Number(input.value);
  }

  // Each builder returns the params and a function mapping an error's field path to where it is shown.
  const builders = {
    multi_clip(form) {
      const rows = Array.from(form.querySelectorAll("tr[data-clip-id]")).filter(
        (row) => row.querySelector('[name="include"]').checked
      );
      const params = {
        clips: rows.map((row) => ({
          clip_id: Number(row.dataset.clipId),
          start: number(row.querySelector('[name="start"]')),
          end: number(row.querySelector('[name="end"]')),
        })),
      };
      const height = form.querySelector('[name="height"]').value;
      if (height) params.height = Number(height);
      return {
        params: params,
        place(path) {
          const parts = path.split(".");
          if (parts[0] === "clips" && parts.length > 1 && rows[Number(parts[1])]) {
            const row = rows[Number(parts[1])];
            const input = row.querySelector('[name="' + (parts[2] === "start" ? "start" : "end") + '"]');
            return input.nextElementSibling;
          }
          return form.querySelector('[data-field="' + parts[0] + '"]');
        },
      };
    },
    framing_ai(form) {
      const keyframes = form
        .querySelector('[name="keyframes"]')
        .value.split(",")
        .map((pair) => pair.trim())
        .filter(Boolean)
        .map((pair) => {
          const [t, x] = pair.split(":");
          return { t: Number(t), x: Number(x) };
        });
      return {
        params: {
          clip_id: Number(form.querySelector('[name="clip_id"]').value),
          aspect: form.querySelector('[name="aspect"]').value,
          height: number(form.querySelector('[name="height"]')),
          keyframes: keyframes,
        },
        place(path) {
          return form.querySelector('[data-field="' + path.split(".")[0] + '"]');
        },
      };
    },
    overlay(form) {
      const rows = Array.from(form.querySelectorAll(".highlight-row"));
      return {
        params: {
          clip_id: Number(form.querySelector('[name="clip_id"]').value),
          highlights: rows.map((row) => ({
            start: number(row.querySelector('[name="start"]')),
            end: number(row.querySelector('[name="end"]')),
            x: number(row.querySelector('[name="x"]')),
            y: number(row.querySelector('[name="y"]')),
            radius: number(row.querySelector('[name="radius"]')),
            color: row.querySelector('[name="color"]').value.toUpperCase(),
          })),
        },
        place(path) {
          const parts = path.split(".");
          if (parts[0] === "highlights" && parts.length > 1 && rows[Number(parts[1])]) {
            return rows[Number(parts[1])].querySelector(".field-error");
          }
          return form.querySelector('[data-field="' + parts[0] + '"]');
        },
      };
    },
  };

  function clearErrors(form) {
    form.querySelectorAll(".field-error").forEach((element) => (element.textContent = ""));
    const formError = form.querySelector('[data-role="form-error"]');
    formError.hidden = true;
    formError.textContent = "";
  }

  function showFormError(form, text) {
    const formError = form.querySelector('[data-role="form-error"]');
    formError.textContent = text;
    formError.hidden = false;
  }

  section.addEventListener("click", (event) => {
    if (!event.target.matches('[data-action="add-highlight"]')) return;
    const rows = event.target.closest("form").querySelector(".highlight-rows");
    const copy = rows.lastElementChild.cloneNode(true);
    copy.querySelector(".field-error").textContent = "";
    rows.appendChild(copy);
  });

  // An export of this project ended (the tray saw it): add its video here, playable, and clear a stale
  // "already running" under the form of its kind.
  const videos = document.getElementById("working-videos");
  document.addEventListener("export:finished", (event) => {
    const job = event.detail;
    if (!videos || String(job.project_id) !== videos.dataset.projectId) return;
    const form = section.querySelector('form[data-kind="' + job.kind + '"]');
    if (form) form.querySelector('[data-role="form-error"]').hidden = true;
    const video = job.working_video;
    if (job.status !== "complete" || !video || document.getElementById("working-video-" + video.id)) return;
    // The card as the page draws it (templates/exports/working_video_card.html), from the server.
    window.exportsHttp
      .fetchFragment(window.exportsHttp.urlFor(videos.dataset.cardUrl, video.id), "ul")
      .then((card) => {
        if (!card || document.getElementById("working-video-" + video.id)) return;
        videos.querySelector('[data-role="videos"]').prepend(card);
        videos.querySelector('[data-role="none"]').hidden = true;
      })
      .catch(() => {}); // a reload shows it
  });

  section.addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target;
    const submit = form.querySelector('[type="submit"]');
    const built = builders[form.dataset.kind](form);
    clearErrors(form);
    submit.disabled = true;
    window.exportsHttp
      .postJson(section.dataset.startUrl, { kind: form.dataset.kind, params: built.params })
      .then((result) => {
        if (result.body.job && window.exportTray) window.exportTray.add(result.body.job);
        if (result.status === 201) return;
        if (result.status === 400 && result.body.fields) {
          for (const [path, message] of Object.entries(result.body.fields)) {
            const place = built.place(path);
            // A highlight row or keyframe list has one place for all its errors: one line each.
            if (place) place.textContent = place.textContent ? place.textContent + "\n" + message : message;
            else showFormError(form, path + ": " + message);
          }
        }
        if (result.status !== 400 || !result.body.fields) showFormError(form, result.body.error || "Could not start.");
      })
      .catch(() => showFormError(form, "Could not reach the server; try again."))
      .finally(() => {
        submit.disabled = false;
      });
  });
})();
