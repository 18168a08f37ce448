// Zone editor: clicks on the frame place the polygon's corners (in frame pixels); the form posts them as JSON.
// From the keyboard: on the focused frame the arrow keys move a cross (Shift: ten times as far), Enter or Space
// places a corner there, Backspace or Delete removes the last one.

const canvas = document.getElementById("zone-canvas");
const drawn = document.getElementById("drawn");
const corners = document.getElementById("corners");
const polygonInput = document.getElementById("polygon");
const cornerCount = document.getElementById("corner-count");
const [, , frameWidth, frameHeight] = canvas.getAttribute("viewBox").split(" ").map(Number);

let points = JSON.parse(polygonInput.value || "[]");

function render() {
  drawn.setAttribute("points", points.map(([x, y]) => `${x},${y}`).join(" "));
  corners.innerHTML = "";
  const radius = Math.max(frameWidth, frameHeight) / 150;
  for (const [x, y] of points) {
    const dot = document.createElementNS("http://www.w3.org/2000/svg", "circle");
    dot.setAttribute("cx", x);
    dot.setAttribute("cy", y);
    dot.setAttribute("r", radius);
    corners.appendChild(dot);
  }
  polygonInput.value = JSON.stringify(points);
  cornerCount.textContent =
    points.length < 3 ? `${points.length} corner(s): at least 3 needed` : `${points.length} corners`;
}

canvas.addEventListener("click", (event) => {
  // Screen to frame pixels through the SVG's own transform, so the zone lands where the operator clicked
  // whatever size the frame is drawn at.
  const screen = new DOMPoint(event.clientX, event.clientY);
  const frame = screen.matrixTransform(canvas.getScreenCTM().inverse());
  const x = Math.round(Math.min(Math.max(frame.x, 0), frameWidth));
  const y = Math.round(Math.min(Math.max(frame.y, 0), frameHeight));
  points.push([x, y]);
  render();
});

const cross = document.getElementById("cross");
let crossAt = [Math.round(frameWidth / 2), Math.round(frameHeight / 2)];
const MOVES = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };

function showCross() {
  const [x, y] = crossAt;
  const arm = Math.max(frameWidth, frameHeight) / 40;
  cross.setAttribute("d", `M${x - arm},${y}H${x + arm}M${x},${y - arm}V${y + arm}`);
}

canvas.addEventListener("keydown", (event) => {
  if (event.key in MOVES) {
    const step = Math.max(1, Math.round(Math.max(frameWidth, frameHeight) / (event.shiftKey ? 10 : 100)));
    const [dx, dy] = MOVES[event.key];
    crossAt = [
      Math.min(Math.max(crossAt[0] + dx * step, 0), frameWidth),
      Math.min(Math.max(crossAt[1] + dy * step, 0), frameHeight),
    ];
    showCross();
  } else if (event.key === "Enter" || event.key === " ") {
    points.push([...crossAt]);
    render();
  } else if (event.key === "Backspace" || event.key === "Delete") {
    points.pop();
    render();
  } else {
    return;
  }
  event.preventDefault();
});
canvas.addEventListener("focus", () => {
  showCross();
  cross.classList.add("shown");
});
canvas.addEventListener("blur", () => cross.classList.remove("shown"));

document.getElementById("undo").addEventListener("click", () => {
  points.pop();
  render();
});
document.getElementById("clear").addEventListener("click", () => {
  points = [];
  render();
});
document.getElementById("zone-form").addEventListener("submit", (event) => {
  if (points.length < 3) {
    event.preventDefault();
    cornerCount.textContent = "Click at least three corners on the frame first.";
  }
});

render();
