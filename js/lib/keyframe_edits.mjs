// SPDX-License-Identifier: GPL-3.0-or-later
// Edits of the Camera Trajectory "keyframes" JSON by the preview's editor. The editor never
// keeps keyframes of its own: it rewrites the widget's text and shows what the parser reads
// back from it, so the picture and the Python node always agree.
//
// Missing fields of a keyframe carry over from the previous one, so before a keyframe's
// field changes (or the keyframe is inserted before, or deleted) the next keyframe gets that
// field written out with its current value: the rest of the path stays where it was.

export const EDITED_FIELDS = ["yaw", "pitch", "distance"];
const round = (x, digits) => Number(x.toFixed(digits));
const PRECISION = { yaw: 1, pitch: 1, distance: 3 };

function keyList(doc) { return Array.isArray(doc) ? doc : doc.keyframes; }

/** Write field values of the key after ``k`` explicitly (its values as parsed: ``views``). */
function pinNext(keys, views, k, fields) {
  const next = keys[k + 1];
  if (!next) return;
  for (const f of fields) if (!(f in next)) next[f] = round(views[k + 1][f], PRECISION[f] ?? 4);
}

/** JSON text of the document, one keyframe per line (readable in the widget). */
export function formatKeyframes(doc) {
  const lines = keyList(doc).map((key) => " " + JSON.stringify(key).replace(/,"/g, ", \"").replace(/":/g, "\": "));
  const list = `[\n${lines.join(",\n")}]`;
  if (Array.isArray(doc)) return list;
  const head = Object.entries(doc).filter(([k]) => k !== "keyframes").map(([k, v]) => `"${k}": ${JSON.stringify(v)}, `).join("");
  return `{${head}"keyframes": ${list}}`;
}

/** Set yaw/pitch/distance of keyframe ``k``; ``parsed`` is parseKeyframes' result. */
export function setKeyValues(parsed, k, values) {
  const doc = structuredClone(parsed.doc), keys = keyList(doc);
  pinNext(keys, parsed.views, k, Object.keys(values));
  for (const [f, v] of Object.entries(values)) keys[k][f] = round(v, PRECISION[f] ?? 4);
  return formatKeyframes(doc);
}

/** Insert a keyframe at ``frame`` with ``values``; returns [text, its index]. */
export function insertKey(parsed, frame, values) {
  const doc = structuredClone(parsed.doc), keys = keyList(doc);
  const k = parsed.frames.findIndex((f) => f > frame);
  const at = k < 0 ? keys.length : k;
  pinNext(keys, parsed.views, at - 1, Object.keys(values)); // the key that will follow the new one
  const key = { frame };
  for (const [f, v] of Object.entries(values)) key[f] = round(v, PRECISION[f] ?? 4);
  keys.splice(at, 0, key);
  return [formatKeyframes(doc), at];
}

/** Delete keyframe ``k`` (not the last remaining one); the next key keeps its values. */
export function deleteKey(parsed, k) {
  const doc = structuredClone(parsed.doc), keys = keyList(doc);
  if (keys.length <= 1) return null;
  const carried = Object.keys(keys[k]).filter((f) => f !== "frame");
  const next = keys[k + 1];
  const exclusive = { fov: "focal", focal: "fov" }; // a key gives one of the two
  if (next) {
    for (const f of carried) {
      if (!(f in next) && !(exclusive[f] in next)) next[f] = structuredClone(parsed.views[k + 1][f]);
    }
  }
  keys.splice(k, 1);
  return formatKeyframes(doc);
}
