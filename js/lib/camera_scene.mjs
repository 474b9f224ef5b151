// SPDX-License-Identifier: GPL-3.0-or-later
// Draws a camera path around the subject: frustums along the path (blue first -> red last,
// the first green), the subject as a head-and-shoulders proxy, keyframes as rings (the
// selected one filled) and the scrubbed frame highlighted in orange, with what that camera
// sees in an inset (a square picture: the framing and the roll).

import { CameraProjector } from "./scene_projection.mjs";

export const COLORS = { background: "#1b1d22", grid: "#2e323a", body: "#9aa0a8", bodyEdge: "#50555c",
  first: "#3ad13a", current: "#ff9f1a", key: "#ffffff", selected: "#ffe14d", text: "#d8dbe0", error: "#ff6b6b" };
const FRUSTUM_DEPTH = 0.09; // metres: small enough not to hide the subject
const MAX_FRUSTUMS = 14;
const GRID_HEIGHT = -0.52; // metres: the floor under the proxy's torso

/** Path colour of frame i of n: blue -> red (never grey, so tests can find path pixels). */
export function pathColor(i, n) {
  const s = n > 1 ? i / (n - 1) : 0;
  return `rgb(${Math.round(40 + 215 * s)},${Math.round(90 - 40 * s)},${Math.round(255 - 215 * s)})`;
}

