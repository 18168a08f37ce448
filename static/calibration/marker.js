// Head marker: an SVG over one frame where the operator places head points. Points are kept in frame pixels;
// the view (zoom and pan) is the SVG's viewBox, so the browser's own screen-to-SVG transform converts clicks.
//
// Mouse: click on empty space adds a head, click on a point removes it, drag a point moves it; the wheel zooms
// around the cursor; dragging empty space pans, and so does dragging anywhere with the right or middle button,
// with Shift held, or with the space bar held (to pan across a crowd without grabbing its points).

const SVG_NS = "http://www.w3.org/2000/svg";
// Below this many screen pixels of movement a press is a click: hands shake a little when clicking.
const DRAG_THRESHOLD_PX = 4;
const POINT_RADIUS_PX = 6;
const MAX_ZOOM = 16;
const WHEEL_ZOOM_RATE = 0.002;

export class HeadMarker {
  // onChange(sheet) is called after every edit of the points, once a drag ends rather than on each move.
  constructor(svg, { onChange }) {
    this.svg = svg;
    this.onChange = onChange;
    this.image = svg.querySelector("image");
    this.layer = svg.querySelector(".points");
    this.sheet = null;
    this.view = { x: 0, y: 0, width: 1, height: 1 };
    this.gesture = null;
    this.spaceHeld = false;
    svg.addEventListener("pointerdown", (event) => this.pointerDown(event));
    svg.addEventListener("pointermove", (event) => this.pointerMove(event));
    svg.addEventListener("pointerup", (event) => this.pointerUp(event));
    svg.addEventListener("pointercancel", () => {
      this.gesture = null;
    });
    svg.addEventListener("wheel", (event) => this.wheel(event), { passive: false });
    svg.addEventListener("contextmenu", (event) => event.preventDefault());
    // A resized SVG changes how many frame pixels a screen pixel covers, hence the points' drawn radius.
    new ResizeObserver(() => this.drawPoints()).observe(svg);
  }

  // Shows a sheet: {width, height, imageUrl, points: [{x, y, proposed}], history: [earlier points arrays]}.
  // The sheet is edited in place, so its points and undo history outlive switching to another frame.
  show(sheet) {
    this.sheet = sheet;
    this.gesture = null;
    // The box takes the frame's shape, no wider than fits 78% of the window's height: no letterboxing, so the
    // frame fills the box and every click on it is on the frame.
    this.svg.style.aspectRatio = `${sheet.width} / ${sheet.height}`;
    this.svg.style.maxWidth = `calc(78vh * ${sheet.width / sheet.height})`;
    this.image.setAttribute("width", sheet.width);
    this.image.setAttribute("height", sheet.height);
    this.image.setAttribute("href", sheet.imageUrl);
    this.fit();
  }

  fit() {
    if (!this.sheet) return;
    this.view = { x: 0, y: 0, width: this.sheet.width, height: this.sheet.height };
    this.applyView();
  }

  // Zooms by `factor` (above 1: in) keeping `anchor` (frame pixels; the view's centre by default) where it is.
  zoom(factor, anchor) {
    if (!this.sheet) return;
    const { width: frameWidth, height: frameHeight } = this.sheet;
    const centre = anchor || { x: this.view.x + this.view.width / 2, y: this.view.y + this.view.height / 2 };
    const width = Math.min(Math.max(this.view.width / factor, frameWidth / MAX_ZOOM), frameWidth);
    const shrink = width / this.view.width;
    this.view = {
      x: centre.x - (centre.x - this.view.x) * shrink,
      y: centre.y - (centre.y - this.view.y) * shrink,
      width,
      height: (width * frameHeight) / frameWidth,
    };
    this.applyView();
  }

  undo() {
    if (!this.sheet?.history.length) return;
    this.sheet.points = this.sheet.history.pop();
    this.changed();
  }

  clear() {
    if (!this.sheet?.points.length) return;
    this.remember();
    this.sheet.points = [];
    this.changed();
  }

  setSpaceHeld(held) {
    this.spaceHeld = held;
    this.svg.classList.toggle("pan-ready", held);
  }

  // Keeps the view inside the frame, so the operator cannot lose the frame off screen.
  applyView() {
    const { width: frameWidth, height: frameHeight } = this.sheet;
    this.view.x = Math.min(Math.max(this.view.x, 0), frameWidth - this.view.width);
    this.view.y = Math.min(Math.max(this.view.y, 0), frameHeight - this.view.height);
    const { x, y, width, height } = this.view;
    this.svg.setAttribute("viewBox", `${x} ${y} ${width} ${height}`);
    this.svg.dataset.zoom = (frameWidth / width).toFixed(2);
    this.drawPoints();
  }

