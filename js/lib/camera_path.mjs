// SPDX-License-Identifier: GPL-3.0-or-later
// Camera paths of "FactorPortrait Camera Trajectory", computed in the browser from the
// node's widget values so the preview is live before anything runs.
//
// This is a line-for-line port of models/camera/paths.py, models/camera/interpolation.py and
// models/camera/trajectory.py:orbit_extrinsics (the Python is the reference; the browser tests compare
// both on the same widget values). Conventions (DESIGN.md): world +Y up, subject faces +Z,
// OpenCV camera axes (x right, y down, z forward), angles in degrees.

export const MODES = ["static frontal", "static novel view", "orbit", "spiral", "dolly",
  "pan/tilt arc", "keyframes"];
const INTERPOLATIONS = ["smooth", "linear"];
const KEY_FIELDS = new Set(["frame", "yaw", "pitch", "roll", "distance", "fov", "focal",
  "pixel_aspect", "principal", "target"]);
const FOV_RANGE = [1, 179];
const RAD = Math.PI / 180;

/** An error in the node's input, named as the Python node names it. */
export class PathInputError extends Error {
  constructor(input, message) {
    super(`${input}: ${message}`);
    this.input = input;
  }
}

export function focalFromFov(fov) { return 0.5 / Math.tan((fov * RAD) / 2); }
export function fovFromFocal(focal) { return (2 * Math.atan(0.5 / focal)) / RAD; }

/** A view as models.camera.paths.View: focal null means "from fov". */
export function makeView(fields = {}) {
  return { yaw: 0, pitch: 0, roll: 0, distance: 1.2, fov: 30, target: [0, 0, 0], focal: null,
    pixel_aspect: 1, principal: [0.5, 0.5], ...fields };
}

function focalLength(view) { return view.focal === null ? focalFromFov(view.fov) : view.focal; }

// The interpolated channels, in models.camera.paths._CHANNELS order.
function viewVector(v) {
  return [v.yaw, v.pitch, v.roll, v.distance, focalLength(v), ...v.target, v.pixel_aspect, ...v.principal];
}

const isNumber = (x) => typeof x === "number" && Number.isFinite(x);

function checkFov(fov, input) {
  if (!(fov > FOV_RANGE[0] && fov < FOV_RANGE[1])) {
    throw new PathInputError(input, `field of view ${fov} is outside (1°, 179°).`);
  }
}

function checkView(view, suffix = "") {
  for (const [name, value] of Object.entries(view)) {
    if (value === null) continue;
    const items = Array.isArray(value) ? value : [value];
    if (!items.every(isNumber)) throw new PathInputError(name + suffix, `must be a finite number, got ${JSON.stringify(value)}.`);
  }
  if (view.distance <= 0) throw new PathInputError("distance" + suffix, `must be positive (metres), got ${view.distance}.`);
  if (view.focal === null) checkFov(view.fov, "fov" + suffix);
  else if (view.focal <= 0) throw new PathInputError("focal" + suffix, `must be positive, got ${view.focal}.`);
  if (view.pixel_aspect <= 0) throw new PathInputError("pixel_aspect" + suffix, `must be positive, got ${view.pixel_aspect}.`);
}

/** Motion progress per frame, 0 -> 1 (trajectories.progress). */
export function progress(frames, easing = "linear") {
  const s = Array.from({ length: frames }, (_, i) => (frames > 1 ? i / (frames - 1) : 0));
  if (easing === "linear") return s;
  if (easing === "ease in-out") return s.map((x) => x * x * (3 - 2 * x));
  throw new PathInputError("easing", `unknown easing ${JSON.stringify(easing)}.`);
}

// -- monotone cubic (Fritsch-Carlson / pchip), as models/camera/interpolation.py -----------------
function pchipSlopes(h, delta) {
  const k = h.length + 1;
  if (k === 2) return [delta[0], delta[0]];
  const m = new Array(k);
  for (let i = 1; i < k - 1; i++) {
    const h0 = h[i - 1], h1 = h[i], d0 = delta[i - 1], d1 = delta[i];
    const w1 = 2 * h1 + h0, w2 = h1 + 2 * h0;
    m[i] = d0 * d1 > 0 ? (w1 + w2) / (w1 / d0 + w2 / d1) : 0;
  }
  const endSlope = (ha, hb, da, db) => {
    let s = ((2 * ha + hb) * da - ha * db) / (ha + hb);
    if (Math.sign(s) !== Math.sign(da)) s = 0;
    if (Math.sign(da) !== Math.sign(db) && Math.abs(s) > 3 * Math.abs(da)) s = 3 * da;
    return s;
  };
  m[0] = endSlope(h[0], h[1], delta[0], delta[1]);
  m[k - 1] = endSlope(h[k - 2], h[k - 3], delta[k - 2], delta[k - 3]);
  return m;
}

