// Camera page: a frame with its density heatmap (plotly) and a scrubber through recent frames; the count over
// time with a range and bucket, per-zone series and alert markers; a CSV of the same series; the number of open
// alerts on the fold that holds them. Polls every 5 s.
import { fetchJSON } from "./fetch.js";

const POLL_MS = 5000;
// The camera's site keeps its own wall clock: every time on the page is shown and plotted in it, whatever the
// browser's zone.
const SITE_ZONE = document.getElementById("series").dataset.timeZone;
const siteClock = new Intl.DateTimeFormat("en-CA", {
  timeZone: SITE_ZONE,
  hourCycle: "h23",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});
const heatmapDiv = document.getElementById("heatmap");
const opacityInput = document.getElementById("opacity");
const scrubber = document.getElementById("scrubber");
const follow = document.getElementById("follow");

// Turbo-like colours whose transparency fades out towards zero, so that empty ground shows the frame untinted.
const DENSITY_COLOURS = [
  [0, "rgba(48,18,59,0)"],
  [0.08, "rgba(70,107,227,0.35)"],
  [0.25, "rgba(40,188,235,0.75)"],
  [0.45, "rgba(50,241,152,0.9)"],
  [0.65, "rgba(237,208,58,1)"],
  [0.85, "rgba(251,128,34,1)"],
  [1, "rgba(122,4,3,1)"],
];

// The top of the colour scale: the 99.5th percentile, so a few hot cells do not wash out the rest.
function upperLevel(rows) {
  const values = rows.flat().sort((a, b) => a - b);
  return Math.max(values[Math.floor(0.995 * (values.length - 1))], 1e-6);
}

let frames = [];
let shownFrame = null;

async function drawFrame(frame) {
  const density = await fetchJSON(frame.density);
  const stride = density.stride;
  // Cell centres in frame pixels, so the heatmap lines up with the frame drawn beneath it.
  const xs = Array.from({ length: density.shape[1] }, (_, i) => (i + 0.5) * stride);
  const ys = Array.from({ length: density.shape[0] }, (_, i) => (i + 0.5) * stride);
  const images = frame.image
    ? [
        {
          source: frame.image,
          xref: "x",
          yref: "y",
          x: 0,
          y: 0,
          sizex: frame.width,
          sizey: frame.height,
          sizing: "stretch",
          layer: "below",
        },
      ]
    : [];
  const trace = {
    type: "heatmap",
    x: xs,
    y: ys,
    z: density.values,
    colorscale: DENSITY_COLOURS,
    zmin: 0,
    zmax: upperLevel(density.values),
    opacity: Number(opacityInput.value),
    zsmooth: "best",
    colorbar: { title: { text: "people per 8x8 px" } },
    hovertemplate: "x %{x:.0f}, y %{y:.0f}: %{z:.3f}<extra></extra>",
  };
  const layout = {
    margin: { l: 10, r: 10, t: 10, b: 10 },
    xaxis: { range: [0, frame.width], visible: false, constrain: "domain" },
    yaxis: { range: [frame.height, 0], visible: false, scaleanchor: "x" },
    images,
    height: Math.min(640, Math.round((heatmapDiv.clientWidth * frame.height) / frame.width)),
  };
  await Plotly.react(heatmapDiv, [trace], layout, { displaylogo: false, responsive: true });
  shownFrame = frame;
  document.getElementById("frame-count").textContent = frame.count.toFixed(1);
  const time = document.getElementById("frame-time");
  time.dateTime = frame.time;
  time.textContent = wallTime(frame.time).slice(0, 19);
  document.getElementById("frame-origin").textContent = frame.origin;
  document.querySelector("#zone-table tbody").innerHTML = Object.entries(frame.zones)
    .map(([name, count]) => `<tr><td>${escapeHTML(name)}</td><td>${count.toFixed(1)}</td></tr>`)
    .join("");
}

function escapeHTML(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span.innerHTML;
}

// The fold of open alerts says how many there are (all of them: its list shows the newest few), and stands out while
// there are any.
function showOpenAlerts(count) {
  const fold = document.getElementById("camera-alerts");
  fold.querySelector("summary").textContent = count ? `${count} open alert${count === 1 ? "" : "s"}` : "No open alerts";
  fold.classList.toggle("has-open", count > 0);
}

