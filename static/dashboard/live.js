// Live regions: an element with data-live-url has its contents replaced by that URL's HTML fragment every
// data-live-every seconds, while the page is visible. A failed poll keeps the last contents and says so.
"use strict";

function startLiveRegion(element) {
  const every = Number(element.dataset.liveEvery || 5) * 1000;
  let busy = false;
  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(element.dataset.liveUrl, { credentials: "same-origin", headers: { Accept: "text/html" } });
      // A lapsed session answers with the login page: show it instead of pasting it into the region.
      if (response.redirected) { window.location.reload(); return; }
      if (!response.ok) throw new Error(String(response.status));
      const html = await response.text();
      if (html !== element.dataset.liveLast) {
        element.innerHTML = html;
        element.dataset.liveLast = html;
        element.dispatchEvent(new CustomEvent("live:updated", { bubbles: true }));
      }
      element.classList.remove("live-failed");
      element.dataset.liveUpdatedAt = new Date().toISOString();
    } catch (error) {
      element.classList.add("live-failed");
    } finally {
      busy = false;
    }
  }
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) refresh(); });
}

document.querySelectorAll("[data-live-url]").forEach(startLiveRegion);
