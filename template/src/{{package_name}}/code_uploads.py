"""The scripts go to S3 under keys named by their content, and by nothing else.

SageMaker's step cache compares a step's arguments, among them the S3 URIs of its code,
never what is behind them: a script edited under the same key would be served a stale
cached result, and the same script under a new key misses the cache. The SDKs' own keys
hash the files' absolute paths too (another checkout, a CI build's folder, is another
key) or carry the time of the build. Here a key is a digest of the files' names and
bytes: an unchanged project gives byte-identical definitions on any machine, an edited
script a new key for its own step only.

The pipeline is built with placeholder keys (`script_uri`, `scripts_uri`,
`scripts_tarball_uri`); `place_code` then puts the files where their digests say and
writes those keys into the definition. A build therefore does not depend on the scripts'
content, and the build cache serves it after a script is edited: only the placing is done
again, in milliseconds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import re
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"

# s3://<bucket>/<prefix>/code/pending-<kind>-<name>/: what `place_code` replaces.
_PENDING = re.compile(
    r"s3://(?P<bucket>[^/\"\\]+)/(?P<prefix>[^\"\\]*?)/code/"
    r"pending-(?P<kind>file|dir|tarball)-(?P<name>[A-Za-z0-9_.-]+)/"
)


def script_uri(bucket: str, prefix: str, script: str) -> str:
    """A placeholder for one script's S3 URI (a processing step's code)."""
    return f"s3://{bucket}/{prefix}/code/pending-file-{script}/{script}"


def scripts_uri(bucket: str, prefix: str) -> str:
    """A placeholder for the scripts folder's S3 prefix (SDK v3's training code channel)."""
    return f"s3://{bucket}/{prefix}/code/pending-dir-scripts/"


def scripts_tarball_uri(bucket: str, prefix: str) -> str:
    """A placeholder for the scripts folder as sourcedir.tar.gz (SDK v2's training code)."""
    return f"s3://{bucket}/{prefix}/code/pending-tarball-scripts/sourcedir.tar.gz"


def _files(paths: Iterable[Path]) -> list[tuple[str, Path]]:
    """(name in the upload, file) for each file, folders walked, __pycache__ left out."""
    found: list[tuple[str, Path]] = []
    for path in paths:
        if path.is_dir():
            found += [
                (file.relative_to(path).as_posix(), file)
                for file in sorted(path.rglob("*"))
                if file.is_file() and "__pycache__" not in file.parts
            ]
        else:
            found.append((path.name, path))
    return found


def digest(paths: Iterable[Path]) -> str:
    """The first 16 hex digits of the SHA-256 of the files' names and contents."""
    total = hashlib.sha256()
    for name, file in _files(paths):
        total.update(f"{name}\n".encode())
        total.update(hashlib.sha256(file.read_bytes()).digest())
    return total.hexdigest()[:16]


def tarball(directory: Path) -> bytes:
    """The folder as a .tar.gz, its files at the archive's root (as SageMaker's training
    toolkit unpacks it): the same bytes for the same files, no times, owners or modes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, file in _files([directory]):
            data = file.read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            archive.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as zipped:
        zipped.write(raw.getvalue())
    return packed.getvalue()


# put(bucket, key, body): an S3 client's put_object, or the local object store's.
Put = Callable[[str, str, bytes], object]


def place_code(definition: str, put: Put | None, scripts_dir: Path | None = None) -> str:
    """The definition with every placeholder key replaced by its content's; with `put`,
    each file is uploaded there too (skip it when only the text is wanted)."""
    scripts_dir = scripts_dir or SCRIPTS_DIR
    placed: dict[str, str] = {}

    def place(match: re.Match[str]) -> str:
        found = match.group(0)
        if found not in placed:
            bucket, prefix, kind, name = match.group("bucket", "prefix", "kind", "name")
            paths = [scripts_dir / name] if kind == "file" else [scripts_dir]
            folder = f"{prefix}/code/{digest(paths)}"
            if put is not None and kind == "tarball":
                put(bucket, f"{folder}/sourcedir.tar.gz", tarball(scripts_dir))
            elif put is not None:
                for relative, file in _files(paths):
                    put(bucket, f"{folder}/{relative}", file.read_bytes())
            placed[found] = f"s3://{bucket}/{folder}/"
        return placed[found]

    return _PENDING.sub(place, definition)
