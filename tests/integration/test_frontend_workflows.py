"""The pack's frontend in the real ComfyUI frontend (1.32.9, headless Chromium): every UI
workflow of workflows/ loads with all node types known, no console errors, the previews on
the pack's nodes, and unchanged widget values (the previews are never saved)."""
from __future__ import annotations

import pytest

from .frontend_browser import artifacts_dir, console_errors, frontend_page, load_graph, offline_noise, run_js, save_screenshot, show_node
from .helpers import load_json, ui_workflows

PACK_PATH = "/extensions/ComfyUI-FactorPortrait/"
PREVIEWED = {  # node type -> the attribute its preview sets on the node
    "FactorPortraitCameraTrajectory": "factorPortraitPreview",
    "FactorPortraitLoadCameraTrajectory": "factorPortraitPreview",
    "FactorPortraitExpressionKeyframes": "factorPortraitCurves",
    "FactorPortraitExtractExpression": "factorPortraitCurves",
}


@pytest.fixture(scope="module")
def page(comfy):
    with frontend_page(comfy) as driver:
        yield driver


def test_extensions_load_without_errors(page):
    """Both extension files are served and registered; start-up logs nothing about the pack
    (the frontend's own start-up error on a fresh profile is not the pack's)."""
    names = run_js(page, "return app.extensions.map(e => e.name).filter(n => n.startsWith('FactorPortrait'));")
    assert sorted(names) == ["FactorPortrait.CameraPreview", "FactorPortrait.ExpressionCurves"]
    pack_errors = [e for e in page.startup_errors if PACK_PATH in e or "FactorPortrait" in e]
    assert not pack_errors, pack_errors
    served = run_js(page, "return (await (await fetch('/api/extensions')).json()).filter(p => p.includes('FactorPortrait'));")
    assert sorted(served) == [PACK_PATH + "factorportrait_camera.js", PACK_PATH + "factorportrait_expression.js"], (
        "only the two extension files may be .js (libraries are .mjs, never imported as extensions)")


@pytest.mark.parametrize("path", ui_workflows(), ids=lambda p: p.name)
def test_ui_workflow_loads_in_the_frontend(page, path):
    workflow = load_json(path)
    console_errors(page)  # drain
    load_graph(page, workflow)
    state = run_js(page, """
        const LG = window.LiteGraph ?? window.comfyAPI?.litegraph?.LiteGraph;
        const saved = app.graph.serialize();
        return {
          missing: app.graph.nodes.filter(n => !LG.registered_node_types[n.type]).map(n => n.type),
          count: app.graph.nodes.length,
          previews: app.graph.nodes.filter(n => n.factorPortraitPreview || n.factorPortraitCurves).map(n => [n.id, n.type]),
          values: Object.fromEntries(saved.nodes.map(n => [n.id, n.widgets_values ?? null])),
        };""")
    assert state["missing"] == [], f"{path.name}: node types unknown to the frontend: {state['missing']}"
    assert state["count"] == len(workflow["nodes"])
    expected_previews = sorted([n["id"], n["type"]] for n in workflow["nodes"] if n["type"] in PREVIEWED)
    assert sorted(state["previews"]) == expected_previews
    for node in workflow["nodes"]:
        if node["type"] in PREVIEWED:  # the previews add nothing to what is saved
            assert state["values"][str(node["id"])] == node["widgets_values"], f"{path.name}: node {node['id']}"
    errors = [e for e in console_errors(page) if not offline_noise(e)]
    assert not errors, f"{path.name}: console errors while loading:\n" + "\n".join(errors)
    if state["previews"]:
        show_node(page, state["previews"][0][0])
    save_screenshot(page, artifacts_dir(), f"workflow-{path.stem}")
