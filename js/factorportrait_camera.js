// SPDX-License-Identifier: GPL-3.0-or-later
// FactorPortrait frontend: the camera path preview and keyframe editor on the nodes
// "Camera Trajectory" (live from its widgets) and "Load Camera Trajectory" (the chosen file,
// and the loaded path after a run). Everything fails soft: a problem logs a warning and the
// node keeps working without its preview.

import { app } from "../../scripts/app.js";
import { camerasFromW2c } from "./lib/camera_path.mjs";
import { CameraPreview } from "./lib/camera_preview_widget.mjs";
import { addPreviewWidget, chainMethod, warn, watchWidgets } from "./lib/node_widgets.mjs";

const TRAJECTORY_NODE = "FactorPortraitCameraTrajectory";
const LOAD_NODE = "FactorPortraitLoadCameraTrajectory";
const TRAJECTORY_WIDGETS = ["mode", "frames", "fov", "distance", "yaw", "pitch", "roll", "yaw_end", "pitch_end",
  "roll_end", "distance_end", "amplitude", "turns", "dolly_zoom", "easing", "keyframes"];
const PREVIEW_HEIGHT = 300;

function setUpTrajectory(node) {
  const preview = new CameraPreview(node, { editable: true });
  node.factorPortraitPreview = preview;
  chainMethod(node, "onRemoved", () => preview.dispose());
  if (!addPreviewWidget(node, "camera_preview", preview.element, PREVIEW_HEIGHT)) return;
  watchWidgets(node, TRAJECTORY_WIDGETS, (values) => preview.setWidgets(values));
}

/** The trajectory file of the combo value, read from the input folder (no run needed). */
async function fetchTrajectory(file) {
  const slash = file.lastIndexOf("/");
  const params = new URLSearchParams({ filename: file.slice(slash + 1), subfolder: slash < 0 ? "" : file.slice(0, slash), type: "input" });
  // The frontend's api object knows the server's base path; plain fetch of "api/..." otherwise.
  const api = window.comfyAPI?.api?.api;
  const response = api?.fetchApi ? await api.fetchApi(`/view?${params}`) : await fetch(`api/view?${params}`);
  if (!response.ok) throw new Error(`${file}: HTTP ${response.status}`);
  return response.json();
}

function setUpLoad(node) {
  const preview = new CameraPreview(node, { editable: false });
  node.factorPortraitPreview = preview;
  chainMethod(node, "onRemoved", () => preview.dispose());
  if (!addPreviewWidget(node, "camera_preview", preview.element, PREVIEW_HEIGHT)) return;
  let latest = 0; // a slow answer for a file chosen earlier must not replace a newer one
  watchWidgets(node, ["file"], async ({ file }) => {
    const request = ++latest;
    if (!file) return preview.setCameras([], "no trajectory file chosen");
    try {
      const cameras = camerasFromW2c((await fetchTrajectory(file)).frames);
      if (request === latest) preview.setCameras(cameras);
    } catch (e) {
      if (request === latest) preview.setCameras([], `could not read ${file}`);
      warn("could not preview the trajectory file", e);
    }
  });
  chainMethod(node, "onExecuted", (output) => {
    const loaded = output?.factorportrait_camera?.[0];
    if (loaded?.frames) preview.setCameras(camerasFromW2c(loaded.frames));
  });
}

app.registerExtension({
  name: "FactorPortrait.CameraPreview",
  nodeCreated(node) {
    const kind = node?.comfyClass;
    if (kind !== TRAJECTORY_NODE && kind !== LOAD_NODE) return;
    try {
      (kind === TRAJECTORY_NODE ? setUpTrajectory : setUpLoad)(node);
    } catch (e) {
      warn(`no camera preview on ${kind}`, e);
    }
  },
});
