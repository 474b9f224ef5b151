"""Previews after a run and expression curves, in the real frontend (headless Chromium).

- Track Body Mesh, Render Normal Maps and the Sampler send an animated WebP preview
  (ComfyUI ``ui`` images in the temp folder): the main workflow's run has them with one
  picture per frame (per latent frame for the Sampler), and the frontend shows them on
  the nodes when the run's ``executed`` messages arrive.
- Expression Keyframes draws its curves live: the browser's curves equal the Python node's
  (sent with the run as ``ui`` data) to 5e-5 (the ui data is rounded to 4 decimals).
- Extract Expression draws the codes of its run.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from .frontend_browser import (artifacts_dir, console_errors, frontend_page, load_graph, new_graph, offline_noise, run_js,
                               save_screenshot, show_node, wait_for)
from .helpers import WORKFLOWS, load_json

CURVE_TOLERANCE = 5e-5
ANIMATED = {"FactorPortraitTrackBodyMesh": "overlay frames", "FactorPortraitRenderNormalMaps": "normal maps",
            "FactorPortraitSampler": "latent frames"}


@pytest.fixture(scope="module")
def page(comfy):
    with frontend_page(comfy) as driver:
        yield driver


def temp_preview(comfy, output: dict) -> Path:
    (item,) = output["images"]
    assert item["type"] == "temp" and item["filename"].endswith(".webp")
    return comfy.base_dir / "temp" / item["subfolder"] / item["filename"]


def deliver_outputs(page, outputs: dict) -> None:
    """Hand a run's node outputs to the frontend as its websocket handler does on each
    ``executed`` message (the api's ``executed`` event: output store, then node.onExecuted)."""
    run_js(page, """
        const { api } = window.comfyAPI.api;
        for (const [node, output] of Object.entries(args[0])) {
          api.dispatchCustomEvent('executed', { node, display_node: node, output, prompt_id: 'test' });
        }
        await new Promise(r => setTimeout(r, 800));""", outputs)


def test_animated_previews_after_a_run(page, comfy, run_workflow):
    run = run_workflow("animate_portrait_api.json")
    frames = None
    for node_type, what in ANIMATED.items():
        node_id = run.node_of(node_type)
        path = temp_preview(comfy, run.entry["outputs"][node_id])
        assert run.entry["outputs"][node_id]["animated"] == [True], node_type
        with Image.open(path) as im:
            assert im.is_animated and im.n_frames > 1, f"{node_type}: the preview of its {what} is not animated"
            if node_type == "FactorPortraitTrackBodyMesh":
                frames = im.n_frames
            elif node_type == "FactorPortraitRenderNormalMaps":
                assert im.n_frames == frames, "one normal map per tracked frame"
            else:
                assert im.n_frames == (frames - 1) // 4 + 1, "one picture per Wan latent frame"
    console_errors(page)
    load_graph(page, load_json(WORKFLOWS / "animate_portrait.json"))
    deliver_outputs(page, {k: v for k, v in run.entry["outputs"].items() if "images" in v})
    for node_type in ANIMATED:
        node_id = int(run.node_of(node_type))
        show_node(page, node_id)  # the frontend loads a node's images when it draws the node
        shown = wait_for(lambda: run_js(page, """
            const node = app.graph.getNodeById(args[0]);
            const imgs = [...(node.imgs ?? []), ...(node.widgets ?? []).flatMap(w =>
              w.element ? [w.element, ...w.element.querySelectorAll('img')].filter(e => e.tagName === 'IMG') : [])];
            return imgs.filter(i => i.complete && i.naturalWidth > 0).map(i => i.src);""", node_id), 20,
            f"the preview image on {node_type}")
        assert any(".webp" in src for src in shown), shown
        save_screenshot(page, artifacts_dir(), f"preview-after-run-{node_type}")
    assert not [e for e in console_errors(page) if not offline_noise(e)]


def test_arkit_names_match_the_python_model(page):
    from factorportrait.models.body.anny_model import ARKIT_FACE_ACTIONS

    names = run_js(page, "return (await pack('expression_keys.mjs')).ARKIT_FACE_ACTIONS;")
    assert names == list(ARKIT_FACE_ACTIONS)


def test_expression_keyframes_curves_equal_the_node(page, comfy):
    text = json.dumps({"interpolation": "smooth", "keyframes": [
        {"frame": 0, "jawOpen": 0.1}, {"frame": 7, "jawOpen": 0.9, "eyeBlink": 1.0, "mouthSmileLeft": 0.4},
        {"frame": 11, "eyeBlink": 0.0}, {"frame": 20, "jawOpen": 0.0, "browInnerUp": 0.7}]})
    entry = comfy.run({"k": {"class_type": "FactorPortraitExpressionKeyframes", "inputs": {"frames": 21, "keyframes": text}},
                       "p": {"class_type": "PreviewImage", "inputs": {"images": ["k", 1]}}})  # an output, so it runs
    python = entry["outputs"]["k"]["factorportrait_curves"][0]
    browser = run_js(page, "return (await pack('expression_keys.mjs')).expressionCurves(args[0], 21);", text)
    assert browser["labels"] == python["labels"]
    worst = max(abs(a - b) for pc, bc in zip(python["curves"], browser["curves"]) for a, b in zip(pc, bc))
    assert worst <= CURVE_TOLERANCE, f"browser and node curves differ by {worst}"
    assert [browser["labels"][c] for c in browser["named"]] == [
        "browInnerUp", "eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "mouthSmileLeft"]


def test_expression_curves_in_the_nodes(page, run_workflow):
    console_errors(page)
    (node_id,) = new_graph(page, ["FactorPortraitExpressionKeyframes"])
    show_node(page, node_id)
    shown = lambda: run_js(page, "return app.graph.getNodeById(args[0]).factorPortraitCurves.shownChannels;", node_id)
    assert wait_for(shown, 10, "curves of the example keyframes") == [
        "browInnerUp", "eyeBlinkLeft", "eyeBlinkRight", "jawOpen", "mouthSmileLeft", "mouthSmileRight"]
    run_js(page, """
        const node = app.graph.getNodeById(args[0]);
        const widget = node.widgets.find(w => w.name === 'keyframes');
        widget.value = '[{"frame": 0}, {"frame": 40, "cheekPuff": 0.8}]';""", node_id)
    wait_for(lambda: shown() == ["cheekPuff"], 10, "the curves to follow the edited keyframes")
    run_js(page, """
        const filter = app.graph.getNodeById(args[0]).factorPortraitCurves.filter;
        filter.value = 'jaw, cheek';
        filter.dispatchEvent(new Event('input'));""", node_id)
    assert shown() == ["cheekPuff", "cheekSquintLeft", "cheekSquintRight", "jawForward", "jawLeft", "jawOpen", "jawRight"]
    assert run_js(page, "return app.graph.getNodeById(args[0]).properties.factorportrait_channels;", node_id) == "jaw, cheek"
    save_screenshot(page, artifacts_dir(), "expression-keyframes-curves")
    # Extract Expression: the codes of the expression workflow's run.
    run = run_workflow("expression_api.json")
    ids = [k for k, v in run.prompt.items() if v["class_type"] == "FactorPortraitExtractExpression"]
    load_graph(page, load_json(WORKFLOWS / "expression.json"))
    deliver_outputs(page, {k: run.entry["outputs"][k] for k in ids})
    for k in ids:
        channels = wait_for(lambda: run_js(page, "return app.graph.getNodeById(args[0]).factorPortraitCurves.shownChannels;",
                                           int(k)), 10, f"curves on Extract Expression {k}")
        assert channels and all(c in run.entry["outputs"][k]["factorportrait_curves"][0]["labels"] for c in channels)
    show_node(page, int(ids[0]))
    save_screenshot(page, artifacts_dir(), "extract-expression-curves")
    assert not [e for e in console_errors(page) if not offline_noise(e)]
