// SPDX-License-Identifier: GPL-3.0-or-later
// Fail-soft helpers around the ComfyUI frontend's node and widget API. Every call checks
// that the API it uses exists, so a newer frontend that renames something loses the
// preview, never the node.

const LOG_PREFIX = "[FactorPortrait]";

export function warn(message, error) {
  console.warn(`${LOG_PREFIX} ${message}`, error ?? "");
}

export function findWidget(node, name) {
  return (node.widgets || []).find((w) => w && w.name === name) || null;
}

/** The node's widget values by name (for the names given). */
export function widgetValues(node, names) {
  const values = {};
  for (const name of names) values[name] = findWidget(node, name)?.value;
  return values;
}

/** Set a widget's value as a user edit would: value, its callback, a redraw. */
export function setWidgetValue(node, name, value) {
  const widget = findWidget(node, name);
  if (!widget) return false;
  widget.value = value;
  try { widget.callback?.(value, node.graph?.canvas, node); } catch (e) { warn(`callback of ${name}`, e); }
  node.setDirtyCanvas?.(true, true);
  return true;
}

/** Call ``extra`` after ``object[method]`` (keeping the original), as extensions chain. */
export function chainMethod(object, method, extra) {
  const original = object[method];
  object[method] = function (...args) {
    const result = original?.apply(this, args);
    try { extra.apply(this, args); } catch (e) { warn(`${method} hook failed`, e); }
    return result;
  };
}

/**
 * Add ``element`` to the node as a DOM widget that is never saved in the workflow nor sent
 * with the prompt (it is the last widget, so widgets_values keep their meaning). Returns
 * the widget, or null where this frontend has no DOM widgets.
 */
export function addPreviewWidget(node, name, element, minHeight) {
  if (typeof node.addDOMWidget !== "function") {
    warn("this frontend has no addDOMWidget; no preview on the node");
    return null;
  }
  const widget = node.addDOMWidget(name, "factorportrait_preview", element, {
    serialize: false, hideOnZoom: false, getMinHeight: () => minHeight, getValue: () => undefined, setValue: () => {},
  });
  widget.serialize = false;
  fitNodeToWidgets(node);
  // A loaded workflow restores the node's saved size, which predates the preview: grow it.
  chainMethod(node, "onConfigure", () => requestAnimationFrame(() => fitNodeToWidgets(node)));
  return widget;
}

const MIN_NODE_WIDTH = 380;

/** Grow the node (never shrink it) so its widgets, the preview included, fit inside. */
export function fitNodeToWidgets(node) {
  const size = node.computeSize?.();
  if (!size || !node.size || !node.setSize) return;
  const width = Math.max(node.size[0], MIN_NODE_WIDTH), height = Math.max(node.size[1], size[1]);
  if (width !== node.size[0] || height !== node.size[1]) {
    node.setSize([width, height]);
    node.setDirtyCanvas?.(true, true);
  }
}

/**
 * Call ``onChange(values)`` whenever the named widgets' values change (checked a few times a
 * second: covers typing, converted widgets and graph loads alike); stops when the node is
 * removed.
 */
export function watchWidgets(node, names, onChange, periodMs = 200) {
  let last = null;
  const check = () => {
    const values = widgetValues(node, names);
    const signature = JSON.stringify(values);
    if (signature === last) return;
    last = signature;
    try { onChange(values); } catch (e) { warn("preview update failed", e); }
  };
  const timer = setInterval(check, periodMs);
  chainMethod(node, "onRemoved", () => clearInterval(timer));
  check();
  return { refresh: () => { last = null; check(); } };
}

/** Size the canvas's pixels to its on-screen size at the screen's density; returns its 2-D
 * context (drawing in CSS pixels) and that size. */
export function fitCanvas(canvas) {
  const width = Math.max(50, Math.floor(canvas.clientWidth || 320));
  const height = Math.max(50, Math.floor(canvas.clientHeight || 240));
  const scale = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * scale) || canvas.height !== Math.round(height * scale)) {
    canvas.width = Math.round(width * scale);
    canvas.height = Math.round(height * scale);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(scale, 0, 0, scale, 0, 0);
  return { ctx, width, height };
}

/** Redraw when the canvas changes size (the node is resized); ``.disconnect()`` stops it. */
export function redrawOnResize(canvas, render) {
  if (typeof ResizeObserver !== "function") return { disconnect() {} };
  const observer = new ResizeObserver(() => render());
  observer.observe(canvas);
  return observer;
}

/** A DOM element with properties (``style`` as CSS text) and children. */
export function el(tag, props = {}, children = []) {
  const element = document.createElement(tag);
  Object.assign(element, props);
  if (props.style) element.style.cssText = props.style;
  for (const child of children) element.append(child);
  return element;
}
