// How the pages' scripts talk to the JSON API: Django's CSRF token, and a JSON POST. Loaded by base.html first.
window.exportsHttp = (function () {
  "use strict";

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : "";
  }

  // POST `body` (an empty object if none) as JSON; resolves to {status, body} whatever the status, and rejects
  // when the server could not be reached or answered something that is not JSON.
  function postJson(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body: JSON.stringify(body === undefined ? {} : body),
    }).then((response) => response.json().then((json) => ({ status: response.status, body: json })));
  }

  return { csrfToken: csrfToken, postJson: postJson };
})();
