// SPDX-License-Identifier: GPL-3.0-or-later
// The 3-D camera preview of "FactorPortrait Camera Trajectory" (live, from the widgets) and
// "FactorPortrait Load Camera Trajectory" (the chosen file). In keyframes mode it is an
// editor: click a keyframe's ring to select it, drag it to change its yaw (left/right) and
// pitch (up/down), shift-drag (or the wheel over it) for its distance; "+ key" adds one at
// the scrubbed frame, "- key" deletes the selected one. Dragging elsewhere turns the view,
// the wheel elsewhere zooms it, a double click fits it again.

import { cameraPath, keyframesOf, PathInputError } from "./camera_path.mjs";
import { drawCameraScene } from "./camera_scene.mjs";
import { deleteKey, insertKey, setKeyValues } from "./keyframe_edits.mjs";
import { el, fitCanvas, redrawOnResize, setWidgetValue, warn } from "./node_widgets.mjs";
import { Viewer } from "./scene_projection.mjs";

const PICK_RADIUS = 10; // pixels
const DEGREES_PER_PIXEL = 0.5;
const DISTANCE_PER_PIXEL = 0.005; // metres
const PLAY_FPS = 15;
const VIEW_YAW = 35, VIEW_PITCH = 28; // degrees: the preview looks from the front right, above

const BUTTON_STYLE = "background:#333;color:#ddd;border:1px solid #555;border-radius:4px;padding:0 8px;height:22px;cursor:pointer";

/** Builds the element, its canvas and toolbar; ``node.factorPortraitPreview`` is its state (tests read it). */
export class CameraPreview {
  constructor(node, { editable }) {
    this.node = node;
    this.editable = editable;
    this.viewer = new Viewer({ yaw: VIEW_YAW, pitch: VIEW_PITCH });
    this.cameras = [];
    this.parsed = null; // keyframes as the parser reads them (keyframes mode only)
    this.selectedKey = -1;
    this.currentFrame = 0;
    this.message = null;
    this.widgets = null;
    this.autoFit = true; // fit the view to each new path until the user turns or zooms it
    this.canvas = el("canvas", { style: "width:100%;flex:1 1 auto;min-height:120px;border-radius:6px;touch-action:none" });
    this.scrubber = el("input", { type: "range", min: 0, max: 0, value: 0, title: "frame", style: "flex:1 1 auto;min-width:60px" });
    this.frameLabel = el("span", { style: "color:#ccc;font:12px sans-serif;min-width:64px;text-align:right" });
    this.addButton = el("button", { textContent: "+ key", title: "add a keyframe at this frame", style: BUTTON_STYLE });
    this.deleteButton = el("button", { textContent: "− key", title: "delete the selected keyframe", style: BUTTON_STYLE });
    this.playButton = el("button", { textContent: "▶", title: "play the path (15 frames per second)", style: BUTTON_STYLE });
    const toolbar = el("div", { style: "display:flex;gap:6px;align-items:center;height:26px" },
      editable ? [this.playButton, this.scrubber, this.frameLabel, this.addButton, this.deleteButton]
        : [this.playButton, this.scrubber, this.frameLabel]);
    this.element = el("div", { style: "display:flex;flex-direction:column;gap:4px;width:100%;height:100%" }, [this.canvas, toolbar]);
    this.scrubber.addEventListener("input", () => { this.currentFrame = Number(this.scrubber.value); this.render(); });
    this.playButton.addEventListener("click", () => this.togglePlay());
    this.addButton.addEventListener("click", () => this.addKey());
    this.deleteButton.addEventListener("click", () => this.deleteSelected());
    this.listenToPointer();
    this.resizeObserver = redrawOnResize(this.canvas, () => this.render());
  }

  /** The node was removed: stop watching the canvas and playing. */
  dispose() {
    this.resizeObserver.disconnect();
    clearInterval(this.playing);
  }

