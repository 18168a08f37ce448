// The pages' one way of asking the server for JSON: with the session's cookie, Django's CSRF token on every write,
// and, for any failure, an Error whose message can be shown as it is: the API's own words for a refusal, the HTTP
// status, or what else went wrong.

// The token from Django's CSRF cookie; else the one a page renders in a data-csrf-token attribute (a cookie the
// browser keeps from scripts).
function csrfToken() {
  const cookie = document.cookie.split("; ").find((part) => part.startsWith("csrftoken="));
  if (cookie) return decodeURIComponent(cookie.slice("csrftoken=".length));
  return document.querySelector("[data-csrf-token]")?.dataset.csrfToken ?? "";
}

// The API's words for a refusal ({"detail": ...}, {"field": [...]}, or a list), else the HTTP status.
function messageOf(body, response) {
  if (typeof body === "string" && body) return body;
  if (Array.isArray(body)) return body.map((item) => messageOf(item, response)).join(" ");
  if (body && typeof body === "object") {
    if (body.detail) return String(body.detail);
    if (body.message) return String(body.message);
    return Object.entries(body)
      .map(([field, problem]) => `${field}: ${messageOf(problem, response)}`)
      .join("; ");
  }
  return `${response.status} ${response.statusText}`.trim();
}

/**
 * Sends `method` to `url`, with `body` (when given) as JSON, and resolves to the answer's JSON (null for an empty
 * answer). Rejects with an Error when the server cannot be reached, refuses (its message), or answers with something
 * other than JSON (a lapsed session's login page, a proxy's error page).
 */
export async function fetchJSON(url, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  const options = { method, credentials: "same-origin", headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, options);
  } catch {
    throw new Error("the server could not be reached");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    throw new Error(response.ok ? "unexpected answer: sign in again?" : `${response.status} ${response.statusText}`);
  }
  if (!response.ok) throw new Error(messageOf(data, response));
  return data;
}
