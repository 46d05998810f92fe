"""The Python environment a step runs in: the container image's library versions.

A step whose image is a SageMaker scikit-learn image runs in a virtual environment built
once from that image's published pins (below, copied with their source and date) and cached
under the user's cache directory, keyed by the image and a hash of the pins and the Python.
Images this module does not know, and images whose versions cannot be installed on this
machine's Pythons, run in the runner's own Python; the run record says which, and why.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["IMAGES", "ImageEnvironmentError", "StepEnvironments", "image_key"]


@dataclass(frozen=True)
class ImagePins:
    """What one image contains, as far as a step's scripts can tell."""

    python: str  # the image's Python, major.minor.micro
    requirements: tuple[str, ...]  # exact pins: what the steps import, and their dependencies
    source: str
    fallback: str = ""  # why the versions cannot be installed here, when they cannot


IMAGES: dict[str, ImagePins] = {
    # aws/deep-learning-containers docker/sklearn/1.9-0/pyproject.toml and uv.lock
    # (HEAD e0ecede, the lock last changed 2026-08-07; copied 2026-11-30). Only the
    # libraries scripts import (boto3 for scripts that call AWS, as a deploy's smoke test
    # does); the image's serving stack is left out.
    "sklearn-1.9-0": ImagePins(
        python="3.12.1",
        requirements=(
            "scikit-learn==1.9.0",
            "numpy==2.5.1",
            "scipy==1.18.0",
            "pandas==2.2.3",
            "joblib==1.5.3",
            "threadpoolctl==3.6.0",
            "python-dateutil==2.9.0.post0",
            "pytz==2026.2",
            "tzdata==2026.3",
            "six==1.17.0",
            "boto3==1.43.46",
            "botocore==1.43.47",
            "s3transfer==0.19.1",
            "jmespath==1.1.0",
            "urllib3==2.7.0",
        ),
        source="aws/deep-learning-containers docker/sklearn/1.9-0 (lock of 2026-08-07)",
    ),
    # aws/sagemaker-scikit-learn-container, requirements at the 1.2-1 release, as quoted by
    # users of the image (scikit-learn==1.2.1, pandas==1.1.3, numpy==1.24.1; noted
    # 2026-11-30, the file itself not read): pandas 1.1.3 publishes wheels only up to Python
    # 3.9, and the runner builds environments only from Pythons it supports (3.11+).
    "sklearn-1.2-1": ImagePins(
        python="3.8",
        requirements=("scikit-learn==1.2.1", "pandas==1.1.3", "numpy==1.24.1"),
        source="aws/sagemaker-scikit-learn-container requirements at 1.2-1",
        fallback=(
            "the 1.2-1 image's pandas 1.1.3 publishes no wheels for Python 3.10 or newer, "
            "and environments are built only from Python 3.11+, so its versions are not "
            "installed"
        ),
    ),
}

# ".../sagemaker-scikit-learn:1.9-0-cpu-py3" -> "sklearn-1.9-0"
_SKLEARN_IMAGE = re.compile(r"/sagemaker-scikit-learn:(\d+\.\d+-\d+)-")


def image_key(image_uri: str) -> str | None:
    """The key of :data:`IMAGES` for an image URI, or None for an image not listed."""
    m = _SKLEARN_IMAGE.search(image_uri or "")
    key = f"sklearn-{m.group(1)}" if m else None
    return key if key in IMAGES else None


_LAYOUT = 2  # bumped when the way an environment is built changes


class ImageEnvironmentError(Exception):
    """The image's environment could not be built; the message says what to do."""


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sagemaker-pipelines-local" / "envs"