  /** Play the frames at the paper's 15 fps (looping), or stop. */
  togglePlay() {
    if (this.playing) {
      clearInterval(this.playing);
      this.playing = null;
    } else {
      this.playing = setInterval(() => {
        if (!this.cameras.length) return;
        this.currentFrame = (this.currentFrame + 1) % this.cameras.length;
        this.scrubber.value = this.currentFrame;
        this.render();
      }, 1000 / PLAY_FPS);
    }
    this.playButton.textContent = this.playing ? "❚❚" : "▶";
  }

  /** New widget values (Camera Trajectory): recompute the path exactly as the Python node does. */
  setWidgets(values) {
    this.widgets = values;
    try {
      this.cameras = cameraPath(values);
      this.parsed = keyframesOf(values);
      this.message = null;
    } catch (e) {
      if (!(e instanceof PathInputError)) throw e;
      this.cameras = [];
      this.parsed = null;
      this.message = `${e.message}`;
    }
    this.afterPathChange();
  }

  /** A loaded trajectory (Load Camera Trajectory): cameras only. */
  setCameras(cameras, message = null) {
    this.cameras = cameras;
    this.parsed = null;
    this.message = message;
    this.afterPathChange();
  }

  afterPathChange() {
    const n = this.cameras.length;
    if (this.parsed && this.selectedKey >= this.parsed.frames.length) this.selectedKey = -1;
    this.currentFrame = Math.min(this.currentFrame, Math.max(0, n - 1));
    this.scrubber.max = Math.max(0, n - 1);
    this.scrubber.value = this.currentFrame;
    if (n && this.autoFit && !this.dragging) {
      this.viewer.fit([...this.cameras.map((c) => c.center), [0, 0.12, 0], [0, -0.5, 0], [0.25, -0.3, 0], [-0.25, -0.3, 0]]);
    }
    this.render();
  }

  caption() {
    const cam = this.cameras[this.currentFrame];
    if (!cam) return "";
    const keyed = this.parsed ? (this.parsed.frames.includes(this.currentFrame) ? " (keyframe)" : "") : "";
    const angles = cam.yaw === undefined ? "" : `  yaw ${cam.yaw.toFixed(1)}°  pitch ${cam.pitch.toFixed(1)}°  distance ${cam.distance.toFixed(2)} m`;
    const relative = this.node.inputs?.some((i) => i.name === "reference_camera" && i.link != null)
      ? "\nangles relative to the reference camera (its distance and lens apply when run)" : "";
    return `frame ${this.currentFrame}${keyed}${angles}${relative}`;
  }

  render() {
    try {
      this.draw();
    } catch (e) {
      warn("camera preview drawing failed", e);
    }
  }

  draw() {
    if (!this.canvas.isConnected) return;
    const { ctx, width, height } = fitCanvas(this.canvas);
    this.keyScreen = drawCameraScene(ctx, this.viewer, width, height, {
      cameras: this.cameras, keyFrames: this.parsed?.frames ?? [], selectedKey: this.selectedKey,
      currentFrame: this.currentFrame, message: this.message, caption: this.caption(),
    });
    this.frameLabel.textContent = `${this.currentFrame} / ${Math.max(0, this.cameras.length - 1)}`;
    const editing = Boolean(this.parsed);
    this.addButton.disabled = !editing;
    this.deleteButton.disabled = !editing || this.selectedKey < 0 || this.parsed.frames.length < 2;
  }

  // -- editing ---------------------------------------------------------------------------
  writeKeyframes(text) {
    setWidgetValue(this.node, "keyframes", text);
    this.setWidgets({ ...this.widgets, keyframes: text });
  }

  addKey() {
    if (!this.parsed) return;
    const existing = this.parsed.frames.indexOf(this.currentFrame);
    if (existing >= 0) { this.selectedKey = existing; this.render(); return; }
    const cam = this.cameras[this.currentFrame];
    const [text, index] = insertKey(this.parsed, this.currentFrame, { yaw: cam.yaw, pitch: cam.pitch, distance: cam.distance });
    this.selectedKey = index;
    this.writeKeyframes(text);
  }

