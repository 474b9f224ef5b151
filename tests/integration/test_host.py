"""The pack loads into the real ComfyUI host without errors."""
from __future__ import annotations

import re

from comfy_host import PACK_FOLDER

# What ComfyUI 0.3.x logs when a custom-node pack fails to load (nodes.py).
FAILURE_MARKERS = (
    "Cannot import",
    "IMPORT FAILED",
    "Error while calling comfy_entrypoint",
    "did not return a",
    "is not callable",
    "due to the lack of NODE_CLASS_MAPPINGS",
    "Unable to parse pyproject.toml",
)


def startup_log(comfy) -> str:
    """The server log up to "Starting server" (later tests log expected node errors)."""
    return comfy.log().split("Starting server")[0]


def test_pack_imports_without_errors(comfy):
    log = startup_log(comfy)
    ours = [line for line in log.splitlines() if PACK_FOLDER in line]
    failures = [line for line in ours if any(m in line for m in FAILURE_MARKERS)]
    assert not failures, "ComfyUI failed to import the pack:\n" + "\n".join(failures) + "\n\n" + log[-4000:]
    # Lines of the "Import times for custom nodes:" list look like "   0.1 seconds: <path>".
    section = log.split("Import times for custom nodes:")
    assert len(section) == 2, "the log has no 'Import times for custom nodes' section:\n" + log[-4000:]
    listed = re.findall(r"^\s*[\d.]+ seconds(.*?): (.*)$", section[1], flags=re.M)
    ours = [(flag, path) for flag, path in listed if path.rstrip("/").endswith("/" + PACK_FOLDER)]
    assert len(ours) == 1, f"the pack is not in the import-times list: {listed}"
    flag, path = ours[0]
    assert flag == "", f"the import-times list marks the pack as failed: {path}{flag}"


def test_pack_warns_nothing_at_startup(comfy):
    """No warning or traceback at startup mentions the pack."""
    lines = startup_log(comfy).splitlines()
    suspicious = [line for line in lines if PACK_FOLDER in line
                  and re.search(r"warn|error|exception|traceback", line, flags=re.I)]
    assert not suspicious, "\n".join(suspicious)