async function refreshFrames() {
  const data = await fetchJSON((heatmapDiv || document.getElementById("no-frame")).dataset.framesUrl);
  showOpenAlerts(data.open_alerts);
  // No counted frame when the page was drawn: show the page with its first frame as soon as there is one.
  if (!heatmapDiv) {
    if (data.frames.length) window.location.reload();
    return;
  }
  const stateLabel = document.getElementById("camera-state");
  stateLabel.textContent = data.state;
  stateLabel.className = `state-pill state-${data.state}`;
  frames = data.frames;
  if (!frames.length) return;
  scrubber.max = String(frames.length - 1);
  if (follow.checked || shownFrame === null) {
    scrubber.value = scrubber.max;
    const newest = frames[frames.length - 1];
    if (!shownFrame || shownFrame.id !== newest.id) await drawFrame(newest);
  } else {
    const index = frames.findIndex((frame) => frame.id === shownFrame.id);
    scrubber.value = String(Math.max(index, 0));
  }
}

if (heatmapDiv) {
  opacityInput.addEventListener("input", () => Plotly.restyle(heatmapDiv, { opacity: Number(opacityInput.value) }));
  scrubber.addEventListener("input", () => {
    const frame = frames[Number(scrubber.value)];
    follow.checked = Number(scrubber.value) === frames.length - 1;
    if (frame) drawFrame(frame).catch(showHeatmapError);
  });
}

function showHeatmapError(error) {
  (heatmapDiv || document.getElementById("no-frame")).textContent = `Could not draw the heatmap: ${error.message}`;
}

const seriesDiv = document.getElementById("series");
const rangeSelect = document.getElementById("range");
const bucketSelect = document.getElementById("bucket");
const fromInput = document.getElementById("from");
const toInput = document.getElementById("to");
const csvLink = document.getElementById("csv");

// Plotly reads a time string as wall time, whatever its offset, and a Date as the browser's local time. Every time it
// is given is therefore the site's wall time ("2026-12-04 22:05:30.000"), so that points, alerts and the range agree
// in any browser.
function wallTime(value) {
  const date = new Date(value);
  const part = Object.fromEntries(siteClock.formatToParts(date).map((p) => [p.type, p.value]));
  const ms = String(date.getUTCMilliseconds()).padStart(3, "0");
  return `${part.year}-${part.month}-${part.day} ${part.hour}:${part.minute}:${part.second}.${ms}`;
}

// The instant whose wall time at the site is `wall` ("2026-12-04T22:05"): the site's offset then, read at a first
// guess (exact but within an hour of a change of clocks).
function fromWallTime(wall) {
  const guess = new Date(`${wall}Z`);
  const offset = new Date(`${wallTime(guess).replace(" ", "T")}Z`) - guess;
  return new Date(guess.getTime() - offset);
}

function localInputValue(date) {
  return wallTime(date).slice(0, 16).replace(" ", "T");
}

function selectedRange() {
  if (rangeSelect.value === "custom" && fromInput.value && toInput.value) {
    return [fromWallTime(fromInput.value), fromWallTime(toInput.value)];
  }
  const to = new Date();
  return [new Date(to.getTime() - Number(rangeSelect.value === "custom" ? 24 : rangeSelect.value) * 3600e3), to];
}

let seriesBusy = false;
let seriesAgain = false;

async function drawSeries() {
  // One request at a time, so a slow answer never redraws over a newer one; a change meanwhile draws after it.
  if (seriesBusy) {
    seriesAgain = true;
    return;
  }
  seriesBusy = true;
  try {
    do {
      seriesAgain = false;
      await fetchAndDrawSeries();
    } while (seriesAgain);
  } finally {
    seriesBusy = false;
  }
}

