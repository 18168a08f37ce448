// Calibrate page: the operator marks heads on frames of one camera (suggested frames, marked ones, any frame
// added by id or from the recent ones), then tunes the camera's weights on them; adapts them to the camera's
// unlabeled frames; and picks (or rolls back) the version in use.
// Each frame's points are saved when the operator leaves the frame (or presses Save); a failed save keeps them
// in memory, says why, and is tried again on the next save.
import { fetchJSON } from "../dashboard/fetch.js";
import { HeadMarker } from "./marker.js";

const root = document.getElementById("calibrate");
const urls = JSON.parse(document.getElementById("calibration-urls").textContent);
const minimumFrames = Number(root.dataset.minimumFrames);
const advisedFrames = Number(root.dataset.advisedFrames);
const JOB_POLL_MS = 1500;
const FINISHED_JOB_STATES = new Set(["switched", "kept", "failed"]);

const elements = Object.fromEntries(
  [
    "frame-list",
    "frame-title",
    "point-total",
    "save-state",
    "marker-error",
    "marked-summary",
    "previous",
    "next",
    "undo",
    "clear",
    "fit",
    "save",
    "unmark",
    "add-frame",
    "add-frame-id",
    "recent-frames",
    "add-frame-error",
    "tune",
    "tune-advice",
    "tune-progress",
    "tune-status",
    "versions",
    "use-default",
    "versions-error",
    "adapt",
    "rollback",
    "adapt-progress",
    "adapt-status",
  ].map((id) => [id, document.getElementById(id)]),
);

// One entry a frame in the list. sheet.points is null until the frame is first opened (then the saved points,
// or the model's proposals for a frame not marked yet); `baseline` is those points as last saved or loaded, so
// that the entry is unsaved exactly when its points differ from it.
const entries = [];
let current = -1;

const marker = new HeadMarker(document.getElementById("marker"), { onChange: () => refreshCurrent() });

function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (_, name) => encodeURIComponent(values[name]));
}

function pointsKey(points) {
  return JSON.stringify(points.map((point) => [point.x, point.y]));
}

function framePoints(points) {
  // A tenth of a pixel is finer than anyone clicks; it keeps the stored JSON short.
  return points.map((point) => [Math.round(point.x * 10) / 10, Math.round(point.y * 10) / 10]);
}

function newEntry(frame) {
  return {
    frame: frame.frame,
    imageUrl: frame.image_url,
    width: frame.width,
    height: frame.height,
    capturedAt: frame.captured_at || null,
    modelCount: typeof frame.count === "number" ? frame.count : null,
    markedId: null,
    savedCount: 0,
    savedPoints: null,
    sheet: { width: frame.width, height: frame.height, imageUrl: frame.image_url, points: null, history: [] },
    baseline: null,
    saving: null,
    error: "",
  };
}

function applyMarked(entry, marked) {
  entry.markedId = marked.id;
  entry.savedPoints = marked.points;
  entry.savedCount = marked.points.length;
}

function isUnsaved(entry) {
  return entry.sheet.points !== null && pointsKey(entry.sheet.points) !== entry.baseline;
}

// Marked images imported from a folder (calibrate_camera) have no frame of their own.
function entryName(entry) {
  return entry.frame === null ? `Imported image ${entry.markedId}` : `Frame ${entry.frame}`;
}

function markedEntries() {
  return entries.filter((entry) => entry.markedId !== null);
}

function describeTime(iso) {
  return iso ? new Date(iso).toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "";
}

// --- the frame list -------------------------------------------------------------------------------------------

function entryBadge(entry) {
  if (entry.saving) return ["saving", "saving…"];
  if (entry.error) return ["failed", "not saved"];
  if (isUnsaved(entry)) return ["unsaved", "unsaved"];
  if (entry.markedId !== null) return ["marked", `✓ ${entry.savedCount}`];
  if (entry.modelCount !== null) return ["suggested", `model ≈${Math.round(entry.modelCount)}`];
  return ["suggested", "not marked"];
}

