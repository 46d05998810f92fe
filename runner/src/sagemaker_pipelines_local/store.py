"""A local stand-in for Amazon S3: ``s3://bucket/key`` lives at ``<workdir>/s3/bucket/key``.

Only the behaviour the pipeline steps rely on is emulated, with S3's rules where they matter:
keys are plain strings, a "prefix" selects every object whose key starts with it (not only
the objects inside a "folder"), and writes replace an object atomically.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .workspace import Workspace

__all__ = ["LocalObjectStore", "MissingObjectError"]


def write_json_atomic(path: Path, data: Any, default: Callable[[Any], Any] = str) -> None:
    """Write JSON through a temp file and a rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, default=default)
            fh.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class MissingObjectError(FileNotFoundError):
    """An S3 URI that should name at least one object names nothing in the local store."""

    def __init__(self, uri: str, path: Path, what: str = "object") -> None:
        self.uri = uri
        self.path = path
        super().__init__(
            f"No {what} found at {uri} in the local object store (looked in {path}). "
            "An earlier step should have written it, or it must be uploaded before the run."
        )


class LocalObjectStore:
    """Maps ``s3://bucket/key`` to ``<workdir>/s3/bucket/key`` and back."""

    def __init__(self, workdir: Workspace | str | os.PathLike[str]) -> None:
        self.workspace = Workspace.of(workdir)
        self.workdir = self.workspace.root
        self.root = self.workspace.s3_root

    # ------------------------------------------------------------------ URIs and paths
    @staticmethod
    def parse_uri(uri: str) -> tuple[str, str]:
        """Split ``s3://bucket/key`` into ``(bucket, key)``; the key may be empty."""
        if not isinstance(uri, str) or not uri.startswith("s3://"):
            raise ValueError(f"Not an S3 URI: {uri!r} (expected s3://bucket/key)")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket or bucket.startswith(".") or "\\" in bucket:
            raise ValueError(f"Invalid bucket name in S3 URI {uri!r}")
        parts = key.split("/")
        if any(part in ("..", ".") for part in parts):
            raise ValueError(f"S3 URI {uri!r} has a '.' or '..' path segment; not supported")
        return bucket, key

    def uri_to_path(self, uri: str) -> Path:
        """Local path of the object (or prefix) ``uri``."""
        bucket, key = self.parse_uri(uri)
        path = self.root / bucket
        for part in key.split("/"):
            if part:
                path = path / part
        return path

    def path_to_uri(self, path: str | os.PathLike[str]) -> str:
        """Inverse of :meth:`uri_to_path` for a path inside the store."""
        rel = Path(path).resolve().relative_to(self.root.resolve())
        parts = rel.parts
        if not parts:
            raise ValueError(f"{path} is the store root, not an object")
        return "s3://" + "/".join(parts)

    @staticmethod
    def join(uri: str, *parts: str) -> str:
        """Join key segments onto a URI with single slashes."""
        out = uri.rstrip("/")
        for part in parts:
            part = part.strip("/")
            if part:
                out = f"{out}/{part}"
        return out

    # ------------------------------------------------------------------ single objects
    def exists(self, uri: str) -> bool:
        """True when ``uri`` names one object."""
        return self.uri_to_path(uri).is_file()

    def _tmp_dir(self) -> Path:
        # A directory that can never be a bucket (bucket names cannot start with ".").
        tmp = self.root / ".tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        return tmp

    def _check_target(self, uri: str) -> Path:
        bucket, key = self.parse_uri(uri)
        if not key or key.endswith("/"):
            raise ValueError(f"Cannot write an object at {uri!r}: the key is empty or ends in '/'")
        target = self.uri_to_path(uri)
        if target.is_dir():
            raise ValueError(
                f"Cannot write an object at {uri}: the local store already holds objects "
                f"under the prefix {uri}/ (a folder at {target})"
            )
        return target

    def put_bytes(self, data: bytes | str, uri: str) -> str:
        """Write ``data`` as the object ``uri`` (atomically) and return ``uri``.

        Source first, destination second, like every write of the store (``put_file``).
        """
        if isinstance(data, str):
            data = data.encode("utf-8")
        target = self._check_target(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._tmp_dir(), prefix="put-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return uri

    def put_file(self, src: str | os.PathLike[str], uri: str) -> str:
        """Copy the local file ``src`` to the object ``uri`` (atomically) and return ``uri``.

        Source first, destination second, like ``shutil.copyfile`` and ``put_bytes``.
        """
        if isinstance(src, str) and src.startswith("s3://"):
            raise TypeError(
                f"put_file(src, uri) takes the local file first and the S3 URI second; "
                f"got the URI {src!r} first"
            )
        src = Path(src)
        if not src.is_file():
            raise FileNotFoundError(f"Cannot upload {src}: not a file")
        target = self._check_target(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self._tmp_dir(), prefix="put-")
        os.close(fd)
        try:
            shutil.copyfile(src, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return uri

    def read_bytes(self, uri: str) -> bytes:
        """Content of the object ``uri``; :class:`MissingObjectError` if there is none."""
        path = self.uri_to_path(uri)
        if not path.is_file():
            raise MissingObjectError(uri, path)
        return path.read_bytes()

    def read_text(self, uri: str, encoding: str = "utf-8") -> str:
        return self.read_bytes(uri).decode(encoding)

    # ------------------------------------------------------------------ prefixes
    def list(self, uri: str) -> list[str]:
        """URIs of every object whose key starts with the key of ``uri`` (S3 prefix rule)."""
        return [f"s3://{bucket}/{key}" for bucket, key in self._list_keys(uri)]

    def _list_keys(self, uri: str) -> list[tuple[str, str]]:
        bucket, prefix = self.parse_uri(uri)
        bucket_dir = self.root / bucket
        if not bucket_dir.is_dir():
            return []
        parent, _, last = prefix.rpartition("/")
        base = bucket_dir
        for part in parent.split("/"):
            if part:
                base = base / part
        if not base.is_dir():
            return []
        keys: list[str] = []
        for entry in base.iterdir():
            if not entry.name.startswith(last):
                continue
            if entry.is_file():
                keys.append(entry.relative_to(bucket_dir).as_posix())
            elif entry.is_dir():
                for dirpath, _dirs, files in os.walk(entry):
                    for name in files:
                        keys.append((Path(dirpath) / name).relative_to(bucket_dir).as_posix())
        return sorted((bucket, k) for k in keys if k.startswith(prefix))

    @staticmethod
    def relative_key(prefix: str, key: str) -> str:
        """Where SageMaker puts object ``key`` when it downloads the S3Prefix ``prefix``.

        A prefix that is the whole key gives the file's own name; a "folder" prefix
        (``data/train`` or ``data/train/``) gives the key below that folder; a prefix that
        ends mid-name (``data/tr``) gives the key below the prefix's parent folder.
        """
        if key == prefix:
            return key.rsplit("/", 1)[-1]
        if prefix == "" or prefix.endswith("/"):
            return key[len(prefix) :]
        if key.startswith(prefix + "/"):
            return key[len(prefix) + 1 :]
        parent = prefix.rpartition("/")[0]
        return key[len(parent) + 1 :] if parent else key

    def download(
        self,
        uri: str,
        dest_dir: str | os.PathLike[str],
        s3_data_type: str = "S3Prefix",
    ) -> list[Path]:
        """Copy the objects selected by ``uri`` into ``dest_dir`` as SageMaker would.

        Only ``S3Prefix`` is emulated. Raises :class:`MissingObjectError` when the prefix
        selects no object (SageMaker fails the job in that case too).
        """
        if s3_data_type != "S3Prefix":
            raise ValueError(
                f"S3DataType {s3_data_type!r} is not supported by the local object store "
                "(only S3Prefix)"
            )
        _bucket, prefix = self.parse_uri(uri)
        keys = self._list_keys(uri)
        if not keys:
            raise MissingObjectError(uri, self.uri_to_path(uri), "object under the prefix")
        dest = Path(dest_dir)
        dest.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        for bucket, key in keys:
            rel = self.relative_key(prefix, key)
            target = dest.joinpath(*[p for p in rel.split("/") if p])
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.root / bucket / key, target)
            written.append(target)
        return written

    def upload_dir(self, src_dir: str | os.PathLike[str], uri: str) -> list[str]:
        """Upload every file below ``src_dir`` to ``uri/<relative path>``; returns the URIs."""
        src = Path(src_dir)
        if src.is_file():
            return [self.put_file(src, self.join(uri, src.name))]
        if not src.is_dir():
            return []
        uploaded: list[str] = []
        for dirpath, dirs, files in os.walk(src):
            dirs.sort()
            for name in sorted(files):
                path = Path(dirpath) / name
                rel = path.relative_to(src).as_posix()
                uploaded.append(self.put_file(path, self.join(uri, rel)))
        return uploaded