// Head-and-shoulders proxy in world metres (+Y up, facing +Z, head centre at the origin).
const HEAD = { center: [0, 0, 0], radius: 0.1 };
const FACE_MARKS = [[0, -0.01, 0.11], [-0.035, 0.025, 0.088], [0.035, 0.025, 0.088]]; // nose, eyes
function box(cx, cy, cz, sx, sy, sz) {
  const v = (dx, dy, dz) => [cx + dx * sx / 2, cy + dy * sy / 2, cz + dz * sz / 2];
  const quads = [[[-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], [[-1, -1, -1], [-1, 1, -1], [1, 1, -1], [1, -1, -1]],
    [[-1, 1, -1], [-1, 1, 1], [1, 1, 1], [1, 1, -1]], [[-1, -1, -1], [1, -1, -1], [1, -1, 1], [-1, -1, 1]],
    [[1, -1, -1], [1, 1, -1], [1, 1, 1], [1, -1, 1]], [[-1, -1, -1], [-1, -1, 1], [-1, 1, 1], [-1, 1, -1]]];
  return quads.map((q) => q.map((c) => v(...c)));
}
const BODY_FACES = [...box(0, -0.15, 0, 0.09, 0.1, 0.09), ...box(0, -0.27, 0, 0.42, 0.14, 0.2),
  ...box(0, -0.42, 0, 0.34, 0.18, 0.18)];

/** World corners of a camera's image plane at FRUSTUM_DEPTH (square image, roll visible). */
function frustumCorners(cam) {
  const fx = cam.focal * cam.pixelAspect, fy = cam.focal, [cx, cy] = cam.principal;
  const toWorld = (x, y) => [0, 1, 2].map((r) => cam.center[r]
    + FRUSTUM_DEPTH * (cam.rotation[r][0] * x + cam.rotation[r][1] * y + cam.rotation[r][2]));
  const corners = [[0, 0], [1, 0], [1, 1], [0, 1]].map(([u, v]) => toWorld((u - cx) / fx, (v - cy) / fy));
  const upTip = toWorld((0.5 - cx) / fx, (-0.25 - cy) / fy); // a tick above the top edge: "up"
  return { corners, upTip };
}

function strokePolyline(ctx, points, color, width) {
  const visible = points.filter(Boolean);
  if (visible.length < 2) return;
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.beginPath();
  visible.forEach((p, i) => (i ? ctx.lineTo(p[0], p[1]) : ctx.moveTo(p[0], p[1])));
  ctx.stroke();
}

function drawFrustum(ctx, viewer, cam, color, width) {
  const { corners, upTip } = frustumCorners(cam);
  const c = viewer.project(cam.center), k = corners.map((p) => viewer.project(p));
  if (!c || k.some((p) => !p)) return;
  for (const p of k) strokePolyline(ctx, [c, p], color, width);
  strokePolyline(ctx, [...k, k[0]], color, width);
  strokePolyline(ctx, [k[0], viewer.project(upTip), k[1]], color, width);
}

function drawGrid(ctx, viewer, y) {
  const lines = [];
  for (let i = -5; i <= 5; i++) {
    lines.push([[i * 0.3, y, -1.5], [i * 0.3, y, 1.5]], [[-1.5, y, i * 0.3], [1.5, y, i * 0.3]]);
  }
  for (const [a, b] of lines) strokePolyline(ctx, [viewer.project(a), viewer.project(b)], COLORS.grid, 1);
}

function drawSubject(ctx, viewer) {
  const faces = BODY_FACES.map((f) => ({ f, depth: f.reduce((s, p) => s + viewer.depth(p), 0) / 4 }))
    .sort((a, b) => b.depth - a.depth);
  for (const { f } of faces) {
    const p = f.map((q) => viewer.project(q));
    if (p.some((q) => !q)) continue;
    ctx.fillStyle = COLORS.body;
    ctx.strokeStyle = COLORS.bodyEdge;
    ctx.lineWidth = 1;
    ctx.beginPath();
    p.forEach((q, i) => (i ? ctx.lineTo(q[0], q[1]) : ctx.moveTo(q[0], q[1])));
    ctx.closePath();
    ctx.fill();
    ctx.stroke();
  }
  const c = viewer.project(HEAD.center);
  if (!c) return;
  const r = (viewer.f * HEAD.radius) / c[2];
  const shade = ctx.createRadialGradient(c[0] - r / 3, c[1] - r / 3, r / 6, c[0], c[1], r);
  shade.addColorStop(0, "#d9dde2");
  shade.addColorStop(1, "#7d838b");
  ctx.fillStyle = shade;
  ctx.beginPath();
  ctx.arc(c[0], c[1], r, 0, 2 * Math.PI);
  ctx.fill();
  for (const mark of FACE_MARKS) { // only the marks on the visible side of the head
    const toEye = viewer.eye.map((e, i) => e - mark[i]);
    if (toEye[0] * mark[0] + toEye[1] * mark[1] + toEye[2] * mark[2] <= 0) continue;
    const p = viewer.project(mark);
    ctx.fillStyle = "#30343a";
    ctx.beginPath();
    ctx.arc(p[0], p[1], Math.max(1.5, r * 0.12), 0, 2 * Math.PI);
    ctx.fill();
  }
}

const INSET_FRACTION = 0.3; // of the canvas's shorter side

/** The subject as the camera ``cam`` sees it, in a square inset at the top right. */
function drawCameraView(ctx, cam, width, height) {
  const size = Math.round(Math.min(width, height) * INSET_FRACTION), left = width - size - 6, top = 6;
  ctx.save();
  ctx.beginPath();
  ctx.rect(left, top, size, size);
  ctx.clip();
  ctx.fillStyle = "#111317";
  ctx.fillRect(left, top, size, size);
  const view = new CameraProjector(cam, left, top, size, size);
  drawGrid(ctx, view, GRID_HEIGHT);
  drawSubject(ctx, view);
  ctx.restore();
  ctx.strokeStyle = COLORS.current;
  ctx.lineWidth = 2;
  ctx.strokeRect(left, top, size, size);
}

/**
 * Draw the scene. ``state``: {cameras, keyFrames (frame indices), selectedKey (index into
 * keyFrames or -1), currentFrame, message (error text or null), caption}. Returns the screen
 * positions of the keyframes' cameras, for picking.
 */
export function drawCameraScene(ctx, viewer, width, height, state) {
  ctx.fillStyle = COLORS.background;
  ctx.fillRect(0, 0, width, height);
  const cams = state.cameras || [];
  viewer.setup(width, height);
  drawGrid(ctx, viewer, GRID_HEIGHT);
  const n = cams.length;
  const headDepth = viewer.depth(HEAD.center);
  const step = Math.max(1, Math.ceil(n / MAX_FRUSTUMS));
  const shown = new Set(Array.from({ length: n }, (_, i) => i).filter((i) => i % step === 0 || i === n - 1));
  const layers = [[], []]; // behind the subject, in front of it
  const pathPoints = cams.map((c) => viewer.project(c.center));
  for (let i = 0; i + 1 < n; i++) {
    const layer = viewer.depth(cams[i].center) > headDepth ? 0 : 1;
    layers[layer].push(() => strokePolyline(ctx, [pathPoints[i], pathPoints[i + 1]], pathColor(i, n), 3));
  }
  for (const i of shown) {
    const layer = viewer.depth(cams[i].center) > headDepth ? 0 : 1;
    layers[layer].push(() => drawFrustum(ctx, viewer, cams[i], i === 0 ? COLORS.first : pathColor(i, n), 1.5));
  }
  layers[0].forEach((draw) => draw());
  drawSubject(ctx, viewer);
  layers[1].forEach((draw) => draw());
  const keys = (state.keyFrames || []).map((frame, k) => {
    const p = cams[frame] && viewer.project(cams[frame].center);
    if (p) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = k === state.selectedKey ? COLORS.selected : COLORS.key;
      ctx.fillStyle = COLORS.selected;
      ctx.beginPath();
      ctx.arc(p[0], p[1], 6, 0, 2 * Math.PI);
      if (k === state.selectedKey) ctx.fill();
      ctx.stroke();
    }
    return p;
  });
  const current = cams[state.currentFrame];
  if (current) {
    drawFrustum(ctx, viewer, current, COLORS.current, 3);
    drawCameraView(ctx, current, width, height);
  }
  ctx.font = "12px sans-serif";
  ctx.fillStyle = state.message ? COLORS.error : COLORS.text;
  const lines = String(state.message || state.caption || "").split("\n");
  const textWidth = width - 24 - Math.min(width, height) * INSET_FRACTION; // clear of the inset
  lines.forEach((line, i) => ctx.fillText(line, 8, 16 + 14 * i, textWidth));
  return keys;
}
