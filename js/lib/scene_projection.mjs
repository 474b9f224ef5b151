// SPDX-License-Identifier: GPL-3.0-or-later
// A small perspective "viewer" camera for drawing 3-D scenes on a 2-D canvas: the preview
// orbits a look-at point (drag to turn it), no WebGL needed, so it works on any machine,
// in any number of nodes, and in headless browsers without a GPU.

const RAD = Math.PI / 180;
const sub = (a, b) => [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const normalize = (a) => { const n = Math.hypot(...a) || 1; return a.map((x) => x / n); };

export class Viewer {
  constructor({ yaw = 35, pitch = 28, fov = 40 } = {}) {
    this.yaw = yaw;
    this.pitch = pitch;
    this.fov = fov;
    this.lookAt = [0, 0, 0];
    this.radius = 3;
  }

  /** Frame the points: look at their box centre; the distance is fitted to the canvas in setup(). */
  fit(points) {
    const lo = [0, 1, 2].map((i) => Math.min(...points.map((p) => p[i])));
    const hi = [0, 1, 2].map((i) => Math.max(...points.map((p) => p[i])));
    this.lookAt = lo.map((l, i) => (l + hi[i]) / 2);
    const extent = Math.max(...points.map((p) => Math.hypot(...sub(p, this.lookAt))), 0.2);
    this.radius = extent / Math.sin((this.fov * RAD) / 2);
    this.fitPoints = points;
  }

  /** Move closer or farther until the fitted points fill FILL of the canvas (a few steps:
   * apparent size goes nearly as 1 / distance). */
  fitToCanvas(width, height) {
    const FILL = 0.88;
    for (let step = 0; step < 4; step++) {
      this.place(width, height);
      const ratios = this.fitPoints.map((p) => {
        const q = this.project(p);
        return q ? Math.max(Math.abs(q[0] - this.cx) / this.cx, Math.abs(q[1] - this.cy) / this.cy) : 2;
      });
      this.radius *= Math.min(4, Math.max(0.25, Math.max(...ratios) / FILL));
    }
    this.fitPoints = null;
  }

  /** Set up the projection for a canvas of width x height pixels (fitting it first after fit()). */
  setup(width, height) {
    if (this.fitPoints) this.fitToCanvas(width, height);
    this.place(width, height);
  }

  place(width, height) {
    const p = this.pitch * RAD, y = this.yaw * RAD;
    const offset = [Math.cos(p) * Math.sin(y), Math.sin(p), Math.cos(p) * Math.cos(y)];
    this.eye = this.lookAt.map((l, i) => l + this.radius * offset[i]);
    this.forward = normalize(sub(this.lookAt, this.eye));
    this.right = normalize(cross(this.forward, [0, 1, 0]));
    this.up = cross(this.right, this.forward);
    this.cx = width / 2;
    this.cy = height / 2;
    this.f = Math.min(width, height) / 2 / Math.tan((this.fov * RAD) / 2);
  }

  /** Screen position [x, y] and depth of a world point, or null behind the viewer. */
  project(point) {
    const d = sub(point, this.eye), z = dot(d, this.forward);
    if (z < 1e-3) return null;
    return [this.cx + (this.f * dot(d, this.right)) / z, this.cy - (this.f * dot(d, this.up)) / z, z];
  }

  /** Depth of a world point along the viewing direction (larger is farther). */
  depth(point) { return dot(sub(point, this.eye), this.forward); }
}

/**
 * What a trajectory camera sees, in the same interface as Viewer (project, depth, eye, f):
 * OpenCV pinhole of ``cam`` ({center, rotation (camera-to-world), focal (fy/H),
 * pixelAspect, principal}) onto a ``width`` x ``height`` picture at (left, top).
 */
export class CameraProjector {
  constructor(cam, left, top, width, height) {
    this.cam = cam;
    this.eye = cam.center;
    this.left = left;
    this.top = top;
    this.width = width;
    this.height = height;
    this.f = cam.focal * height; // vertical focal length in pixels
  }

  /** The point in camera axes (x right, y down, z forward). */
  toCamera(point) {
    const d = sub(point, this.cam.center), R = this.cam.rotation;
    return [0, 1, 2].map((j) => R[0][j] * d[0] + R[1][j] * d[1] + R[2][j] * d[2]);
  }

  project(point) {
    const [x, y, z] = this.toCamera(point);
    if (z < 1e-3) return null;
    const fx = this.f * this.cam.pixelAspect; // pixel_aspect = fx / fy
    return [this.left + this.cam.principal[0] * this.width + (fx * x) / z,
      this.top + this.cam.principal[1] * this.height + (this.f * y) / z, z];
  }

  depth(point) { return this.toCamera(point)[2]; }
}
