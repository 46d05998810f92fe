"""Prune the workspace: old runs and the objects only they wrote, never what a model needs.

What is removed: ``runs/<execution id>/`` of the runs that are not kept, and in the object
store every object under a folder named by such an execution id (the steps' outputs: the
data splits, the model artifacts, the batch predictions). What is kept: the registry; every
object a registered model version refers to (its model artifacts, its metrics) and the run
that registered it; the newest ``keep`` runs; with ``older_than_days``, also every run
younger than that; everything a kept run refers to; every other file (code the SDK uploaded,
input data, ``models/``).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .registry import CorruptModelPackageError, LocalModelRegistry
from .runs import EXECUTING, _is_running, recover_abandoned_runs
from .store import LocalObjectStore
from .workspace import Workspace

__all__ = ["PruneResult", "WorkspaceBusyError", "prune_workspace"]


class WorkspaceBusyError(RuntimeError):
    """A run is executing in the workspace: pruning now could remove what it reads."""


@dataclass
class PruneResult:
    """What :func:`prune_workspace` removed (or, with ``dry_run``, would remove)."""

    removed_runs: list[str] = field(default_factory=list)
    kept_runs: list[str] = field(default_factory=list)
    removed_objects: int = 0
    bytes_freed: int = 0
    dry_run: bool = False


@dataclass
class _Run:
    execution_id: str
    path: Path
    started: datetime
    record: dict[str, Any]


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _runs(workspace: Workspace) -> list[_Run]:
    runs = []
    for execution_id in workspace.execution_ids():
        path = workspace.run_dir(execution_id)
        record: dict[str, Any] = {}
        try:
            loaded = json.loads(workspace.run_record(execution_id).read_text(encoding="utf-8"))
            record = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            pass
        try:
            started = datetime.fromisoformat(str(record["start_time"]).replace("Z", "+00:00"))
        except (KeyError, ValueError):
            started = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        runs.append(_Run(execution_id, path, started, record))
    return sorted(runs, key=lambda r: r.started, reverse=True)


def _registry_references(workspace: Workspace) -> tuple[set[str], set[str]]:
    """The S3 URIs the registered model versions refer to, and the runs that registered them."""
    registry = LocalModelRegistry(workspace)
    uris: set[str] = set()
    executions: set[str] = set()
    for group in registry.list_groups():
        corrupt = registry.corrupt_packages(group)
        if corrupt:
            raise CorruptModelPackageError(
                corrupt[0].path,
                f"{corrupt[0].problem}; nothing was pruned, as what this version refers to "
                "cannot be known",
            )
        for package in registry.list_packages(group):
            uris.update(s for s in _strings(package) if s.startswith("s3://"))
            if package.get("PipelineExecutionId"):
                executions.add(str(package["PipelineExecutionId"]))
    return uris, executions


def prune_workspace(
    workdir: Workspace | str | os.PathLike[str],
    *,
    keep: int = 5,
    older_than_days: float | None = None,
    dry_run: bool = False,
) -> PruneResult:
    """Remove the runs not kept and the objects only they wrote; see the module's docstring.

    Raises :class:`WorkspaceBusyError` while a run is executing, and
    :class:`CorruptModelPackageError` when a registry file cannot be read (what it refers to
    would be unknown).
    """
    if keep < 0:
        raise ValueError(f"keep must be 0 or more runs, got {keep}")
    if older_than_days is not None and older_than_days < 0:
        raise ValueError(f"older_than_days must be 0 or more, got {older_than_days}")
    workspace = Workspace.of(workdir)
    recover_abandoned_runs(workspace)
    runs = _runs(workspace)
    for run in runs:
        if run.record.get("status") == EXECUTING and _is_running(run.record.get("runner") or {}):
            raise WorkspaceBusyError(
                f"Execution {run.execution_id} is running ({run.path}): nothing was pruned. "
                "Prune when it has ended, or stop it first."
            )
    protected_uris, registered = _registry_references(workspace)
    cutoff = None
    if older_than_days is not None:
        cutoff = datetime.now(UTC) - timedelta(days=older_than_days)
    result = PruneResult(dry_run=dry_run)
    pruned: list[_Run] = []
    for index, run in enumerate(runs):
        young = cutoff is not None and run.started > cutoff
        if index < keep or young or run.execution_id in registered:
            result.kept_runs.append(run.execution_id)
            protected_uris.update(s for s in _strings(run.record) if s.startswith("s3://"))
        else:
            pruned.append(run)

    store = LocalObjectStore(workspace)
    protected: list[str] = []
    for uri in protected_uris:
        try:
            protected.append(str(store.uri_to_path(uri)))
        except ValueError:
            continue
    ids = {run.execution_id for run in pruned}
    s3_root = workspace.s3_root
    doomed: list[Path] = []
    if ids and s3_root.is_dir():
        for folder, dirs, _files in os.walk(s3_root):
            for name in [d for d in dirs if d in ids]:
                dirs.remove(name)  # removed as a whole below: no need to look inside
                for path in (Path(folder) / name).rglob("*"):
                    # An S3 prefix: a protected URI keeps every object whose key starts with it.
                    if path.is_file() and not any(str(path).startswith(p) for p in protected):
                        doomed.append(path)
    for path in doomed:
        result.bytes_freed += path.stat().st_size
        result.removed_objects += 1
        if not dry_run:
            path.unlink()
    for run in pruned:
        result.removed_runs.append(run.execution_id)
        result.bytes_freed += _size(run.path)
        if not dry_run:
            shutil.rmtree(run.path)
    if not dry_run:
        _remove_empty_folders(s3_root, {p.parent for p in doomed})
    return result


def _remove_empty_folders(root: Path, folders: set[Path]) -> None:
    """Remove the folders left empty, up to (not including) ``root``."""
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        while folder != root and root in folder.parents:
            try:
                folder.rmdir()
            except OSError:
                break  # not empty
            folder = folder.parent
