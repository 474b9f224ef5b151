// SPDX-License-Identifier: GPL-3.0-or-later
// FactorPortrait frontend: expression curves in the nodes "Expression Keyframes" (live from
// its JSON, computed as the Python node does) and "Extract Expression" (the codes of the
// last run, sent by the node as ui data), with a text box that picks the channels (kept in
// the node's properties).

import { app } from "../../scripts/app.js";
import { CHANNELS_PROPERTY, CurvesPreview } from "./lib/curves_preview_widget.mjs";
import { expressionCurves } from "./lib/expression_keys.mjs";
import { addPreviewWidget, chainMethod, warn, watchWidgets } from "./lib/node_widgets.mjs";

const KEYFRAMES_NODE = "FactorPortraitExpressionKeyframes";
const EXTRACT_NODE = "FactorPortraitExtractExpression";
const CURVES_HEIGHT = 200;

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
