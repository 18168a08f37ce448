// Live regions: an element with data-live-url has its contents replaced by that URL's HTML fragment every
// data-live-every seconds, while the page is visible. A failed poll keeps the last contents and says so.
// A redraw keeps keyboard focus on the same control (same card, row, link or form), and a fragment's
// data-live-summary, when it changes, is announced politely through the page's #live-status.

const CONTROLS = "a[href], button, input, select, textarea, [tabindex]";

// What identifies a control across a redraw: the card or row it sits in, its kind, and where it leads.
function controlKey(control) {
  const holder = control.closest("[data-alert], [data-camera]");
  const place = holder ? `${holder.dataset.alert || ""}/${holder.dataset.camera || ""}` : "";
  const target = control.getAttribute("href") || control.form?.getAttribute("action") || control.id || "";
  return `${place}|${control.tagName}|${target}`;
}

function summaryOf(element) {
  return element.querySelector("[data-live-summary]")?.dataset.liveSummary || "";
}

function startLiveRegion(element) {
  const every = Number(element.dataset.liveEvery || 5) * 1000;
  const status = document.getElementById("live-status");
  let summary = summaryOf(element);
  let busy = false;
  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const response = await fetch(element.dataset.liveUrl, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
      });
      // A lapsed session answers with the login page: show it instead of pasting it into the region.
      if (response.redirected) {
        window.location.reload();
        return;
      }
      if (!response.ok) throw new Error(String(response.status));
      const html = await response.text();
      if (html !== element.dataset.liveLast) {
        const focused = element.contains(document.activeElement) ? controlKey(document.activeElement) : null;
        element.innerHTML = html;
        element.dataset.liveLast = html;
        if (focused !== null) {
          // The same control again, or the region itself when it is gone: never back to the top of the page.
          const again = [...element.querySelectorAll(CONTROLS)].find((control) => controlKey(control) === focused);
          (again || element).focus({ preventScroll: true });
        }
        const now = summaryOf(element);
        if (status && now && now !== summary) status.textContent = now;
        summary = now;
        element.dispatchEvent(new CustomEvent("live:updated", { bubbles: true }));
      }
      element.classList.remove("live-failed");
      element.dataset.liveUpdatedAt = new Date().toISOString();
    } catch (_error) {
      element.classList.add("live-failed");
    } finally {
      busy = false;
    }
  }
  if (!element.hasAttribute("tabindex")) element.setAttribute("tabindex", "-1");
  setInterval(refresh, every);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
}

document.querySelectorAll("[data-live-url]").forEach(startLiveRegion);
