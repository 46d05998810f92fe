"""The records the runner writes, as types: a run (``run.json``), its steps, a model package.

Each serialises to the JSON the files have always held (same keys, same order), which the
report, ``recover_abandoned_runs``, ``prune`` and the generated projects read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["ModelPackageRecord", "RunRecord", "StepRecord"]

NOT_RUN = "NotRun"


class _Unset:
    def __repr__(self) -> str:
        return "<unset>"


UNSET: Any = _Unset()  # a member the JSON leaves out until it has a value


def _to_dict(record: Any) -> dict[str, Any]:
    out = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "extra"}
    out = {key: value for key, value in out.items() if value is not UNSET}
    return {**out, **record.extra}


def _from_dict(cls: Any, data: dict[str, Any], **converted: Any) -> Any:
    names = {f.name for f in fields(cls)} - {"extra"}
    known = {key: value for key, value in data.items() if key in names}
    extra = {key: value for key, value in data.items() if key not in names}
    return cls(**{**known, **converted}, extra=extra)


@dataclass
class StepRecord:
    """One step of ``run.json``: its status, times, outputs, properties, logs, ignored."""

    name: str
    type: str
    status: str = "Pending"
    start_time: str | None = None
    end_time: str | None = None
    duration_seconds: float | None = None
    depends_on: list[str] = field(default_factory=list)
    branch: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] = field(default_factory=list)
    properties: dict[str, Any] = field(default_factory=dict)
    property_files: dict[str, Any] = field(default_factory=dict)
    failure_reason: str | None = None
    not_run_reason: str | None = None
    logs: dict[str, str] = field(default_factory=dict)
    ignored: list[dict[str, Any]] = field(default_factory=list)
    step_dir: str | None = None
    environment: dict[str, Any] | None = UNSET  # which Python ran it, once it ran
    cache_hit: dict[str, Any] | None = None  # the earlier run it reused (CacheConfig)
    selective_execution_result: dict[str, Any] | None = None  # taken from another execution
    instance: dict[str, Any] | None = UNSET  # the instances its arguments ask for (cost.py)
    extra: dict[str, Any] = field(default_factory=dict)  # keys of a newer runner, kept

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        return _from_dict(cls, data)  # type: ignore[no-any-return]


@dataclass
class RunRecord:
    """``runs/<execution id>/run.json``: the execution, its parameters and its steps."""

    execution_id: str
    execution_arn: str | None = None
    pipeline_name: str | None = None
    status: str | None = None
    failure_reason: str | None = None
    start_time: str | None = None
    end_time: str | None = None
    duration_seconds: float | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    parameter_overrides: dict[str, Any] = field(default_factory=dict)
    workdir: str | None = None
    run_dir: str | None = None
    region: str | None = None
    runner: dict[str, Any] | None = None
    steps: list[StepRecord] = field(default_factory=list)
    ignored: list[dict[str, Any]] = field(default_factory=list)
    selective_execution: dict[str, Any] | None = None  # SelectiveExecutionConfig, if any
    report: str = "report.html"
    schema_version: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def not_run(self) -> list[dict[str, Any]]:
        """The steps that did not run, and why."""
        return [
            {"name": s.name, "type": s.type, "reason": s.not_run_reason}
            for s in self.steps
            if s.status == NOT_RUN
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "execution_id": self.execution_id,
            "execution_arn": self.execution_arn,
            "pipeline_name": self.pipeline_name,
            "status": self.status,
            "failure_reason": self.failure_reason,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "duration_seconds": self.duration_seconds,
            "parameters": self.parameters,
            "parameter_overrides": self.parameter_overrides,
            "workdir": self.workdir,
            "run_dir": self.run_dir,
            "region": self.region,
            "runner": self.runner,
            "steps": [step.to_dict() for step in self.steps],
            "not_run": self.not_run,
            "ignored": self.ignored,
            "selective_execution": self.selective_execution,
            "report": self.report,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        steps = [StepRecord.from_dict(s) for s in data.get("steps") or [] if isinstance(s, dict)]
        rest = {key: value for key, value in data.items() if key != "not_run"}
        return _from_dict(cls, rest, steps=steps)  # type: ignore[no-any-return]


@dataclass
class ModelPackageRecord:
    """``registry/<group>/<version>.json``: one version of a model package group."""

    # SageMaker's member names, in the file's order.
    ModelPackageGroupName: str  # noqa: N815
    ModelPackageVersion: int  # noqa: N815
    ModelPackageArn: str  # noqa: N815
    ModelPackageStatus: str  # noqa: N815
    ModelApprovalStatus: str  # noqa: N815
    CreationTime: str  # noqa: N815
    extra: dict[str, Any] = field(default_factory=dict)  # the request's members, as stored

    def to_dict(self) -> dict[str, Any]:
        return _to_dict(self)
