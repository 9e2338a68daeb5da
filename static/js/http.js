// How the pages' scripts talk to the server: Django's CSRF token, a JSON POST, a fragment of a page, and the URL
// of one object. Loaded by base.html first.
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

  // A URL the page was given for any object of a kind, drawn by {% url %} with a placeholder for its id (the nil
  // UUID, or 0 for a number), made for the object `id`.
  function urlFor(template, id) {
    return template.replace(/\/(?:00000000-0000-0000-0000-000000000000|0)\//, "/" + encodeURIComponent(id) + "/");
  }

  return { csrfToken: csrfToken, postJson: postJson, fetchFragment: fetchFragment, urlFor: urlFor };
})();
