// Camera page: the latest frame with its density heatmap (plotly), and the count over time from the API.
"use strict";

const heatmapDiv = document.getElementById("heatmap");
const opacityInput = document.getElementById("opacity");

async function getJSON(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

// Turbo-like colours whose transparency fades out towards zero, so that empty ground shows the frame untinted.
const DENSITY_COLOURS = [
  [0, "rgba(48,18,59,0)"], [0.08, "rgba(70,107,227,0.35)"], [0.25, "rgba(40,188,235,0.75)"],
  [0.45, "rgba(50,241,152,0.9)"], [0.65, "rgba(237,208,58,1)"], [0.85, "rgba(251,128,34,1)"], [1, "rgba(122,4,3,1)"],
];

// The top of the colour scale: the 99.5th percentile, so a few hot cells do not wash out the rest.
function upperLevel(rows) {
  const values = rows.flat().sort((a, b) => a - b);
  return Math.max(values[Math.floor(0.995 * (values.length - 1))], 1e-6);
}

async function drawHeatmap() {
  if (!heatmapDiv) return;
  const width = Number(heatmapDiv.dataset.width);
  const height = Number(heatmapDiv.dataset.height);
  const density = await getJSON(heatmapDiv.dataset.densityUrl);
  const stride = density.stride;
  // Cell centres in frame pixels, so the heatmap lines up with the frame drawn beneath it.
  const xs = Array.from({ length: density.shape[1] }, (_, i) => (i + 0.5) * stride);
  const ys = Array.from({ length: density.shape[0] }, (_, i) => (i + 0.5) * stride);
  const images = heatmapDiv.dataset.imageUrl
    ? [{ source: heatmapDiv.dataset.imageUrl, xref: "x", yref: "y", x: 0, y: 0, sizex: width, sizey: height,
         sizing: "stretch", layer: "below" }]
    : [];
  const trace = {
    type: "heatmap", x: xs, y: ys, z: density.values, colorscale: DENSITY_COLOURS, zmin: 0, zmax: upperLevel(density.values),
    opacity: Number(opacityInput.value), zsmooth: "best",
    colorbar: { title: { text: "people per cell" } },
    hovertemplate: "x %{x:.0f}, y %{y:.0f}: %{z:.3f}<extra></extra>",
  };
  const layout = {
    margin: { l: 10, r: 10, t: 10, b: 10 },
    xaxis: { range: [0, width], visible: false, constrain: "domain" },
    yaxis: { range: [height, 0], visible: false, scaleanchor: "x" },
    images, height: Math.min(640, Math.round(heatmapDiv.clientWidth * height / width)),
  };
  await Plotly.newPlot(heatmapDiv, [trace], layout, { displaylogo: false, responsive: true });
  opacityInput.addEventListener("input", () => Plotly.restyle(heatmapDiv, { opacity: Number(opacityInput.value) }));
}

const seriesDiv = document.getElementById("series");
const rangeSelect = document.getElementById("range");
const bucketSelect = document.getElementById("bucket");

async function drawSeries() {
  const to = new Date();
  const from = new Date(to.getTime() - Number(rangeSelect.value) * 3600 * 1000);
  const params = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), bucket: bucketSelect.value });
  const data = await getJSON(`${seriesDiv.dataset.countsUrl}?${params}`);
  const raw = data.bucket === "raw";
  const times = data.points.map((p) => (raw ? p.time : p.start));
  const traces = [{
    type: "scatter", mode: raw ? "lines+markers" : "lines", name: raw ? "count" : "mean",
    x: times, y: data.points.map((p) => (raw ? p.count : p.mean)),
  }];
  if (!raw) traces.push({ type: "scatter", mode: "lines", name: "peak", line: { dash: "dot" }, x: times,
                          y: data.points.map((p) => p.peak) });
  const layout = { margin: { l: 50, r: 10, t: 10, b: 40 }, yaxis: { title: { text: "people" }, rangemode: "tozero" },
                   xaxis: { range: [from, to] }, height: 320, legend: { orientation: "h" } };
  await Plotly.react(seriesDiv, traces, layout, { displaylogo: false, responsive: true });
}

drawHeatmap().catch((error) => { heatmapDiv.textContent = `Could not draw the heatmap: ${error.message}`; });
drawSeries().catch((error) => { seriesDiv.textContent = `Could not load the counts: ${error.message}`; });
rangeSelect.addEventListener("change", drawSeries);
bucketSelect.addEventListener("change", drawSeries);