function listItem(entry, index) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "frame-item";
  button.dataset.frame = entry.frame ?? "";
  button.dataset.index = index;
  const thumbnail = document.createElement("img");
  thumbnail.src = entry.imageUrl;
  thumbnail.alt = "";
  thumbnail.loading = "lazy";
  const label = document.createElement("span");
  label.className = "frame-label";
  label.textContent = entryName(entry);
  const time = document.createElement("small");
  time.textContent = describeTime(entry.capturedAt);
  const badge = document.createElement("span");
  badge.className = "frame-badge";
  button.append(thumbnail, label, time, badge);
  item.append(button);
  return item;
}

// Adds the items of frames new to the list, then brings every item's state up to date (the thumbnails stay).
function renderList() {
  const list = elements["frame-list"];
  for (let index = list.children.length; index < entries.length; index += 1) {
    list.append(listItem(entries[index], index));
  }
  entries.forEach((entry, index) => {
    const button = list.children[index].firstChild;
    const [state, badgeText] = entryBadge(entry);
    button.dataset.state = state;
    button.querySelector(".frame-badge").textContent = badgeText;
    button.setAttribute("aria-label", `${entryName(entry)}, ${badgeText}`);
    if (index === current) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  });
  const marked = markedEntries();
  const heads = marked.reduce((total, entry) => total + entry.savedCount, 0);
  elements["marked-summary"].textContent =
    `${marked.length} of ${entries.length} frames marked · ${heads} heads marked in all`;
  renderTuneAdvice();
}

elements["frame-list"].addEventListener("click", (event) => {
  const button = event.target.closest("button.frame-item");
  if (button) openFrame(Number(button.dataset.index));
});

// --- the open frame -------------------------------------------------------------------------------------------

function refreshCurrent() {
  const entry = entries[current];
  if (!entry) return;
  const points = entry.sheet.points || [];
  const proposed = points.filter((point) => point.proposed).length;
  elements["point-total"].textContent =
    `${points.length} head${points.length === 1 ? "" : "s"}${proposed ? ` (${proposed} proposed by the model)` : ""}`;
  elements["frame-title"].textContent =
    `${entryName(entry)} (${current + 1} of ${entries.length})` +
    (entry.capturedAt ? ` · ${describeTime(entry.capturedAt)}` : "");
  let state = "saved";
  let text = `Saved: ${entry.savedCount} head${entry.savedCount === 1 ? "" : "s"}`;
  if (entry.sheet.points === null) [state, text] = ["loading", "Loading the model's proposals…"];
  else if (entry.saving) [state, text] = ["saving", "Saving…"];
  else if (entry.error) [state, text] = ["failed", "Not saved: your points are kept here; Save to try again."];
  else if (isUnsaved(entry)) [state, text] = ["unsaved", "Unsaved changes (saved when you leave the frame)"];
  else if (entry.markedId === null) {
    [state, text] = ["proposed", "Not marked yet: correct the proposals, or Save to accept them as they are"];
  }
  elements["save-state"].textContent = text;
  elements["save-state"].dataset.state = state;
  elements["marker-error"].textContent = entry.error;
  elements.undo.disabled = entry.sheet.history.length === 0;
  elements.save.disabled = entry.sheet.points === null || entry.saving !== null;
  elements.unmark.disabled = entry.markedId === null;
  elements.previous.disabled = current <= 0;
  elements.next.disabled = current >= entries.length - 1;
  renderList();
}

async function openFrame(index) {
  if (index < 0 || index >= entries.length || index === current) return;
  const leaving = entries[current];
  if (leaving && (isUnsaved(leaving) || leaving.error)) save(leaving);
  current = index;
  const entry = entries[index];
  if (entry.sheet.points === null) {
    refreshCurrent();
    await loadPoints(entry);
    if (entries[current] !== entry) return; // the operator moved on while the proposals were on their way
  }
  marker.show(entry.sheet);
  refreshCurrent();
  document.querySelector(`#frame-list [data-index="${index}"]`)?.scrollIntoView({ block: "nearest" });
}

