"""Definitions already built, found again by what they were built from.

Building a definition imports the SageMaker SDK and runs the pipeline code inside moto: most
of the seconds of a small ``run-local``. The definition (and the objects the SDK uploaded
while building it) depends only on the pipeline's code, its settings, the installed packages
and the SDK's configuration files, so a build is kept under a key derived from all of
those, and the next build with the same key is read back instead of run. Any change to one
of them gives another key, so it rebuilds.

The cache lives in the user's cache folder
(``$XDG_CACHE_HOME/sagemaker-pipelines-local/definitions``, else ``~/.cache/...``), beside
the step environments; each entry is a folder, written whole and then renamed into place,
so a reader sees a complete entry or none. The least recently used entries beyond
``keep`` are removed. An entry that cannot be read is removed and counts as a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .store import LocalObjectStore

# Bumped when what a key covers or how an entry is written changes.
_FORMAT = 1

# The SDK's configuration files ("intelligent defaults") can change a definition.
_SDK_CONFIG_FILES = (
    ("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", Path("/etc/xdg/sagemaker/config.yaml")),
    ("SAGEMAKER_USER_CONFIG_OVERRIDE", Path.home() / ".config" / "sagemaker" / "config.yaml"),
)


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sagemaker-pipelines-local" / "definitions"


@dataclass(frozen=True)
class CachedDefinition:
    """A definition read back from the cache."""

    key: str
    definition: str
    objects: int  # how many uploaded objects were put back into the workspace


class DefinitionCache:
    """Builds kept by key: see the module's docstring."""

    def __init__(self, root: str | os.PathLike[str] | None = None, keep: int = 32) -> None:
        self.root = Path(root) if root is not None else _cache_root()
        self.keep = keep

    def key(self, sources: Iterable[str | os.PathLike[str]], facts: Mapping[str, str]) -> str:
        """The key of a build from `sources` (files, or folders read whole) and `facts`
        (whatever else the build reads, as text: the settings, the region, the bucket).

        Also covered: this Python, every distribution installed beside it (names and
        versions), this package's own code and the SDK's configuration files. Environment
        variables the build reads belong in `facts` (or in the settings given there).
        """
        digest = hashlib.sha256()

        def add(label: str, data: bytes) -> None:
            digest.update(f"{label}\0{len(data)}\0".encode())
            digest.update(data)

        add("format", str(_FORMAT).encode())
        add("python", sys.version.encode())
        for name in _installed_distributions():
            add("distribution", name.encode())
        for path in _files(Path(__file__).parent):
            add(f"runner:{path.name}", path.read_bytes())
        for source in sources:
            source = Path(source)
            for path in _files(source):
                add(f"source:{path.relative_to(source.parent)}", path.read_bytes())
        for name, value in sorted(facts.items()):
            add(f"fact:{name}", value.encode())
        for variable, default in _SDK_CONFIG_FILES:
            config = Path(os.environ.get(variable) or default)
            if config.is_file():
                add(f"sdk-config:{config}", config.read_bytes())
        return digest.hexdigest()

    def load(
        self, key: str, workdir: str | os.PathLike[str] | None = None
    ) -> CachedDefinition | None:
        """The build kept under `key`, its objects put back into `workdir`'s object store;
        None when there is none (or it could not be read, and is then removed)."""
        entry = self.root / key
        if not entry.is_dir():
            return None
        try:
            definition = (entry / "definition.json").read_text()
            manifest = json.loads((entry / "objects.json").read_text())
            bodies = {uri: (entry / "objects" / name).read_bytes() for uri, name in manifest}
        except (OSError, ValueError, TypeError):
            shutil.rmtree(entry, ignore_errors=True)
            return None
        if workdir is not None:
            store = LocalObjectStore(workdir)
            for uri, body in bodies.items():
                store.put_bytes(body, uri)
        os.utime(entry)  # recently used: kept the longest
        return CachedDefinition(key=key, definition=definition, objects=len(bodies))

    def save(self, key: str, definition: str, objects: Mapping[str, bytes]) -> None:
        """Keep a build: its definition and every object the SDK uploaded (URI -> bytes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.root))
        try:
            (scratch / "objects").mkdir()
            manifest = []
            for number, (uri, body) in enumerate(sorted(objects.items())):
                (scratch / "objects" / str(number)).write_bytes(body)
                manifest.append([uri, str(number)])
            (scratch / "objects.json").write_text(json.dumps(manifest))
            (scratch / "definition.json").write_text(definition)
            self._replace(scratch, self.root / key)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        self._trim()

    def _replace(self, new: Path, entry: Path) -> None:
        """Put `new` in the place of `entry`; a reader meanwhile sees the old one or none."""
        try:
            os.rename(new, entry)
            return
        except OSError:
            pass  # an entry is there already (a folder is not replaced by a rename)
        retired = Path(tempfile.mkdtemp(prefix=".retired-", dir=self.root))
        try:
            os.rename(entry, retired / "entry")
        except OSError:
            pass  # removed meanwhile
        try:
            os.rename(new, entry)
        except OSError:
            pass  # a concurrent build of the same key got there first: the same inputs
        shutil.rmtree(retired, ignore_errors=True)

    def clear(self) -> int:
        """Remove every entry; returns how many there were."""
        entries = self._entries()
        for entry in entries:
            shutil.rmtree(entry, ignore_errors=True)
        return len(entries)

    def _entries(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")]

    def _trim(self) -> None:
        entries = []
        for entry in self._entries():
            try:
                entries.append((entry.stat().st_mtime, entry))
            except OSError:
                continue  # removed meanwhile
        for _, entry in sorted(entries, reverse=True)[self.keep :]:
            shutil.rmtree(entry, ignore_errors=True)


def _files(source: Path) -> list[Path]:
    """`source` itself, or every file under it; bytecode and hidden folders left out."""
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise FileNotFoundError(f"build cache: '{source}' does not exist")
    return sorted(
        path
        for path in source.rglob("*")
        if path.is_file()
        and path.suffix != ".pyc"
        and not any(
            part == "__pycache__" or part.startswith(".") for part in path.relative_to(source).parts
        )
    )


def _installed_distributions() -> list[str]:
    """Name and version of every distribution on sys.path, from the folders' names alone
    (reading each one's metadata would take half a second)."""
    found = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        found.update(n for n in names if n.endswith((".dist-info", ".egg-info")))
    return sorted(found)
