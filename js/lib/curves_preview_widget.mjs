// SPDX-License-Identifier: GPL-3.0-or-later
// The expression curves shown in a node: a plot of the chosen channels over the frames and
// a text box that picks them (names or prefixes, e.g. "jaw, eyeBlink"; empty: the keyed or
// the most active channels), kept in the node's properties, never in its widget values.

import { chosenChannels, drawCurves } from "./curves_view.mjs";
import { el, fitCanvas, redrawOnResize, warn } from "./node_widgets.mjs";

export const CHANNELS_PROPERTY = "factorportrait_channels";

/** ``node.factorPortraitCurves`` (tests read it): ``show(data)`` draws curves data
 * ({labels, range, curves [channel][frame], named?, keyFrames?}). */
export class CurvesPreview {
  constructor(node) {
    this.node = node;
    this.data = null;
    this.message = null;
    this.canvas = el("canvas", { style: "width:100%;flex:1 1 auto;min-height:100px;border-radius:6px" });
    this.filter = el("input", { type: "text", placeholder: "channels, e.g. jaw, eyeBlink (empty: automatic)",
      style: "width:100%;box-sizing:border-box;background:#222;color:#ddd;border:1px solid #444;border-radius:4px;font:12px sans-serif;padding:2px 6px" });
    this.filter.value = node.properties?.[CHANNELS_PROPERTY] ?? "";
    this.filter.addEventListener("input", () => {
      if (node.properties) node.properties[CHANNELS_PROPERTY] = this.filter.value;
      this.render();
    });
    this.filter.addEventListener("keydown", (e) => e.stopPropagation()); // typing is not a graph shortcut
    this.element = el("div", { style: "display:flex;flex-direction:column;gap:4px;width:100%;height:100%" }, [this.canvas, this.filter]);
    this.resizeObserver = redrawOnResize(this.canvas, () => this.render());
  }

  /** The node was removed: stop watching the canvas. */
  dispose() { this.resizeObserver.disconnect(); }

  show(data, message = null) {
    this.data = data;
    this.message = message;
    this.render();
  }

  render() {
    try {
      this.draw();
    } catch (e) {
      warn("expression curves drawing failed", e);
    }
  }

  draw() {
    if (!this.canvas.isConnected) return;
    const { ctx, width, height } = fitCanvas(this.canvas);
    const channels = this.data ? chosenChannels(this.data, this.filter.value, this.data.named || []) : [];
    this.shownChannels = channels.map((c) => this.data.labels[c]);
    drawCurves(ctx, width, height, this.data, channels, this.message);
  }
}