async function loadPoints(entry) {
  if (entry.savedPoints) {
    entry.sheet.points = entry.savedPoints.map(([x, y]) => ({ x, y, proposed: false }));
  } else {
    try {
      const body = await fetchJSON(fill(urls.proposals, { frame: entry.frame }));
      entry.sheet.points = body.points.map(([x, y]) => ({ x, y, proposed: true }));
    } catch (error) {
      entry.sheet.points = [];
      entry.error = `The model's proposals could not be loaded (${error.message}): mark the heads yourself.`;
    }
  }
  entry.baseline = pointsKey(entry.sheet.points);
}

// Saves are chained per frame, so a second save waits for the first and the last points win.
function save(entry) {
  const previous = entry.saving || Promise.resolve();
  const saving = previous.then(() => saveNow(entry));
  entry.saving = saving;
  saving.finally(() => {
    if (entry.saving === saving) entry.saving = null;
    refreshCurrent();
  });
  refreshCurrent();
  return saving;
}

async function saveNow(entry) {
  const points = framePoints(entry.sheet.points);
  const key = pointsKey(entry.sheet.points);
  try {
    const marked =
      entry.markedId === null
        ? await fetchJSON(urls.marked, { method: "POST", body: { frame: entry.frame, points } })
        : await fetchJSON(fill(urls.markedOne, { id: entry.markedId }), { method: "PUT", body: { points } });
    applyMarked(entry, { id: marked.id ?? entry.markedId, points });
    entry.baseline = key;
    entry.error = "";
    // Saved points are the operator's, proposals accepted included.
    entry.sheet.points.forEach((point) => {
      point.proposed = false;
    });
    if (entries[current] === entry) marker.drawPoints();
  } catch (error) {
    entry.error = `${entryName(entry)} not saved: ${error.message}`;
  }
}

async function unmark(entry) {
  if (!window.confirm(`Forget the ${entry.savedCount} heads marked on ${entryName(entry)}?`)) return;
  try {
    await fetchJSON(fill(urls.markedOne, { id: entry.markedId }), { method: "DELETE" });
  } catch (error) {
    entry.error = `${entryName(entry)}: marks not removed: ${error.message}`;
    refreshCurrent();
    return;
  }
  Object.assign(entry, { markedId: null, savedCount: 0, savedPoints: null, error: "" });
  entry.baseline = pointsKey(entry.sheet.points);
  refreshCurrent();
}

elements.previous.addEventListener("click", () => openFrame(current - 1));
elements.next.addEventListener("click", () => openFrame(current + 1));
elements.undo.addEventListener("click", () => marker.undo());
elements.clear.addEventListener("click", () => marker.clear());
elements.fit.addEventListener("click", () => marker.fit());
elements.save.addEventListener("click", () => entries[current] && save(entries[current]));
elements.unmark.addEventListener("click", () => entries[current] && unmark(entries[current]));

// Shortcuts, except while typing in a field (a frame id, say).
document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, select, textarea") || event.altKey || event.metaKey) return;
  const key = event.key;
  const handled = () => event.preventDefault();
  if (event.ctrlKey) {
    if (key === "z" || key === "Z") {
      handled();
      marker.undo();
    } else if (key === "s") {
      handled();
      if (entries[current]) save(entries[current]);
    }
    return;
  }
  if (key === "ArrowRight" || key === "n") {
    handled();
    openFrame(current + 1);
  } else if (key === "ArrowLeft" || key === "p") {
    handled();
    openFrame(current - 1);
  } else if (key === "u") {
    handled();
    marker.undo();
  } else if (key === "Delete") {
    handled();
    marker.clear();
  } else if (key === "+" || key === "=") {
    handled();
    marker.zoom(1.5);
  } else if (key === "-") {
    handled();
    marker.zoom(1 / 1.5);
  } else if (key === "0") {
    handled();
    marker.fit();
  } else if (key === " ") {
    handled();
    marker.setSpaceHeld(true);
  }
});
document.addEventListener("keyup", (event) => {
  if (event.key === " ") marker.setSpaceHeld(false);
});