  deleteSelected() {
    if (!this.parsed || this.selectedKey < 0) return;
    const text = deleteKey(this.parsed, this.selectedKey);
    if (text === null) return;
    this.selectedKey = -1;
    this.writeKeyframes(text);
  }

  /** Move the selected keyframe by a drag of (dx, dy) pixels from its values at the drag start. */
  dragKey(start, dx, dy, changeDistance) {
    const values = changeDistance
      ? { distance: Math.max(0.05, start.distance + dy * DISTANCE_PER_PIXEL) }
      : { yaw: start.yaw + dx * DEGREES_PER_PIXEL, pitch: Math.max(-89, Math.min(89, start.pitch - dy * DEGREES_PER_PIXEL)) };
    this.writeKeyframes(setKeyValues(this.parsed, this.selectedKey, values));
  }

  pick(x, y) {
    let best = -1, bestDistance = PICK_RADIUS;
    (this.keyScreen || []).forEach((p, k) => {
      if (!p) return;
      const d = Math.hypot(p[0] - x, p[1] - y);
      if (d <= bestDistance) { best = k; bestDistance = d; }
    });
    return best;
  }

  listenToPointer() {
    const local = (e) => { const r = this.canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
    this.canvas.addEventListener("pointerdown", (e) => {
      e.stopPropagation(); // the graph canvas must not start dragging the node
      const [x, y] = local(e);
      const k = this.editable && this.parsed ? this.pick(x, y) : -1;
      if (k >= 0) {
        this.selectedKey = k;
        this.currentFrame = this.parsed.frames[k];
        this.scrubber.value = this.currentFrame;
      }
      const view = this.parsed?.views[k];
      this.dragging = { x, y, key: k, start: view && { yaw: view.yaw, pitch: view.pitch, distance: view.distance },
        viewYaw: this.viewer.yaw, viewPitch: this.viewer.pitch };
      this.canvas.setPointerCapture?.(e.pointerId);
      this.render();
    });
    this.canvas.addEventListener("pointermove", (e) => {
      const d = this.dragging;
      if (!d) return;
      e.stopPropagation();
      const [x, y] = local(e);
      try {
        if (d.key >= 0) this.dragKey(d.start, x - d.x, y - d.y, e.shiftKey);
        else {
          this.autoFit = false;
          this.viewer.yaw = d.viewYaw - (x - d.x) * DEGREES_PER_PIXEL;
          this.viewer.pitch = Math.max(-89, Math.min(89, d.viewPitch + (y - d.y) * DEGREES_PER_PIXEL));
          this.render();
        }
      } catch (err) { warn("keyframe drag failed", err); }
    });
    const end = () => { this.dragging = null; this.afterPathChange(); };
    this.canvas.addEventListener("pointerup", end);
    this.canvas.addEventListener("pointercancel", end);
    this.canvas.addEventListener("dblclick", (e) => { // back to the fitted view
      e.stopPropagation();
      this.viewer.yaw = VIEW_YAW;
      this.viewer.pitch = VIEW_PITCH;
      this.autoFit = true;
      this.afterPathChange();
    });
    this.canvas.addEventListener("wheel", (e) => { // over a keyframe: its distance; elsewhere: zoom
      const [x, y] = local(e);
      const k = this.editable && this.parsed ? this.pick(x, y) : -1;
      e.preventDefault();
      e.stopPropagation();
      if (k < 0) {
        this.autoFit = false;
        this.viewer.radius *= e.deltaY > 0 ? 1.1 : 1 / 1.1;
        this.render();
        return;
      }
      this.selectedKey = k;
      const view = this.parsed.views[k];
      this.writeKeyframes(setKeyValues(this.parsed, k, { distance: Math.max(0.05, view.distance * (e.deltaY > 0 ? 1.05 : 1 / 1.05)) }));
    }, { passive: false });
  }
}
