// SPDX-License-Identifier: GPL-3.0-or-later
// Expression Keyframes in the browser: a port of models/expression/keyframes.py (the Python
// is the reference), so the node shows its curves while the JSON is typed.

import { interpolateKeys } from "./camera_path.mjs";

// models/body/anny_model.py:ARKIT_FACE_ACTIONS, in its order (a browser test compares them).
export const ARKIT_FACE_ACTIONS = [
  "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
  "cheekPuff", "cheekSquintLeft", "cheekSquintRight",
  "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft",
  "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
  "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
  "jawForward", "jawLeft", "jawOpen", "jawRight",
  "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight",
  "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft",
  "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower", "mouthRollUpper",
  "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
  "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
  "noseSneerLeft", "noseSneerRight", "tongueOut",
];

/** Channel indices a keyframe name sets (both sides for a side-less name). */
function actions(name) {
  const exact = ARKIT_FACE_ACTIONS.indexOf(name);
  if (exact >= 0) return [exact];
  const sides = ["Left", "Right"].map((s) => ARKIT_FACE_ACTIONS.indexOf(name + s)).filter((i) => i >= 0);
  if (sides.length) return sides;
  throw new Error(`unknown face action ${JSON.stringify(name)}`);
}

/**
 * Curves of the keyframes text: {labels, range, curves [channel][frame], named (channel
 * indices the keyframes name)}. Throws an Error with a readable message on bad input.
 */
export function expressionCurves(text, frames) {
  let data;
  try { data = JSON.parse(text); } catch (e) { throw new Error(`not valid JSON: ${e.message}`); }
  let interpolation = "smooth";
  if (data && typeof data === "object" && !Array.isArray(data)) {
    interpolation = "interpolation" in data ? data.interpolation : "smooth";
    data = data.keyframes;
  }
  if (!["smooth", "linear"].includes(interpolation)) throw new Error(`interpolation must be smooth or linear`);
  if (!Array.isArray(data) || !data.length) throw new Error("expected a non-empty list of keyframes");
  const positions = [], rows = [], named = new Set();
  let current = new Array(ARKIT_FACE_ACTIONS.length).fill(0);
  data.forEach((key, i) => {
    if (!key || typeof key !== "object" || !Number.isInteger(key.frame)) throw new Error(`keyframe ${i} needs an integer 'frame'`);
    if (key.frame < 0 || key.frame >= frames) throw new Error(`keyframe ${i}: frame ${key.frame} is outside 0..${frames - 1}`);
    if (positions.length && key.frame <= positions[positions.length - 1]) throw new Error(`keyframe ${i}: frames must strictly increase`);
    current = current.slice();
    for (const [name, value] of Object.entries(key)) {
      if (name === "frame") continue;
      if (typeof value !== "number" || !(value >= 0 && value <= 1)) throw new Error(`keyframe ${i}: ${name} must be a weight in 0..1`);
      for (const c of actions(name)) { current[c] = value; named.add(c); }
    }
    positions.push(key.frame);
    rows.push(current);
  });
  const perFrame = interpolateKeys(positions, rows, Array.from({ length: frames }, (_, f) => f), interpolation);
  const curves = ARKIT_FACE_ACTIONS.map((_, c) => perFrame.map((row) => Math.min(1, Math.max(0, row[c]))));
  return { labels: ARKIT_FACE_ACTIONS, range: [0, 1], curves, named: [...named].sort((a, b) => a - b), keyFrames: positions };
}
