// The clip upload form with progress: the same POST as without script, sent by XMLHttpRequest (fetch cannot
// report upload progress), asking for JSON so a refusal shows under the form instead of a new page.
(function () {
  "use strict";

  const form = document.getElementById("clip-upload");
  if (!form) return;
  const progress = form.querySelector('[data-role="upload-progress"]');
  const bar = progress.querySelector("progress");
  const percent = form.querySelector('[data-role="upload-percent"]');
  const error = form.querySelector('[data-role="upload-error"]');
  const submit = form.querySelector('[type="submit"]');

  function fail(text) {
    progress.hidden = true;
    error.textContent = text;
    error.hidden = false;
    submit.disabled = false;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (progressEvent) => {
      if (!progressEvent.lengthComputable) return;
      const done = Math.floor((100 * progressEvent.loaded) / progressEvent.total);
      bar.value = done;
      percent.textContent = done < 100 ? "Uploading… " + done + " %" : "Checking the video…";
    });
    request.addEventListener("load", () => {
      let body = {};
      try {
        body = JSON.parse(request.responseText);
      } catch (parseError) {
        body = {};
      }
      if (request.status === 201 && body.redirect) window.location.assign(body.redirect);
      else fail(body.error || "The upload failed (" + request.status + "). Try again.");
    });
    request.addEventListener("error", () => fail("The upload was interrupted. Try again."));
    error.hidden = true;
    submit.disabled = true;
    bar.value = 0;
    percent.textContent = "Uploading… 0 %";
    progress.hidden = false;
    request.send(new FormData(form));
  });
})();