/** Interpolate keyed rows ``values [K][C]`` at ``xs``; held constant outside the keys. */
export function interpolateKeys(knots, values, xs, method = "smooth") {
  const K = knots.length, C = values[0].length;
  if (K === 1) return xs.map(() => values[0].slice());
  const h = knots.slice(1).map((k, i) => k - knots[i]);
  const slopes = [];
  for (let c = 0; c < C; c++) {
    const delta = h.map((hi, i) => (values[i + 1][c] - values[i][c]) / hi);
    slopes.push(method === "smooth" ? pchipSlopes(h, delta) : null);
  }
  return xs.map((x) => {
    const xc = Math.min(Math.max(x, knots[0]), knots[K - 1]);
    let seg = 0;
    while (seg < K - 2 && knots[seg + 1] <= xc) seg++;
    const hs = h[seg], t = (xc - knots[seg]) / hs, t2 = t * t, t3 = t2 * t;
    const row = new Array(C);
    for (let c = 0; c < C; c++) {
      const y0 = values[seg][c], y1 = values[seg + 1][c];
      if (method === "linear") row[c] = y0 + t * (y1 - y0);
      else {
        const m = slopes[c];
        row[c] = (2 * t3 - 3 * t2 + 1) * y0 + (t3 - 2 * t2 + t) * hs * m[seg]
          + (-2 * t3 + 3 * t2) * y1 + (t3 - t2) * hs * m[seg + 1];
      }
    }
    return row;
  });
}

// -- keyframes JSON (trajectories.parse_keyframes) --------------------------------------
const keyError = (i, msg) => new PathInputError("keyframes", `keyframe ${i}: ${msg}`);

/** Parse keyframe JSON: {frames: [int], views: [view], method, doc} (doc: the parsed JSON). */
export function parseKeyframes(text, frames, defaults = makeView()) {
  let doc;
  try { doc = JSON.parse(text); } catch (e) {
    throw new PathInputError("keyframes", `is not valid JSON (${e.message}).`);
  }
  let data = doc, method = "smooth";
  if (data && typeof data === "object" && !Array.isArray(data)) {
    const unknown = Object.keys(data).filter((k) => k !== "keyframes" && k !== "interpolation");
    if (unknown.length) throw new PathInputError("keyframes", `unknown top-level field(s) ${unknown}.`);
    method = "interpolation" in data ? data.interpolation : "smooth";
    if (!INTERPOLATIONS.includes(method)) throw new PathInputError("keyframes", `interpolation ${JSON.stringify(method)} is not smooth or linear.`);
    data = data.keyframes;
  }
  if (!Array.isArray(data) || data.length === 0) throw new PathInputError("keyframes", "must be a non-empty list of keyframe objects.");
  const keyFrames = [], views = [];
  let current = defaults;
  data.forEach((key, i) => {
    if (!key || typeof key !== "object" || Array.isArray(key)) throw keyError(i, "must be an object like {\"frame\": 0, \"yaw\": 10}.");
    const unknown = Object.keys(key).filter((k) => !KEY_FIELDS.has(k));
    if (unknown.length) throw keyError(i, `unknown field(s) ${unknown}.`);
    const frame = key.frame;
    if (!Number.isInteger(frame)) throw keyError(i, `'frame' must be a whole number, got ${JSON.stringify(frame)}.`);
    if (frame < 0 || frame >= frames) throw keyError(i, `frame ${frame} is outside the trajectory's frames 0..${frames - 1}.`);
    if (keyFrames.length && frame <= keyFrames[keyFrames.length - 1]) throw keyError(i, `frame ${frame} does not come after the previous keyframe's frame.`);
    const changes = { ...key };
    delete changes.frame;
    for (const [vec, n] of [["principal", 2], ["target", 3]]) {
      if (vec in changes && !(Array.isArray(changes[vec]) && changes[vec].length === n)) {
        throw keyError(i, `'${vec}' must be a list of ${n} numbers.`);
      }
    }
    if ("fov" in changes && "focal" in changes) throw keyError(i, "give either 'fov' or 'focal', not both.");
    if ("fov" in changes) changes.focal = null;
    current = { ...current, ...changes };
    try { checkView(current); } catch (e) { throw keyError(i, e.message); }
    keyFrames.push(frame);
    views.push(current);
  });
  return { frames: keyFrames, views, method, doc };
}

// -- cameras ------------------------------------------------------------------------------
const matMul = (a, b) => a.map((row) => [0, 1, 2].map((j) => row[0] * b[0][j] + row[1] * b[1][j] + row[2] * b[2][j]));
function rotation(axis, deg) {
  const c = Math.cos(deg * RAD), s = Math.sin(deg * RAD);
  if (axis === "x") return [[1, 0, 0], [0, c, -s], [0, s, c]];
  if (axis === "y") return [[c, 0, s], [0, 1, 0], [-s, 0, c]];
  return [[c, -s, 0], [s, c, 0], [0, 0, 1]];
}
const FRONTAL_C2W = [[1, 0, 0], [0, -1, 0], [0, 0, -1]]; // transpose of FRONTAL_W2C_ROTATION (symmetric)

