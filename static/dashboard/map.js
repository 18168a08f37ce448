// Map: cameras by longitude/latitude on plain axes (no map tiles: the machines are offline), or on the site's plan
// image, coloured by the people in view now. Refreshes every 10 seconds; a click opens the camera.
import { fetchJSON } from "./fetch.js";

const mapDiv = document.getElementById("map");
const COUNT_COLOURS = [
  [0, "#2c7bb6"],
  [0.25, "#abd9e9"],
  [0.5, "#ffffbf"],
  [0.75, "#fdae61"],
  [1, "#d7191c"],
];

async function drawMap() {
  const data = await fetchJSON(mapDiv.dataset.url);
  if (!data.cameras.length) {
    mapDiv.textContent = data.plan
      ? "No camera has a position on this plan yet (plan x and y, in the admin)."
      : "No camera has a latitude and longitude yet (set them in the admin).";
    return;
  }
  const counts = data.cameras.map((c) => (c.count === null ? 0 : c.count));
  const trace = {
    type: "scatter",
    mode: "markers+text",
    x: data.cameras.map((c) => c.x),
    y: data.cameras.map((c) => c.y),
    text: data.cameras.map((c) => c.name),
    textposition: "top center",
    customdata: data.cameras.map((c) => c.url),
    hovertext: data.cameras.map(
      (c) =>
        `${c.name}${c.site ? ` (${c.site})` : ""}<br>` +
        `${c.count === null ? "no count yet" : `${c.count.toFixed(0)} people`} · ${c.state}` +
        `${c.open_alerts ? `<br>${c.open_alerts} open alert(s)` : ""}`,
    ),
    hoverinfo: "text",
    marker: {
      size: 22,
      color: counts,
      cmin: 0,
      cmax: Math.max(...counts, ...data.cameras.map((c) => c.threshold || 0), 1),
      colorscale: COUNT_COLOURS,
      showscale: true,
      colorbar: { title: { text: "people in view" } },
      line: {
        width: data.cameras.map((c) => (c.state === "live" ? 1 : 4)),
        color: data.cameras.map((c) => (c.state === "live" ? "#333" : "#888")),
      },
    },
  };
  const layout = { margin: { l: 80, r: 10, t: 10, b: 50 }, height: 560, hovermode: "closest", showlegend: false };
  if (data.plan) {
    layout.images = [
      {
        source: data.plan.url,
        xref: "x",
        yref: "y",
        x: 0,
        y: 0,
        sizex: data.plan.width,
        sizey: data.plan.height,
        sizing: "stretch",
        layer: "below",
      },
    ];
    layout.xaxis = { range: [0, data.plan.width], visible: false };
    layout.yaxis = { range: [data.plan.height, 0], visible: false, scaleanchor: "x" };
  } else {
    const pad = 0.002;
    const xs = trace.x,
      ys = trace.y;
    layout.xaxis = { title: { text: "longitude" }, range: [Math.min(...xs) - pad, Math.max(...xs) + pad] };
    // Equirectangular at the fleet's latitude: a degree of longitude is cos(latitude) of a degree of latitude.
    const meanLatitude = ys.reduce((a, b) => a + b, 0) / ys.length;
    layout.yaxis = {
      title: { text: "latitude" },
      range: [Math.min(...ys) - pad, Math.max(...ys) + pad],
      scaleanchor: "x",
      scaleratio: 1 / Math.cos((meanLatitude * Math.PI) / 180),
    };
  }
  await Plotly.react(mapDiv, [trace], layout, { displaylogo: false, responsive: true });
  mapDiv.classList.remove("live-failed");
  if (!mapDiv.dataset.clickBound) {
    mapDiv.on("plotly_click", (event) => {
      window.location.href = event.points[0].customdata;
    });
    mapDiv.dataset.clickBound = "1";
  }
}

drawMap().catch((error) => {
  mapDiv.textContent = `Could not draw the map: ${error.message}`;
});
setInterval(() => {
  if (!document.hidden) drawMap().catch(() => mapDiv.classList.add("live-failed"));
}, 10000);