window.addEventListener("beforeunload", (event) => {
  if (entries.some((entry) => isUnsaved(entry) || entry.saving || entry.error)) event.preventDefault();
});

// --- adding frames ----------------------------------------------------------------------------------------------

async function addFrame(frameId) {
  elements["add-frame-error"].textContent = "";
  const known = entries.findIndex((entry) => entry.frame === frameId);
  if (known >= 0) return openFrame(known);
  let frame;
  try {
    frame = await fetchJSON(fill(urls.frame, { frame: frameId }));
  } catch (error) {
    elements["add-frame-error"].textContent = `Frame ${frameId}: ${error.message}`;
    return;
  }
  if (frame.camera !== Number(root.dataset.camera)) {
    elements["add-frame-error"].textContent = `Frame ${frameId} is another camera's frame.`;
    return;
  }
  if (!frame.links.image) {
    elements["add-frame-error"].textContent =
      `Frame ${frameId}'s image is not shown: no longer stored, or its camera keeps frames with heads blurred.`;
    return;
  }
  entries.push(newEntry({ ...frame, frame: frame.id, image_url: frame.links.image }));
  return openFrame(entries.length - 1);
}

elements["add-frame"].addEventListener("submit", (event) => {
  event.preventDefault();
  const frameId = Number(elements["add-frame-id"].value);
  if (Number.isInteger(frameId) && frameId > 0) addFrame(frameId);
});

elements["recent-frames"].addEventListener("change", () => {
  const frameId = Number(elements["recent-frames"].value);
  elements["recent-frames"].value = "";
  if (frameId) addFrame(frameId);
});

async function loadRecentFrames() {
  const body = await fetchJSON(urls.recentFrames);
  const options = body.frames
    .filter((frame) => frame.image)
    .reverse()
    .map((frame) => {
      const option = document.createElement("option");
      option.value = frame.id;
      option.textContent = `${describeTime(frame.time)} · ${Math.round(frame.count)} counted · frame ${frame.id}`;
      return option;
    });
  elements["recent-frames"].append(...options);
}

// --- tuning -----------------------------------------------------------------------------------------------------

let tuning = false;

function renderTuneAdvice() {
  const marked = markedEntries().length;
  elements.tune.disabled = tuning || marked < minimumFrames;
  let advice = `${marked} frame${marked === 1 ? "" : "s"} marked. `;
  if (marked < minimumFrames) advice += `Tuning needs at least ${minimumFrames}; ${advisedFrames} or more advised.`;
  else if (marked < advisedFrames) advice += `Enough to tune; ${advisedFrames} or more advised.`;
  else advice += "Enough to tune.";
  elements["tune-advice"].textContent = advice;
}

function formatError(value) {
  return typeof value === "number" ? value.toFixed(1) : "?";
}

function describeJob(job) {
  if (job.status === "queued") return "Waiting for a calibration worker…";
  if (job.status === "running")
    return `Tuning… ${Math.round((job.progress || 0) * 100)}%${job.message ? `: ${job.message}` : ""}`;
  if (job.status === "failed") return `Tuning failed; the camera keeps its weights. ${job.message || ""}`.trim();
  const errors =
    `Held-out error ${formatError(job.held_out_mae_before)} → ${formatError(job.held_out_mae_after)}` +
    ` on ${job.frames} frames`;
  const outcome = job.switched ? `switched to version ${job.version}` : "kept the current weights";
  return `${errors}: ${outcome}.${job.message ? ` ${job.message}` : ""}`;
}