def _python_version(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _here() -> str:
    return ".".join(str(n) for n in sys.version_info[:3])


def _find_uv() -> list[str] | None:
    # `uv run` names itself in UV; else PATH; else the uv installed beside this Python.
    found = os.environ.get("UV") or shutil.which("uv")
    if found:
        return [found]
    beside = Path(sys.executable).with_name("uv")
    if beside.is_file():
        return [str(beside)]
    return None


class StepEnvironments:
    """Chooses, builds (once) and caches the Python each step runs in.

    ``mode="image"`` (the default) builds the image's environment; ``mode="current"`` runs
    every step in the runner's own interpreter (recorded as such).
    """

    def __init__(self, mode: str = "image", cache_dir: Path | None = None) -> None:
        if mode not in ("image", "current"):
            raise ValueError(f"mode must be 'image' or 'current', got {mode!r}")
        self.mode = mode
        self.cache_dir = cache_dir or _cache_root()
        self._lock = threading.Lock()
        self._built: dict[str, dict[str, Any]] = {}

    def for_image(self, image_uri: str) -> dict[str, Any]:
        """``{"python": path, "image": key, "versions": ..., "note": ...}`` for a step."""
        current = {
            "python": sys.executable,
            "image": image_key(image_uri),
            "python_version": _here(),
        }
        if self.mode == "current":
            return {**current, "note": "the runner's own Python (environments='current')"}
        key = image_key(image_uri)
        if key is None:
            return {
                **current,
                "note": f"the runner's own Python: no pinned environment is known for "
                f"image {image_uri!r}",
            }
        pins = IMAGES[key]
        if pins.fallback:
            return {**current, "note": f"the runner's own Python: {pins.fallback}"}
        with self._lock:
            if key not in self._built:
                self._built[key] = self._build(key, pins)
            return dict(self._built[key])

    # ---------------------------------------------------------------- building
    def _find_python(self, wanted: str) -> tuple[str, str, str]:
        """(path, version, note): the image's Python if here, else the runner's."""
        minor = ".".join(wanted.split(".")[:2])
        pyenv = Path.home() / ".pyenv" / "versions" / wanted / "bin" / "python3"
        if pyenv.is_file() and os.access(pyenv, os.X_OK):
            # pyenv names the folder by the exact version: no interpreter (or uv) to start.
            return str(pyenv), wanted, ""
        candidates = [shutil.which(f"python{minor}") or ""]
        uv = _find_uv()
        if uv:
            try:
                out = subprocess.run(
                    [*uv, "python", "find", "--no-python-downloads", wanted],
                    capture_output=True,
                    text=True,
                    timeout=60,
                    check=False,
                )
                candidates.insert(0, out.stdout.strip() if out.returncode == 0 else "")
            except (OSError, subprocess.SubprocessError):
                pass
        same_minor: tuple[str, str] | None = None
        for path in filter(None, candidates):
            version = _python_version(path)
            if version == wanted:
                return path, version, ""
            if version and version.startswith(minor + ".") and same_minor is None:
                same_minor = (path, version)
        if same_minor:
            return (*same_minor, f"Python {same_minor[1]}: the image has {wanted}")
        here = _here()
        return (
            sys.executable,
            here,
            f"Python {here} (the runner's): the image's Python {wanted} is not on this machine",
        )

    def _build(self, key: str, pins: ImagePins) -> dict[str, Any]:
        python, version, note = self._find_python(pins.python)
        digest = hashlib.sha256(
            json.dumps([_LAYOUT, pins.requirements, version], sort_keys=True).encode()
        ).hexdigest()[:12]
        env_dir = self.cache_dir / f"{key}-py{version}-{digest}"
        env_python = env_dir / "bin" / "python"
        info = {
            "python": str(env_python),
            "python_version": version,
            "image": key,
            "versions": list(pins.requirements),
            "pins_source": pins.source,
            "path": str(env_dir),
            "note": note or f"the image's Python {version} and library versions",
        }
        marker = env_dir / ".complete"
        if marker.is_file():
            return info
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        # One build per machine at a time: two runs (or test workers) may want it at once.
        with open(self.cache_dir / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if marker.is_file():
                return info
            self._install(key, pins, python, env_dir)
            marker.write_text(json.dumps(info, indent=2), encoding="utf-8")
        return info

    def _install(self, key: str, pins: ImagePins, python: str, env_dir: Path) -> None:
        uv = _find_uv()
        if uv is None:
            raise ImageEnvironmentError(
                f"The Python environment of image {key} is built with uv, and uv was not "
                "found on PATH or beside this Python. Install uv (pip install uv), or run "
                "with the runner's own Python (environments='current')."
            )
        shutil.rmtree(env_dir, ignore_errors=True)
        steps = [
            [*uv, "venv", "--quiet", "--python", python, str(env_dir)],
            [
                *uv,
                "pip",
                "install",
                "--quiet",
                # Steps run with PYTHONDONTWRITEBYTECODE (as the image): compile once, here.
                "--compile-bytecode",
                "--python",
                str(env_dir / "bin" / "python"),
                *pins.requirements,
            ],
        ]
        for cmd in steps:
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                shutil.rmtree(env_dir, ignore_errors=True)
                tail = "\n".join(proc.stderr.strip().splitlines()[-8:])
                raise ImageEnvironmentError(
                    f"The Python environment of image {key} ({', '.join(pins.requirements)}) "
                    f"could not be built in {env_dir}: uv exited with code {proc.returncode}:"
                    f"\n{tail}\nIt is built once per machine and then cached; connect to "
                    "the package index (or set UV_INDEX_URL to a mirror) and run again, or "
                    "run with the runner's own Python (environments='current')."
                )
