// SPDX-License-Identifier: GPL-3.0-or-later
// Expression curves drawn in a node: chosen channels over the frames, with a legend.

const PALETTE = ["#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#4db6ac", "#f06292",
  "#a1887f", "#90a4ae"];
const AUTO_CHANNELS = 6;
const LEGEND_WIDTH = 130;

/** Channel indices to show: the names or prefixes in ``filter`` (comma-separated), else ``fallback``,
 * else the AUTO_CHANNELS channels that move the most. */
export function chosenChannels(data, filter, fallback = []) {
  const wanted = String(filter || "").split(",").map((s) => s.trim().toLowerCase()).filter(Boolean);
  if (wanted.length) {
    return data.labels.map((l, i) => [l.toLowerCase(), i]).filter(([l]) => wanted.some((w) => l.startsWith(w))).map(([, i]) => i);
  }
  if (fallback.length) return fallback;
  const score = data.curves.map((c) => Math.max(...c) - Math.min(...c) + Math.max(...c.map(Math.abs)));
  return score.map((s, i) => [s, i]).filter(([s]) => s > 0).sort((a, b) => b[0] - a[0]).slice(0, AUTO_CHANNELS).map(([, i]) => i);
}

/** Draw ``channels`` of ``data`` ({labels, range, curves, keyFrames?}); ``message`` replaces the plot. */
export function drawCurves(ctx, width, height, data, channels, message = null) {
  ctx.fillStyle = "#1b1d22";
  ctx.fillRect(0, 0, width, height);
  ctx.font = "11px sans-serif";
  if (message || !data) {
    ctx.fillStyle = message ? "#ff6b6b" : "#aaa";
    ctx.fillText(message || "run the node to see its curves", 8, 16, width - 16);
    return;
  }
  const plotW = width - LEGEND_WIDTH, m = 10, frames = data.curves[0]?.length ?? 0;
  let [lo, hi] = data.range;
  if (!(hi - lo > 1e-6)) hi = lo + 1;
  const x = (f) => m + (frames > 1 ? (f / (frames - 1)) * (plotW - 2 * m) : 0);
  const y = (v) => height - m - ((v - lo) / (hi - lo)) * (height - 2 * m);
  ctx.strokeStyle = "#2e323a";
  ctx.lineWidth = 1;
  for (let q = 0; q <= 4; q++) {
    ctx.beginPath();
    ctx.moveTo(m, y(lo + (q * (hi - lo)) / 4));
    ctx.lineTo(plotW - m, y(lo + (q * (hi - lo)) / 4));
    ctx.stroke();
  }
  for (const f of data.keyFrames || []) { // keyframes as faint verticals
    ctx.strokeStyle = "#3a3f48";
    ctx.beginPath();
    ctx.moveTo(x(f), m);
    ctx.lineTo(x(f), height - m);
    ctx.stroke();
  }
  channels.forEach((c, k) => {
    const color = PALETTE[k % PALETTE.length];
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    data.curves[c].forEach((v, f) => (f ? ctx.lineTo(x(f), y(v)) : ctx.moveTo(x(f), y(v))));
    if (frames === 1) ctx.lineTo(plotW - m, y(data.curves[c][0])); // one frame (e.g. a reference image): a level
    ctx.stroke();
    if (k < 14) {
      ctx.fillStyle = color;
      ctx.fillRect(plotW + 2, m + 14 * k, 10, 10);
      ctx.fillStyle = "#d8dbe0";
      ctx.fillText(data.labels[c], plotW + 16, m + 9 + 14 * k, LEGEND_WIDTH - 18);
    }
  });
  ctx.fillStyle = "#888";
  ctx.fillText(`${frames} frames, ${lo}..${hi}`, m, height - 1);
}
