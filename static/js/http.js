// How the pages' scripts talk to the server: Django's CSRF token, a JSON POST, and a fragment of a page. Loaded
// by base.html first.
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

  // GET a piece of a page the server draws from the same template as the page (a table row, a card): resolves
  // to its element, parsed inside a `container` of the kind it belongs in (a <tr> needs a <tbody>), or to null
  // when the server refused; rejects when it could not be reached.
  function fetchFragment(url, container) {
    return fetch(url, { credentials: "same-origin" })
      .then((response) => (response.ok ? response.text() : null))
      .then((html) => {
        if (html === null) return null;
        const holder = document.createElement(container);
        holder.innerHTML = html.trim();
        return holder.firstElementChild;
      });
  }

  return { csrfToken: csrfToken, postJson: postJson, fetchFragment: fetchFragment };
})();