  drawPoints() {
    if (!this.sheet) return;
    const radius = POINT_RADIUS_PX / this.screenPixelsPerFramePixel();
    const circles = this.sheet.points.map((point, index) => {
      const circle = document.createElementNS(SVG_NS, "circle");
      circle.setAttribute("cx", point.x);
      circle.setAttribute("cy", point.y);
      circle.setAttribute("r", radius);
      circle.setAttribute("class", point.proposed ? "point proposed" : "point");
      circle.dataset.index = index;
      return circle;
    });
    this.layer.replaceChildren(...circles);
  }

  screenPixelsPerFramePixel() {
    const matrix = this.svg.getScreenCTM();
    return matrix && matrix.a > 0 ? matrix.a : 1;
  }

  toFrame(event) {
    const screen = new DOMPoint(event.clientX, event.clientY);
    return screen.matrixTransform(this.svg.getScreenCTM().inverse());
  }

  insideFrame({ x, y }) {
    return x >= 0 && y >= 0 && x < this.sheet.width && y < this.sheet.height;
  }

  clampToFrame({ x, y }) {
    // Just inside the far edges: a point on them would be outside the frame's pixels.
    return {
      x: Math.min(Math.max(x, 0), this.sheet.width - 0.1),
      y: Math.min(Math.max(y, 0), this.sheet.height - 0.1),
    };
  }

  remember() {
    this.sheet.history.push(this.sheet.points.map((point) => ({ ...point })));
  }

  changed() {
    this.drawPoints();
    this.onChange(this.sheet);
  }

  pointerDown(event) {
    if (!this.sheet || this.gesture) return;
    const pans = event.button === 1 || event.button === 2 || event.shiftKey || this.spaceHeld;
    if (!pans && event.button !== 0) return;
    const hit = event.target.closest ? event.target.closest("circle.point") : null;
    let kind = "empty";
    if (pans) kind = "pan";
    else if (hit) kind = "point";
    this.gesture = {
      kind,
      pointIndex: hit ? Number(hit.dataset.index) : null,
      circle: hit,
      startX: event.clientX,
      startY: event.clientY,
      startFrame: this.toFrame(event),
      startView: { ...this.view },
      scale: this.screenPixelsPerFramePixel(),
      moved: false,
    };
    this.svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  }

  pointerMove(event) {
    const gesture = this.gesture;
    if (!gesture) return;
    const dx = event.clientX - gesture.startX;
    const dy = event.clientY - gesture.startY;
    if (!gesture.moved && Math.hypot(dx, dy) < DRAG_THRESHOLD_PX) return;
    if (!gesture.moved && gesture.kind === "point") this.remember();
    gesture.moved = true;
    if (gesture.kind === "point") {
      const point = this.clampToFrame(this.toFrame(event));
      Object.assign(this.sheet.points[gesture.pointIndex], point, { proposed: false });
      gesture.circle.setAttribute("cx", point.x);
      gesture.circle.setAttribute("cy", point.y);
      gesture.circle.setAttribute("class", "point");
    } else {
      this.svg.classList.add("panning");
      this.view.x = gesture.startView.x - dx / gesture.scale;
      this.view.y = gesture.startView.y - dy / gesture.scale;
      this.applyView();
    }
  }

  pointerUp(event) {
    const gesture = this.gesture;
    if (!gesture) return;
    this.gesture = null;
    this.svg.classList.remove("panning");
    if (this.svg.hasPointerCapture(event.pointerId)) this.svg.releasePointerCapture(event.pointerId);
    if (gesture.kind === "point") {
      if (!gesture.moved) {
        this.remember();
        this.sheet.points.splice(gesture.pointIndex, 1);
      }
      this.changed();
    } else if (gesture.kind === "empty" && !gesture.moved && this.insideFrame(gesture.startFrame)) {
      this.remember();
      this.sheet.points.push({ x: gesture.startFrame.x, y: gesture.startFrame.y, proposed: false });
      this.changed();
    }
  }

  wheel(event) {
    if (!this.sheet) return;
    event.preventDefault();
    // Pixel, line or page deltas: only the direction and a rough size matter for zooming.
    const pixels = event.deltaMode === WheelEvent.DOM_DELTA_PIXEL ? event.deltaY : event.deltaY * 40;
    this.zoom(Math.exp(-pixels * WHEEL_ZOOM_RATE), this.toFrame(event));
  }
}
