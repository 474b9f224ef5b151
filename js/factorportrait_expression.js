// SPDX-License-Identifier: GPL-3.0-or-later
// FactorPortrait frontend: expression curves in the nodes "Expression Keyframes" (live from
// its JSON, computed as the Python node does) and "Extract Expression" (the codes of the
// last run, sent by the node as ui data). A text box picks the channels (names or prefixes, e.g.
// "jaw, eyeBlink"; empty: the keyed or the most active channels); it is kept in the node's
// properties, never in its widget values.

import { app } from "../../scripts/app.js";
import { chosenChannels, drawCurves } from "./lib/curves_view.mjs";
import { expressionCurves } from "./lib/expression_keys.mjs";
import { addPreviewWidget, chainMethod, el, fitCanvas, redrawOnResize, warn, watchWidgets } from "./lib/node_widgets.mjs";

const KEYFRAMES_NODE = "FactorPortraitExpressionKeyframes";
const EXTRACT_NODE = "FactorPortraitExtractExpression";
const CURVES_HEIGHT = 200;
const CHANNELS_PROPERTY = "factorportrait_channels";

class CurvesPreview {
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

function setUp(node) {
  const preview = new CurvesPreview(node);
  node.factorPortraitCurves = preview;
  chainMethod(node, "onRemoved", () => preview.dispose());
  if (!addPreviewWidget(node, "expression_curves", preview.element, CURVES_HEIGHT)) return;
  chainMethod(node, "onConfigure", () => { // a loaded workflow brings its channel choice
    preview.filter.value = node.properties?.[CHANNELS_PROPERTY] ?? "";
    preview.render();
  });
  if (node.comfyClass === KEYFRAMES_NODE) {
    watchWidgets(node, ["frames", "keyframes"], ({ frames, keyframes }) => {
      try {
        preview.show(expressionCurves(keyframes ?? "", frames ?? 1));
      } catch (e) {
        preview.show(null, `keyframes: ${e.message}`);
      }
    });
  } else {
    preview.show(null);
    chainMethod(node, "onExecuted", (output) => {
      const data = output?.factorportrait_curves?.[0];
      if (data?.curves) preview.show(data);
    });
  }
}

app.registerExtension({
  name: "FactorPortrait.ExpressionCurves",
  nodeCreated(node) {
    if (node?.comfyClass !== KEYFRAMES_NODE && node?.comfyClass !== EXTRACT_NODE) return;
    try {
      setUp(node);
    } catch (e) {
      warn(`no expression curves on ${node.comfyClass}`, e);
    }
  },
});
