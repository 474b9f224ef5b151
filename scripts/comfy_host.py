"""Start a real ComfyUI host with this pack installed, talk to it over HTTP, stop it.

Used by the integration tests and ``scripts/run_default.py``::

    from comfy_host import running_comfyui

    with running_comfyui() as comfy:
        prompt_id = comfy.queue(api_workflow)
        entry = comfy.wait(prompt_id, timeout=120)
        print(comfy.output_files(entry))

The server runs on the CPU from the host tree of :func:`devpack.comfyui_dir` (set up by
``scripts/setup_env.sh``), listens on a free loopback port, and keeps everything it writes
(input, output, temp, user folders, its database, model folders, custom_nodes) in a fresh
temporary base directory, never in the host tree. ``custom_nodes`` holds a symlink to this
checkout named ``ComfyUI-FactorPortrait``. The server is always stopped on leaving the
``with`` block, also on errors and Ctrl-C. Only the standard library is used, so any
Python 3 can run this file; the server itself runs with the checkout's ``.venv`` Python.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

sys.path.insert(0, str(Path(__file__).resolve().parent))

import devpack  # noqa: E402

PACK_FOLDER = "ComfyUI-FactorPortrait"
STARTUP_TIMEOUT_S = 180.0
STOP_TIMEOUT_S = 15.0
REQUEST_TIMEOUT_S = 60.0
LOG_TAIL_LINES = 60


class ComfyError(RuntimeError):
    """The ComfyUI host failed to start, refused a prompt, or a prompt failed."""


class PromptRejected(ComfyError):
    """``POST /prompt`` answered HTTP 400: ComfyUI's validation refused the prompt.

    ``body`` is ComfyUI's JSON answer (``{"error": {...}, "node_errors": {...}}``).
    """

    def __init__(self, message: str, body: dict):
        super().__init__(message)
        self.body = body


class ExecutionFailed(ComfyError):
    """A queued prompt ended with an error. ``node_id``/``node_type`` name the failed
    node and ``exception_message`` is the message it raised."""

    def __init__(self, message: str, node_id: str | None, node_type: str | None,
                 exception_message: str, entry: dict):
        super().__init__(message)
        self.node_id = node_id
        self.node_type = node_type
        self.exception_message = exception_message
        self.entry = entry


def default_python() -> str:
    """The checkout's venv Python (setup_env.sh), else the running interpreter."""
    venv = devpack.ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child (Linux): get SIGTERM when the thread that started us dies, so a
    killed test run never leaves a server behind (start it from a long-lived thread)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - not Linux / no glibc: best effort only
        pass


