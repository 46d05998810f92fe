"""The scripts go to S3 under keys named by their content, and by nothing else.

SageMaker's step cache compares a step's arguments, among them the S3 URIs of its code,
never what is behind them: a script edited under the same key would be served a stale
cached result, and the same script under a new key misses the cache. The SDKs' own keys
hash the files' absolute paths too (another checkout, a CI build's folder, is another
key) or carry the time of the build. Here a key is a digest of the files' names and
bytes: an unchanged project gives byte-identical definitions on any machine, an edited
script a new key for its own step only.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import tarfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


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


def upload_files(s3: Any, bucket: str, prefix: str, paths: Iterable[Path]) -> str:
    """Put the files (a folder's files at its root) under s3://bucket/prefix/code/<digest>/
    and return that URI, ending in "/"."""
    paths = list(paths)
    folder = f"{prefix}/code/{digest(paths)}"
    for name, file in _files(paths):
        s3.put_object(Bucket=bucket, Key=f"{folder}/{name}", Body=file.read_bytes())
    return f"s3://{bucket}/{folder}/"


def upload_tarball(s3: Any, bucket: str, prefix: str, directory: Path) -> str:
    """Put the folder as s3://bucket/prefix/code/<digest>/sourcedir.tar.gz (its files at the
    archive's root, as SageMaker's training toolkit unpacks it) and return that URI. The
    archive is the same bytes for the same files: no times, owners or modes of this machine."""
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
    key = f"{prefix}/code/{digest([directory])}/sourcedir.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=packed.getvalue())
    return f"s3://{bucket}/{key}"
