"""Headless Chromium (Debian's chromium + chromium-driver, driven by selenium) for the
frontend tests: the real ComfyUI frontend served by the test host, console messages kept.

Nothing is downloaded: selenium is pointed at the system chromedriver and browser. A missing
browser is a test failure that says what to install (CI installs it: scripts/setup_env.sh).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1600,1200", "--force-device-scale-factor=1",
)
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")
APP_READY_TIMEOUT_S = 90.0


def _which(names) -> str | None:
    for name in names:
        found = shutil.which(name) or (name if os.path.isfile(name) and os.access(name, os.X_OK) else None)
        if found:
            return found
    return None


@contextmanager
def headless_chromium() -> Iterator["object"]:
    """A selenium Chrome driver on the system Chromium, with a fresh profile folder."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed: run scripts/setup_env.sh (pip install -r requirements-dev.txt)")
    browser, driver_path = _which(BROWSERS), _which(DRIVERS)
    if not browser or not driver_path:
        pytest.fail("headless Chromium is needed for the frontend tests: "
                    "apt-get install -y chromium chromium-driver (scripts/setup_env.sh does it)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never fetch a driver or browser
    profile = tempfile.mkdtemp(prefix="factorportrait-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition: Callable[[], object], timeout: float, what: str, poll_s: float = 0.2):
    """Poll ``condition()`` until it is truthy; return it, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception as e:  # the page may be navigating or still starting
            value, last = None, e
        else:
            last = None
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}" + (f" (last error: {last})" if last else ""))
        time.sleep(poll_s)


def open_frontend(driver, url: str) -> None:
    """Load the ComfyUI frontend and wait until its app and our extensions are registered."""
    driver.get(url)
    # Extensions register before the node definitions: wait for both (and the graph).
    wait_for(lambda: driver.execute_script(
        "const app = window.comfyAPI?.app?.app ?? window.app;"
        "const LG = window.LiteGraph ?? window.comfyAPI?.litegraph?.LiteGraph;"
        "return Boolean(app?.graph && LG?.registered_node_types?.FactorPortraitCameraTrajectory && "
        "(app.extensions ?? []).some(e => e.name === 'FactorPortrait.CameraPreview'));"),
        APP_READY_TIMEOUT_S, "the ComfyUI frontend, the pack's node types and its extensions")
    _wait_until_graph_settles(driver)


GRAPH_SETTLE_S = 1.0  # the start-up graph (default or restored workflow) unchanged this long
GRAPH_SETTLE_TIMEOUT_S = 15.0


def _wait_until_graph_settles(driver) -> None:
    """Wait until the frontend has put its start-up graph in place (the default graph, or
    the workflow it restores after a reload), so a test's own graph is not replaced by it."""
    signature = ("const app = window.comfyAPI.app.app;"
                 "return app.graph.nodes.length ? app.graph.nodes.map(n => n.id + ':' + n.type).join(',') : null;")
    deadline, last, since = time.monotonic() + GRAPH_SETTLE_TIMEOUT_S, None, time.monotonic()
    while time.monotonic() < deadline:
        current = driver.execute_script(signature)
        if current != last:
            last, since = current, time.monotonic()
        elif current is not None and time.monotonic() - since >= GRAPH_SETTLE_S:
            return
        time.sleep(0.2)


def console_errors(driver) -> list[str]:
    """Console messages of level SEVERE since the last call (selenium drains the log)."""
    return [f"{e.get('source')}: {e.get('message')}" for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def save_screenshot(driver, folder: Path, name: str, node_id: int | None = None) -> Path:
    """Save the window as ``folder/name.png``, or only the node ``node_id`` (title included)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    if node_id is not None:
        box = run_js(driver, """
            const node = app.graph.getNodeById(args[0]), ds = app.canvas.ds;
            const LG = window.LiteGraph ?? window.comfyAPI?.litegraph?.LiteGraph;
            const title = LG?.NODE_TITLE_HEIGHT ?? 30, rect = app.canvas.canvas.getBoundingClientRect();
            const [x, y] = ds.convertOffsetToCanvas([node.pos[0], node.pos[1] - title]);
            return [rect.left + x, rect.top + y, node.size[0] * ds.scale, (node.size[1] + title) * ds.scale];""", node_id)
        from PIL import Image

        with Image.open(path) as im:
            left, top, width, height = (round(v) for v in box)
            pad = 6
            im.crop((max(0, left - pad), max(0, top - pad), min(im.width, left + width + pad),
                     min(im.height, top + height + pad))).save(path)
    return path


# -- the page ----------------------------------------------------------------------------
# Console errors that come from running the frontend offline on a fresh user folder, not
# from the pack: the frontend asks api.comfy.org about node packs (blocked by its own CSP,
# no network) and reads user files that a new user does not have yet.
OFFLINE_NOISE = (
    "api.comfy.org",
    "/api/userdata",
    "/user.css",
    "/favicon.ico",
)
# No templates dialog and no minimap over the graph (screenshots).
FIRST_RUN_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False}


def offline_noise(message: str) -> bool:
    return any(token in message for token in OFFLINE_NOISE)


def artifacts_dir() -> Path:
    """Where screenshots are kept (CI keeps them as artefacts): $FACTORPORTRAIT_TEST_ARTIFACTS
    or output/test-artifacts/frontend in the checkout (git-ignored)."""
    default = Path(__file__).resolve().parents[2] / "output" / "test-artifacts" / "frontend"
    return Path(os.environ.get("FACTORPORTRAIT_TEST_ARTIFACTS", default))


@contextmanager
def frontend_page(comfy) -> Iterator["object"]:
    """Headless Chromium on the test host's frontend, ready, its start-up messages drained
    (``driver.startup_errors`` keeps the non-noise ones)."""
    comfy.post("/api/settings", FIRST_RUN_SETTINGS)
    with headless_chromium() as driver:
        open_frontend(driver, comfy.url)
        driver.startup_errors = [e for e in console_errors(driver) if not offline_noise(e)]
        yield driver


def run_js(driver, body: str, *args):
    """Run ``body`` as an async function of ``args`` with ``app`` (the ComfyUI app) and
    ``pack(name)`` (imports one of the pack's js/lib modules) in scope; return its value."""
    script = (
        "const done = arguments[arguments.length - 1];"
        "const args = Array.from(arguments).slice(0, -1);"
        "const app = window.comfyAPI.app.app;"
        "const pack = (name) => import('/extensions/ComfyUI-FactorPortrait/lib/' + name);"
        f"(async (...args) => {{ {body} }})(...args)"
        ".then(value => done({ok: value === undefined ? null : value}),"
        "      error => done({error: String((error && error.stack) || error)}));"
    )
    answer = driver.execute_async_script(script, *args)
    if "error" in answer:
        raise JavaScriptError(f"JavaScript failed in the page: {answer['error']}")
    return answer["ok"]


class JavaScriptError(AssertionError):
    """A script run in the page threw (an ordinary exception: ``wait_for`` polls on)."""


def load_graph(driver, workflow: dict) -> None:
    """Load a UI workflow as dropping its file would, then let the previews draw."""
    run_js(driver, "await app.loadGraphData(args[0]); await new Promise(r => setTimeout(r, 600));", workflow)


def show_node(driver, node_id) -> None:
    """Scroll the graph so the node sits near the top left of the window, at 100 % zoom."""
    run_js(driver, """
        const node = app.graph.getNodeById(args[0]);
        app.canvas.ds.scale = 1;
        app.canvas.ds.offset = [-node.pos[0] + 320, -node.pos[1] + 170];  // clear of the floating tab bar
        app.canvas.setDirty(true, true);
        await new Promise(r => setTimeout(r, 500));""", node_id)


def canvas_state(page, node_id: int) -> dict:
    """The preview canvas of a node: a hash of its pixels and the count of path pixels
    (blue-to-red, never grey, green or the orange of the current frame)."""
    return run_js(page, """
        const canvas = app.graph.getNodeById(args[0]).factorPortraitPreview.canvas;
        const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
        let path = 0, hash = 0;
        for (let i = 0; i < data.length; i += 4) {
          const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
          if (g < 100 && Math.max(r, b) > 120) path++;
          hash = (hash * 31 + r + 7 * g + 13 * b) >>> 0;
        }
        return {path, hash, width: canvas.width, height: canvas.height};""", node_id)


def new_graph(page, types: list[str], links: tuple[tuple[int, int, int, int], ...] = ()) -> list[int]:
    """Replace the graph by new nodes of ``types`` (left to right) joined by ``links``
    (from node index, output slot, to node index, input slot); returns their ids once they
    have stayed in the graph for a moment (the frontend is not replacing it)."""
    return wait_for(lambda: run_js(page, """
        const LG = window.LiteGraph ?? window.comfyAPI?.litegraph?.LiteGraph;
        app.graph.clear();
        const nodes = args[0].map((type, i) => {
          const node = LG.createNode(type);
          node.pos = [100 + 500 * i, 100];
          app.graph.add(node);
          return node;
        });
        for (const [a, out, b, input] of args[1]) nodes[a].connect(out, nodes[b], input);
        await new Promise(r => setTimeout(r, 600));
        return nodes.every(n => app.graph.getNodeById(n.id) === n) ? nodes.map(n => n.id) : null;""",
        types, [list(link) for link in links]), 20, f"a new graph of {types}")


def add_trajectory_graph(page) -> list[int]:
    """A fresh graph: Camera Trajectory -> Save Camera Trajectory; returns their ids."""
    return new_graph(page, ["FactorPortraitCameraTrajectory", "FactorPortraitSaveCameraTrajectory"], ((0, 0, 1, 0),))


def set_widget(page, node_id: int, name: str, value) -> None:
    """Change a widget as the user does: its value, then its callback."""
    run_js(page, """
        const node = app.graph.getNodeById(args[0]);
        const widget = node.widgets.find(w => w.name === args[1]);
        widget.value = args[2];
        widget.callback?.(args[2], app.canvas, node);
        app.canvas.setDirty(true, true);""", node_id, name, value)