/** One camera from orbit channels (camera.orbit_extrinsics): centre and camera-to-world rotation. */
function cameraFromChannels(ch) {
  const [yaw, pitch, roll, distance, focal, tx, ty, tz, pixelAspect, cx, cy] = ch;
  const orbit = matMul(rotation("y", yaw), rotation("x", -pitch));
  const rotation_c2w = matMul(matMul(orbit, FRONTAL_C2W), rotation("z", roll));
  const center = [0, 1, 2].map((r) => [tx, ty, tz][r] + orbit[r][2] * distance);
  return { center, rotation: rotation_c2w, focal, pixelAspect, principal: [cx, cy], target: [tx, ty, tz],
    yaw, pitch, roll, distance };
}

function blend(start, end, s) {
  checkView(start);
  checkView(end, "_end");
  const a = viewVector(start), b = viewVector(end);
  return s.map((x) => a.map((ai, c) => ai + x * (b[c] - ai)));
}

function checkFrames(frames) {
  if (!Number.isInteger(frames) || frames < 1) throw new PathInputError("frames", `must be a positive whole number, got ${frames}.`);
}

/** Per-frame orbit channels [F][11] of the node's widget values (CameraTrajectoryNode.execute). */
function channelsOf(w) {
  const frames = w.frames;
  checkFrames(frames);
  const frontal = makeView({ distance: w.distance, fov: w.fov });
  const start = { ...frontal, yaw: w.yaw, pitch: w.pitch, roll: w.roll };
  switch (w.mode) {
    case "static frontal": return blend(frontal, frontal, new Array(frames).fill(0));
    case "static novel view": return blend(start, start, new Array(frames).fill(0));
    case "orbit": return blend(start, { ...start, yaw: w.yaw_end }, progress(frames, w.easing));
    case "pan/tilt arc": return blend(start, { ...start, yaw: w.yaw_end, pitch: w.pitch_end, roll: w.roll_end,
      distance: w.distance_end }, progress(frames, w.easing));
    case "dolly": {
      const s = progress(frames, w.easing);
      const rows = blend(start, { ...start, distance: w.distance_end }, s);
      if (!w.dolly_zoom) return rows;
      // On-screen size of the subject ~ focal / distance: keep that ratio.
      const f0 = focalLength(start);
      rows.forEach((row, i) => { row[4] = (f0 * (start.distance + s[i] * (w.distance_end - start.distance))) / start.distance; });
      const fovEnd = fovFromFocal(rows[frames - 1][4]);
      if (!(fovEnd > FOV_RANGE[0] && fovEnd < FOV_RANGE[1])) {
        throw new PathInputError("distance_end", `a dolly zoom needs a field of view of ${fovEnd.toFixed(2)}° at the end, outside (1°, 179°).`);
      }
      return rows;
    }
    case "spiral": {
      const end = { ...start, distance: w.distance_end };
      checkView(start);
      checkView(end, "_end");
      const s = progress(frames);
      return s.map((x) => {
        const row = viewVector(start), theta = 2 * Math.PI * w.turns * x;
        row[0] += w.amplitude * Math.sin(theta);
        row[1] += w.amplitude * (1 - Math.cos(theta));
        row[3] += x * (end.distance - start.distance);
        return row;
      });
    }
    case "keyframes": {
      const keys = parseKeyframes(w.keyframes, frames, start);
      return interpolateKeys(keys.frames, keys.views.map(viewVector), Array.from({ length: frames }, (_, i) => i), keys.method);
    }
    default: throw new PathInputError("mode", `unknown mode ${JSON.stringify(w.mode)}.`);
  }
}

/** The camera path of the widget values: one camera per frame (centre, c2w rotation, focal...). */
export function cameraPath(widgets) {
  return channelsOf(widgets).map(cameraFromChannels);
}

/** The keyframes of keyframes mode as the parser reads them (null in other modes). */
export function keyframesOf(widgets) {
  if (widgets.mode !== "keyframes") return null;
  const frontal = makeView({ distance: widgets.distance, fov: widgets.fov });
  return parseKeyframes(widgets.keyframes, widgets.frames, { ...frontal, yaw: widgets.yaw, pitch: widgets.pitch, roll: widgets.roll });
}

/** Cameras of a saved trajectory (factorportrait-camera JSON rows: w2c, focal, ...). */
export function camerasFromW2c(rows) {
  return rows.map((r) => {
    const R = [0, 1, 2].map((i) => r.w2c[i].slice(0, 3)), t = [0, 1, 2].map((i) => r.w2c[i][3]);
    const rotation_c2w = [0, 1, 2].map((i) => [0, 1, 2].map((j) => R[j][i]));
    const center = [0, 1, 2].map((i) => -(rotation_c2w[i][0] * t[0] + rotation_c2w[i][1] * t[1] + rotation_c2w[i][2] * t[2]));
    return { center, rotation: rotation_c2w, focal: r.focal, pixelAspect: r.pixel_aspect ?? 1,
      principal: r.principal ?? [0.5, 0.5], target: null };
  });
}
