// Site page: the cameras' hourly means compared, the next hours' forecast, and each camera's usual level by weekday
// and hour as a heatmap. Every time arrives as the site's wall time ("2026-12-04 18:00"), which plotly draws as it is,
// so the charts read the same in any browser zone.

const figures = JSON.parse(document.getElementById("site-figures").textContent);
const config = { displaylogo: false, responsive: true };
const margin = { l: 50, r: 10, t: 10, b: 40 };

function lines(key) {
  return figures.cameras.map((camera) => ({
    type: "scatter",
    mode: "lines+markers",
    name: camera.name,
    x: camera[key].x,
    y: camera[key].y,
    connectgaps: false,
  }));
}

const compared = lines("compare");
Plotly.newPlot(
  "compare",
  compared,
  {
    margin,
    height: 320,
    xaxis: { type: "date" },
    yaxis: { title: { text: "people" }, rangemode: "tozero" },
    legend: { orientation: "h" },
  },
  config,
);
if (!compared.some((trace) => trace.x.length)) {
  document.getElementById("compare-note").textContent = "No counted frames in this range.";
}
Plotly.newPlot(
  "forecast",
  lines("forecast"),
  {
    margin,
    height: 280,
    xaxis: { type: "date" },
    yaxis: { title: { text: "people (forecast)" }, rangemode: "tozero" },
    legend: { orientation: "h" },
  },
  config,
);

const usual = document.getElementById("usual");
const hours = Array.from({ length: 24 }, (_, hour) => `${String(hour).padStart(2, "0")}:00`);
for (const camera of figures.cameras) {
  const heading = document.createElement("h3");
  heading.textContent = camera.name;
  const plot = document.createElement("div");
  plot.className = "plot usual-level";
  plot.dataset.camera = camera.id;
  usual.append(heading, plot);
  Plotly.newPlot(
    plot,
    [
      {
        type: "heatmap",
        x: hours,
        y: figures.weekdays,
        z: camera.usual,
        colorscale: "YlOrRd",
        reversescale: true,
        hoverongaps: false,
        colorbar: { title: { text: "people" } },
      },
    ],
    { margin: { ...margin, l: 90 }, height: 260, yaxis: { autorange: "reversed" } },
    config,
  );
}