async function fetchAndDrawSeries() {
  const [from, to] = selectedRange();
  const params = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), bucket: bucketSelect.value });
  csvLink.href = `${seriesDiv.dataset.countsUrl}?${params}&format=csv`;
  const [data, alerts] = await Promise.all([
    fetchJSON(`${seriesDiv.dataset.countsUrl}?${params}`),
    fetchJSON(
      `${seriesDiv.dataset.alertsUrl}&from=${encodeURIComponent(from.toISOString())}&to=${encodeURIComponent(to.toISOString())}`,
    ),
  ]);
  const raw = data.bucket === "raw";
  const times = data.points.map((p) => wallTime(raw ? p.time : p.start));
  const value = (p) => (raw ? p.count : p.mean);
  const traces = [
    {
      type: "scatter",
      mode: raw ? "lines+markers" : "lines",
      name: raw ? "camera" : "camera (mean)",
      x: times,
      y: data.points.map(value),
      line: { width: 2.5, color: "#1f6feb" },
    },
  ];
  if (!raw)
    traces.push({
      type: "scatter",
      mode: "lines",
      name: "camera (peak)",
      line: { dash: "dot", color: "#1f6feb" },
      x: times,
      y: data.points.map((p) => p.peak),
    });
  const zoneNames = [...new Set(data.points.flatMap((p) => Object.keys(p.zones)))].sort();
  for (const name of zoneNames) {
    traces.push({
      type: "scatter",
      mode: "lines",
      name: `zone ${name}`,
      x: times,
      y: data.points.map((p) => {
        const zone = p.zones[name];
        return zone === undefined ? null : raw ? zone : zone.mean;
      }),
    });
  }
  if (alerts.alerts.length) {
    traces.push({
      type: "scatter",
      mode: "markers",
      name: "alerts",
      x: alerts.alerts.map((a) => wallTime(a.raised_at)),
      // A people-per-m² alert has no height on the people axis: it sits on the time axis.
      y: alerts.alerts.map((a) => (a.kind === "count" ? a.value : 0)),
      marker: {
        symbol: "triangle-up",
        size: 13,
        color: alerts.alerts.map((a) => (a.state === "open" ? "#d7191c" : "#999")),
      },
      text: alerts.alerts.map(
        (a) => `${a.zone_name ? `zone ${a.zone_name}: ` : ""}${a.value.toFixed(1)} over ${a.threshold} (${a.state})`,
      ),
      hoverinfo: "text+x",
    });
  }
  const shapes = seriesDiv.dataset.threshold
    ? [
        {
          type: "line",
          xref: "paper",
          x0: 0,
          x1: 1,
          y0: Number(seriesDiv.dataset.threshold),
          y1: Number(seriesDiv.dataset.threshold),
          line: { color: "#d7191c", width: 1, dash: "dash" },
        },
      ]
    : [];
  const layout = {
    margin: { l: 50, r: 10, t: 10, b: 40 },
    yaxis: { title: { text: "people" }, rangemode: "tozero" },
    xaxis: { type: "date", range: [wallTime(from), wallTime(to)], title: { text: `time (${SITE_ZONE})` } },
    height: 340,
    legend: { orientation: "h" },
    shapes,
  };
  await Plotly.react(seriesDiv, traces, layout, { displaylogo: false, responsive: true });
  document.getElementById("series-note").textContent = data.points.length ? "" : "No counted frames in this range.";
}

function showSeriesError(error) {
  document.getElementById("series-note").textContent = `Could not load the counts: ${error.message}`;
}

rangeSelect.addEventListener("change", () => {
  const custom = rangeSelect.value === "custom";
  document.getElementById("custom-range").hidden = !custom;
  if (custom && !fromInput.value) {
    const to = new Date();
    fromInput.value = localInputValue(new Date(to.getTime() - 24 * 3600e3));
    toInput.value = localInputValue(to);
  }
  drawSeries().catch(showSeriesError);
});
for (const input of [bucketSelect, fromInput, toInput])
  input.addEventListener("change", () => drawSeries().catch(showSeriesError));

refreshFrames().catch(showHeatmapError);
drawSeries().catch(showSeriesError);
setInterval(() => {
  if (document.hidden) return;
  refreshFrames().catch(() => heatmapDiv?.classList.add("live-failed"));
  // A custom range stays where the operator put it; the others follow the clock.
  if (rangeSelect.value !== "custom") drawSeries().catch(showSeriesError);
}, POLL_MS);