class ComfyClient:
    """HTTP client of one running ComfyUI server (standard library only)."""

    def __init__(self, url: str, base_dir: Path, log_path: Path, process: subprocess.Popen):
        self.url = url
        self.base_dir = base_dir
        self.input_dir = base_dir / "input"
        self.output_dir = base_dir / "output"
        self.log_path = log_path
        self.process = process

    # -- plain HTTP ---------------------------------------------------------------------
    def _request(self, method: str, path: str, body: dict | None = None,
                 timeout: float = REQUEST_TIMEOUT_S) -> dict:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
        return json.loads(raw) if raw.strip() else {}

    def get(self, path: str, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        return self._request("GET", path, timeout=timeout)

    def post(self, path: str, body: dict, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        return self._request("POST", path, body, timeout=timeout)

    # -- server state -------------------------------------------------------------------
    def log(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.process.poll()
        if code is not None:
            raise ComfyError(f"the ComfyUI server exited with code {code}. "
                             f"Last lines of its log:\n{self.log_tail()}")

    # -- API ----------------------------------------------------------------------------
    def object_info(self, node_type: str | None = None) -> dict:
        """``GET /object_info`` (every node) or ``/object_info/<node_type>`` (one node).

        Combo options (e.g. files in the input folder) are computed on each request."""
        if node_type is None:
            return self.get("/object_info")
        return self.get("/object_info/" + urllib.parse.quote(node_type, safe=""))[node_type]

    def queue(self, prompt: Mapping, extra_data: Mapping | None = None) -> str:
        """Queue an API-format workflow; returns its prompt id.

        Raises :class:`PromptRejected` when ComfyUI's validation refuses it (HTTP 400);
        the message lists every node error."""
        body: dict = {"prompt": dict(prompt)}
        if extra_data:
            body["extra_data"] = dict(extra_data)
        try:
            return self.post("/prompt", body)["prompt_id"]
        except urllib.error.HTTPError as e:
            text = e.read().decode("utf-8", errors="replace")
            try:
                answer = json.loads(text)
            except json.JSONDecodeError:
                raise ComfyError(f"POST /prompt answered HTTP {e.code}: {text}") from None
            raise PromptRejected(_describe_rejection(answer), answer) from None

    def wait(self, prompt_id: str, timeout: float = 120.0, poll_s: float = 0.25,
             on_poll: Callable[[], None] | None = None) -> dict:
        """Wait until the prompt has run; returns its ``/history`` entry. ``on_poll()`` runs
        at every poll (e.g. to show progress).

        Raises :class:`ExecutionFailed` with the failed node's message when the run ended
        with an error, :class:`ComfyError` when the server died, and :class:`TimeoutError`
        (after interrupting the run) when it takes longer than ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            # A prompt appears in the history once it has finished, successfully or not.
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if entry is not None:
                status = entry.get("status") or {}
                if status.get("status_str") == "error" or not status.get("completed", True):
                    raise _execution_failure(prompt_id, entry)
                return entry
            if on_poll is not None:
                on_poll()
            if time.monotonic() > deadline:
                self.interrupt()
                raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:g} s. "
                                   f"Last lines of the server log:\n{self.log_tail()}")
            time.sleep(poll_s)

    def run(self, prompt: Mapping, timeout: float = 120.0, extra_data: Mapping | None = None,
            on_poll: Callable[[], None] | None = None) -> dict:
        """:meth:`queue` then :meth:`wait`."""
        return self.wait(self.queue(prompt, extra_data), timeout, on_poll=on_poll)

    def interrupt(self) -> None:
        """Stop the running prompt and drop the pending ones (best effort)."""
        for path, body in (("/queue", {"clear": True}), ("/interrupt", {})):
            try:
                self.post(path, body, timeout=10)
            except (OSError, ValueError):
                pass

    def output_files(self, entry: dict) -> list[Path]:
        """Files a finished prompt wrote to the output folder, in node and batch order.

        Covers ComfyUI's ``images``/``gifs``/``video``/``audio`` entries of type ``output``
        and ``text`` entries that name a file in the output folder (FactorPortrait Save
        Camera Trajectory reports its .json that way)."""
        files: list[Path] = []
        for node_output in entry.get("outputs", {}).values():
            for key, items in node_output.items():
                for item in items if isinstance(items, list) else []:
                    if isinstance(item, dict) and item.get("type") == "output" and "filename" in item:
                        files.append(self.output_dir / item.get("subfolder", "") / item["filename"])
                    elif key == "text" and isinstance(item, str) and self._is_output_file(item):
                        files.append(self.output_dir / item)
        return files

    def _is_output_file(self, text: str) -> bool:
        """Whether a text output names a file in the output folder (texts may be long prose)."""
        if "\n" in text or len(text) > 1024:
            return False
        try:
            return (self.output_dir / text).is_file()
        except OSError:  # e.g. a name too long for the file system
            return False


def load_api_workflow(path: str | os.PathLike) -> tuple[dict, dict]:
    """An API-format workflow file and the ``extra_data`` to queue it with.

    When its UI-format twin exists (``x_api.json`` -> ``x.json``), the twin is passed as
    ``extra_pnginfo.workflow``, as the ComfyUI frontend does, so that saved PNGs carry the
    editable workflow and can be dropped back onto ComfyUI."""
    path = Path(path)
    prompt = json.loads(path.read_text(encoding="utf-8"))
    twin = path.with_name(path.name.removesuffix("_api.json") + ".json")
    extra: dict = {}
    if path.name.endswith("_api.json") and twin.is_file():
        extra["extra_pnginfo"] = {"workflow": json.loads(twin.read_text(encoding="utf-8"))}
    return prompt, extra


def _describe_rejection(answer: dict) -> str:
    error = answer.get("error") or {}
    lines = [f"ComfyUI refused the prompt: {error.get('message', error)} {error.get('details', '')}".rstrip()]
    for node_id, info in (answer.get("node_errors") or {}).items():
        for err in info.get("errors", []):
            lines.append(f"  node {node_id} ({info.get('class_type')}): {err.get('message')}: "
                         f"{err.get('details')}")
    return "\n".join(lines)


def _execution_failure(prompt_id: str, entry: dict) -> ExecutionFailed:
    for kind, data in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            message = data.get("exception_message", "").strip()
            return ExecutionFailed(
                f"node {data.get('node_id')} ({data.get('node_type')}) failed: {message}",
                data.get("node_id"), data.get("node_type"), message, entry)
        if kind == "execution_interrupted":
            return ExecutionFailed(f"prompt {prompt_id} was interrupted", data.get("node_id"),
                                   data.get("node_type"), "interrupted", entry)
    return ExecutionFailed(f"prompt {prompt_id} failed: {entry.get('status')}", None, None, "", entry)


def _stop(process: subprocess.Popen) -> None:
    """Terminate the server, kill it if it does not stop in time."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(STOP_TIMEOUT_S)


@contextmanager
def running_comfyui(custom_nodes: Mapping[str, str | os.PathLike] | None = None,
                    port: int | None = None, python: str | None = None,
                    startup_timeout: float = STARTUP_TIMEOUT_S) -> Iterator[ComfyClient]:
    """Run a ComfyUI server with ``custom_nodes`` (folder name -> path, default: this
    checkout as ``ComfyUI-FactorPortrait``) and yield a :class:`ComfyClient` for it."""
    comfy_dir = devpack.comfyui_dir()
    if not (comfy_dir / "main.py").is_file():
        raise ComfyError(f"no ComfyUI host at {comfy_dir}; run scripts/setup_env.sh "
                         "(or set FACTORPORTRAIT_COMFYUI to a ComfyUI checkout).")
    if custom_nodes is None:
        custom_nodes = {PACK_FOLDER: devpack.ROOT}
    port = port or free_port()
    base = Path(tempfile.mkdtemp(prefix="factorportrait-comfyui-"))
    process = None
    try:
        for sub in ("custom_nodes", "input", "output", "temp", "user"):
            (base / sub).mkdir()
        for name, path in custom_nodes.items():
            (base / "custom_nodes" / name).symlink_to(Path(path).resolve(), target_is_directory=True)
        log_path = base / "comfyui.log"
        command = [
            python or default_python(), "main.py",
            "--cpu",
            "--listen", "127.0.0.1",
            "--port", str(port),
            "--base-directory", str(base),
            # The default database lives in the host tree; keep it in the base folder.
            "--database-url", f"sqlite:///{base / 'user' / 'comfyui.db'}",
            "--disable-auto-launch",
            "--disable-api-nodes",  # no network, and a faster start
            "--preview-method", "none",
        ]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                command, cwd=comfy_dir, env=env, stdin=subprocess.DEVNULL, stdout=log_file,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        client = ComfyClient(f"http://127.0.0.1:{port}", base, log_path, process)
        _wait_until_up(client, startup_timeout)
        yield client
    finally:
        if process is not None:
            _stop(process)
        shutil.rmtree(base, ignore_errors=True)


def _wait_until_up(client: ComfyClient, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        client.check_alive()
        try:
            client.get("/object_info", timeout=30)
            return
        except (OSError, ValueError):  # refused, reset, timed out, half-written answer
            pass
        if time.monotonic() > deadline:
            raise ComfyError(f"ComfyUI did not answer GET /object_info within {timeout:g} s. "
                             f"Last lines of its log:\n{client.log_tail()}")
        time.sleep(0.5)