function showJob(job, prefix = "") {
  const progress = elements["tune-progress"];
  progress.hidden = FINISHED_JOB_STATES.has(job.status);
  progress.value = job.progress || 0;
  elements["tune-status"].textContent = prefix + describeJob(job);
  elements["tune-status"].dataset.state = job.status;
}

async function followJob(statusUrl) {
  tuning = true;
  renderTuneAdvice();
  try {
    for (;;) {
      const job = await fetchJSON(statusUrl);
      showJob(job);
      if (FINISHED_JOB_STATES.has(job.status)) break;
      await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    }
    await loadVersions();
  } catch (error) {
    elements["tune-status"].textContent = `Lost track of the tuning job: ${error.message}. Reload to see it.`;
  } finally {
    tuning = false;
    renderTuneAdvice();
  }
}

elements.tune.addEventListener("click", async () => {
  elements.tune.disabled = true;
  // Tune on what the operator sees: the open frame's changes first.
  const pending = entries.filter((entry) => isUnsaved(entry) || entry.error).map((entry) => save(entry));
  await Promise.all(pending);
  try {
    const job = await fetchJSON(urls.calibrations, { method: "POST" });
    showJob(job);
    await followJob(job.status_url);
  } catch (error) {
    elements["tune-status"].textContent = `Not started: ${error.message}`;
    elements["tune-status"].dataset.state = "failed";
    renderTuneAdvice();
  }
});

// A job started earlier (by anyone, maybe in another tab) is followed; a finished one's outcome is shown.
async function showLatestJob() {
  const [latest] = await fetchJSON(urls.calibrations);
  if (!latest) return;
  if (FINISHED_JOB_STATES.has(latest.status)) showJob(latest, `Last tuning, ${describeTime(latest.finished_at)}: `);
  else await followJob(latest.status_url);
}

// --- versions ---------------------------------------------------------------------------------------------------

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

function renderVersions(body) {
  const rows = body.versions.map((version) => {
    const row = document.createElement("tr");
    row.dataset.version = version.id;
    const active = version.id === body.active;
    if (active) row.className = "active";
    const action = document.createElement("td");
    if (active) {
      action.textContent = "in use";
    } else {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "use-version";
      button.textContent = "Use this";
      button.setAttribute("aria-label", `use weights ${version.label}`);
      button.addEventListener("click", () => activate(version.id));
      action.append(button);
    }
    row.dataset.kind = version.kind;
    row.append(
      cell(version.label),
      cell(describeTime(version.created_at)),
      cell(version.created_by || (version.kind === "adapted" ? "automatic or command line" : "")),
      cell(version.summary),
      action,
    );
    return row;
  });
  elements.versions.querySelector("tbody").replaceChildren(...rows);
  elements.versions.hidden = rows.length === 0;
  elements["use-default"].disabled = body.active === null;
  elements["use-default"].textContent = body.active === null ? "Default weights in use" : "Use default weights";
  elements.rollback.disabled = body.rollback === null;
  elements.rollback.textContent = body.rollback === null ? "Roll back" : `Roll back to ${body.rollback.label}`;
  elements.adapt.textContent = body.versions.some((version) => version.kind === "adapted") ? "Adapt again" : "Adapt";
}

async function loadVersions() {
  try {
    renderVersions(await fetchJSON(urls.weights));
    elements["versions-error"].textContent = "";
  } catch (error) {
    elements["versions-error"].textContent = `Versions not loaded: ${error.message}`;
  }
}

async function activate(versionId) {
  try {
    renderVersions(await fetchJSON(urls.activate, { method: "POST", body: { version: versionId } }));
    elements["versions-error"].textContent = "";
  } catch (error) {
    elements["versions-error"].textContent = `Not switched: ${error.message}`;
  }
}

elements["use-default"].addEventListener("click", () => activate(null));

elements.rollback.addEventListener("click", async () => {
  elements.rollback.disabled = true;
  try {
    renderVersions(await fetchJSON(urls.rollback, { method: "POST" }));
    elements["versions-error"].textContent = "";
  } catch (error) {
    elements["versions-error"].textContent = `Not rolled back: ${error.message}`;
    await loadVersions();
  }
});

