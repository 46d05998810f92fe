"""A local model registry: ``<workdir>/registry/<ModelPackageGroupName>/<version>.json``.

Mirrors the parts of SageMaker's Model Registry a RegisterModel step produces: versioned
model packages in a group, each with an ARN, an approval status, the inference
specification and the model metrics.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .arns import DEFAULT_ACCOUNT_ID, Arns
from .records import ModelPackageRecord
from .store import write_json_atomic
from .workspace import Workspace

__all__ = ["APPROVAL_STATUSES", "CorruptModelPackageError", "LocalModelRegistry"]

APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
_GROUP_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")


class CorruptModelPackageError(ValueError):
    """A model package file that cannot be read: names the file, what is wrong, what to do."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(
            f"Model package file {path} is unreadable: {problem}. The other versions are "
            "still listed. Restore this file from a backup or from the run that registered "
            "it (runs/<execution id>/run.json, step RegisterModel), or delete it to drop "
            "the version."
        )


_REQUIRED = ("ModelPackageVersion", "ModelApprovalStatus", "ModelPackageArn")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class LocalModelRegistry:
    """Versioned model packages stored as JSON files under ``<workdir>/registry``."""

    def __init__(self, workdir: Workspace | str | os.PathLike[str]) -> None:
        self.workspace = Workspace.of(workdir)
        self.workdir = self.workspace.root
        self.root = self.workspace.registry_root

    @staticmethod
    def validate_group_name(group: str) -> str:
        if not isinstance(group, str) or not _GROUP_NAME.match(group):
            raise ValueError(
                f"Invalid ModelPackageGroupName {group!r}: use 1-63 letters, digits and "
                "hyphens, starting and ending with a letter or digit"
            )
        return group

    def _group_dir(self, group: str) -> Path:
        return self.workspace.model_package_group_dir(self.validate_group_name(group))

    def package_path(self, group: str, version: int) -> Path:
        """The file of version ``version`` of ``group``."""
        return self.workspace.model_package(self.validate_group_name(group), version)

    @staticmethod
    def _versions(group_dir: Path) -> list[int]:
        if not group_dir.is_dir():
            return []
        out = []
        for path in group_dir.glob("*.json"):
            # An empty file is a version number claimed by a registration still writing.
            if path.stem.isdigit() and path.stat().st_size > 0:
                out.append(int(path.stem))
        return sorted(out)

    def list_groups(self) -> list[str]:
        """Names of the model package groups that hold at least one version."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and self._versions(p))

    def list_packages(self, group: str) -> list[dict[str, Any]]:
        """Every readable version in ``group``, oldest first (empty for an unknown group).

        A version whose file is corrupt is left out: :meth:`corrupt_packages` names it.
        """
        packages = []
        group_dir = self._group_dir(group)
        for version in self._versions(group_dir):
            try:
                packages.append(self._read(self.package_path(group, version)))
            except CorruptModelPackageError:
                continue
        return packages

    def corrupt_packages(self, group: str) -> list[CorruptModelPackageError]:
        """The versions of ``group`` whose file cannot be read, each naming its file."""
        problems = []
        group_dir = self._group_dir(group)
        for version in self._versions(group_dir):
            try:
                self._read(self.package_path(group, version))
            except CorruptModelPackageError as error:
                problems.append(error)
        return problems

    def get(self, group: str, version: int) -> dict[str, Any]:
        """One model package; :class:`KeyError` if it does not exist."""
        path = self.package_path(group, version)
        if not path.is_file():
            raise KeyError(f"Model package {group}/{version} is not in the local registry")
        return self._read(path)

    def latest(self, group: str, approval_status: str | None = None) -> dict[str, Any] | None:
        """Newest version of ``group`` (optionally only those with ``approval_status``)."""
        packages = self.list_packages(group)
        if approval_status is not None:
            packages = [p for p in packages if p.get("ModelApprovalStatus") == approval_status]
        return packages[-1] if packages else None

    @staticmethod
    def _read(path: Path) -> dict[str, Any]:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise CorruptModelPackageError(path, f"it is not UTF-8 text ({exc.reason})") from None
        except json.JSONDecodeError as exc:
            raise CorruptModelPackageError(
                path, f"it is not valid JSON, probably cut short by an interrupted write ({exc})"
            ) from None
        except OSError as exc:
            raise CorruptModelPackageError(path, f"it cannot be read ({exc.strerror})") from None
        if not isinstance(record, dict):
            raise CorruptModelPackageError(path, "it holds no JSON object")
        missing = [key for key in _REQUIRED if key not in record]
        if missing:
            raise CorruptModelPackageError(path, f"it has no {', '.join(missing)}")
        return record

    def register(
        self,
        group: str,
        package: dict[str, Any],
        *,
        region: str,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> dict[str, Any]:
        """Store ``package`` as the next version of ``group`` and return the stored record.

        ``region`` and ``account_id`` (the run's, as ``run_pipeline`` takes them) name the
        version's ModelPackageArn.
        """
        arns = Arns(region, account_id)
        status = package.get("ModelApprovalStatus") or "PendingManualApproval"
        if status not in APPROVAL_STATUSES:
            raise ValueError(
                f"ModelApprovalStatus {status!r} is not one of {', '.join(APPROVAL_STATUSES)}"
            )
        group_dir = self._group_dir(group)
        group_dir.mkdir(parents=True, exist_ok=True)
        versions = self._versions(group_dir)
        version = (versions[-1] if versions else 0) + 1
        while True:
            # Claim the version number atomically so concurrent runs never share one.
            claim = self.package_path(group, version)
            try:
                fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                version += 1
                continue
            os.close(fd)
            break
        record = ModelPackageRecord(
            ModelPackageGroupName=group,
            ModelPackageVersion=version,
            ModelPackageArn=arns.sagemaker("model-package", f"{group}/{version}"),
            ModelPackageStatus="Completed",
            ModelApprovalStatus=status,
            CreationTime=_now(),
            extra={k: v for k, v in package.items() if k != "ModelApprovalStatus"},
        ).to_dict()
        try:
            write_json_atomic(claim, record)
        except BaseException:
            claim.unlink(missing_ok=True)
            raise
        return record

    def update_approval_status(self, group: str, version: int, status: str) -> dict[str, Any]:
        """Change a version's approval status (what ``UpdateModelPackage`` does)."""
        if status not in APPROVAL_STATUSES:
            raise ValueError(
                f"ModelApprovalStatus {status!r} is not one of {', '.join(APPROVAL_STATUSES)}"
            )
        record = self.get(group, version)
        record["ModelApprovalStatus"] = status
        record["LastModifiedTime"] = _now()
        write_json_atomic(self.package_path(group, version), record)
        return record
