"""The pack's extension on a newer ComfyUI frontend than the host pins (the static files of
comfyui-frontend-package NEWER_FRONTEND, installed by scripts/setup_env.sh into .host/):
every UI workflow loads with the previews and nothing logged by or about the pack, and the
camera preview draws and follows its widgets, also with its Vue-rendered nodes (Nodes 2.0). The newer frontend's own complaints about the
older backend (its jobs API, for one) are not the pack's and are not checked."""
from __future__ import annotations

import stat

import pytest
from comfy_host import default_python, running_comfyui
from devpack import ROOT

from .frontend_browser import (FIRST_RUN_SETTINGS, add_trajectory_graph, artifacts_dir, canvas_state, headless_chromium,
                               load_graph, open_frontend, run_js, save_screenshot, set_widget, show_node, wait_for)
from .helpers import load_json, ui_workflows

NEWER_FRONTEND = "1.58.1"  # as scripts/setup_env.sh
FRONTEND_DIR = ROOT / ".host" / f"frontend-{NEWER_FRONTEND}"


def pack_messages(driver) -> list[str]:
    """Console messages (any level) from the pack's files or naming it."""
    return [f"{e['level']}: {e['message']}" for e in driver.get_log("browser")
            if "/extensions/ComfyUI-FactorPortrait/" in e["message"] or "FactorPortrait" in e["message"]]


@pytest.fixture(scope="module")
def newer_page(tmp_path_factory):
    if not (FRONTEND_DIR / "index.html").is_file():
        pytest.fail(f"no frontend {NEWER_FRONTEND} at {FRONTEND_DIR}: run scripts/setup_env.sh")
    # running_comfyui starts `<python> main.py ...`: a wrapper adds the frontend's folder.
    wrapper = tmp_path_factory.mktemp("newer-frontend") / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{default_python()}" "$@" --front-end-root "{FRONTEND_DIR}"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    with running_comfyui(python=str(wrapper)) as comfy:
        comfy.post("/api/settings", FIRST_RUN_SETTINGS)
        with headless_chromium() as driver:
            open_frontend(driver, comfy.url)
            version = driver.execute_script("return window.__COMFYUI_FRONTEND_VERSION__ ?? null;")
            assert version == NEWER_FRONTEND, f"the server did not serve frontend {NEWER_FRONTEND} but {version}"
            driver.comfy = comfy
            yield driver


def test_workflows_load_on_the_newer_frontend(newer_page):
    assert not pack_messages(newer_page), "start-up"
    for path in ui_workflows():
        workflow = load_json(path)
        load_graph(newer_page, workflow)
        state = run_js(newer_page, """
            const LG = window.LiteGraph ?? window.comfyAPI?.litegraph?.LiteGraph;
            return {missing: app.graph.nodes.filter(n => !LG.registered_node_types[n.type]).map(n => n.type),
                    previews: app.graph.nodes.filter(n => n.factorPortraitPreview || n.factorPortraitCurves).length};""")
        assert state["missing"] == [], path.name
        assert state["previews"] == sum(n["type"] in (
            "FactorPortraitCameraTrajectory", "FactorPortraitLoadCameraTrajectory", "FactorPortraitExpressionKeyframes",
            "FactorPortraitExtractExpression") for n in workflow["nodes"]), path.name
        assert not pack_messages(newer_page), path.name


@pytest.mark.parametrize("vue_nodes", [False, True], ids=["litegraph nodes", "Vue nodes (Nodes 2.0)"])
def test_camera_preview_on_the_newer_frontend(newer_page, vue_nodes):
    newer_page.comfy.post("/api/settings", {"Comfy.VueNodes.Enabled": vue_nodes})
    open_frontend(newer_page, newer_page.comfy.url)  # reload with the setting
    node_id, _ = add_trajectory_graph(newer_page)
    show_node(newer_page, node_id)
    before = wait_for(lambda: (s := canvas_state(newer_page, node_id))["path"] > 200 and s, 20, "path pixels")
    set_widget(newer_page, node_id, "yaw_end", 150.0)
    wait_for(lambda: canvas_state(newer_page, node_id)["hash"] != before["hash"], 10, "a redraw after yaw_end changed")
    mode = "vue-nodes" if vue_nodes else "litegraph-nodes"
    save_screenshot(newer_page, artifacts_dir(), f"frontend-{NEWER_FRONTEND}-{mode}-camera-preview")
    assert not pack_messages(newer_page)