// --- adaptation -------------------------------------------------------------------------------------------------

let adapting = false;

function describeAdaptation(job) {
  if (job.status === "queued") return "Waiting for a calibration worker…";
  if (job.status === "running")
    return `Adapting… ${Math.round((job.progress || 0) * 100)}%${job.message ? `: ${job.message}` : ""}`;
  if (job.status === "failed") return `Adaptation failed; the camera keeps its weights. ${job.message || ""}`.trim();
  if (job.switched) return `Adapted: switched to version ${job.version}. ${job.message || ""}`.trim();
  return `Kept the current weights. ${job.message || ""}`.trim();
}

function showAdaptation(job, prefix = "") {
  elements["adapt-progress"].hidden = FINISHED_JOB_STATES.has(job.status);
  elements["adapt-progress"].value = job.progress || 0;
  elements["adapt-status"].textContent = prefix + describeAdaptation(job);
  elements["adapt-status"].dataset.state = job.status;
}

async function followAdaptation(statusUrl) {
  adapting = true;
  elements.adapt.disabled = true;
  try {
    for (;;) {
      const job = await fetchJSON(statusUrl);
      showAdaptation(job);
      if (FINISHED_JOB_STATES.has(job.status)) break;
      await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    }
    await loadVersions();
  } catch (error) {
    elements["adapt-status"].textContent = `Lost track of the adaptation: ${error.message}. Reload to see it.`;
  } finally {
    adapting = false;
    elements.adapt.disabled = false;
  }
}

elements.adapt.addEventListener("click", async () => {
  if (adapting) return;
  elements.adapt.disabled = true;
  try {
    const job = await fetchJSON(urls.adaptations, { method: "POST" });
    showAdaptation(job);
    await followAdaptation(job.status_url);
  } catch (error) {
    elements["adapt-status"].textContent = `Not started: ${error.message}`;
    elements["adapt-status"].dataset.state = "failed";
    elements.adapt.disabled = false;
  }
});

// An adaptation started earlier (automatically, or by anyone) is followed; a finished one's outcome is shown.
async function showLatestAdaptation() {
  const [latest] = await fetchJSON(urls.adaptations);
  if (!latest) return;
  if (FINISHED_JOB_STATES.has(latest.status)) {
    showAdaptation(latest, `Last adaptation, ${describeTime(latest.finished_at)}: `);
  } else {
    await followAdaptation(latest.status_url);
  }
}

// --- start ------------------------------------------------------------------------------------------------------

async function start() {
  try {
    const [marked, suggested] = await Promise.all([fetchJSON(urls.marked), fetchJSON(urls.suggested)]);
    for (const item of marked) {
      const entry = newEntry(item);
      applyMarked(entry, item);
      entries.push(entry);
    }
    const markedFrames = new Set(marked.map((item) => item.frame));
    for (const item of suggested.frames) {
      if (!markedFrames.has(item.frame)) entries.push(newEntry(item));
    }
  } catch (error) {
    elements["marker-error"].textContent = `Frames not loaded: ${error.message}`;
  }
  renderList();
  loadVersions();
  showLatestJob().catch((error) => {
    elements["tune-status"].textContent = `Tuning jobs not loaded: ${error.message}`;
  });
  showLatestAdaptation().catch((error) => {
    elements["adapt-status"].textContent = `Adaptations not loaded: ${error.message}`;
  });
  loadRecentFrames().catch((error) => {
    elements["add-frame-error"].textContent = `Recent frames not loaded: ${error.message}`;
  });
  if (entries.length) {
    const firstToMark = entries.findIndex((entry) => entry.markedId === null);
    await openFrame(Math.max(firstToMark, 0));
  } else {
    elements["frame-title"].textContent = "No frame of this camera to mark yet: add one by its id.";
  }
  root.dataset.ready = "1";
}

start();
