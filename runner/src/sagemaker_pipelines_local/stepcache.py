"""Step caching as SageMaker Pipelines does it: a job step whose ``CacheConfig`` is enabled
reuses the outputs of the pipeline's latest successful run of that step with the same key
attributes, if that run ended within ``ExpireAfter``.

The key attributes are SageMaker's, per step type (its "default cache key attributes"):
a processing job's AppSpecification, Environment and ProcessingInputs; a training job's
AlgorithmSpecification, CheckpointConfig, DebugHookConfig, DebugRuleConfigurations,
Environment, HyperParameters and InputDataConfig; a transform job's DataProcessing,
Environment, ModelName and TransformInput; all as resolved for this execution. As in
SageMaker, what an S3 URI points to is not part of the key: code or data that changes under
the same key is not noticed (put them under keys derived from their content). Outputs are
not part of the key either, so a step whose output paths name the execution still hits.

Entries live in the workspace (``cache/<pipeline>/<step>/<key>.json``); an entry whose
outputs are gone from the object store (a pruned run) is a miss.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from .expressions import PropertyFileRef
from .store import write_json_atomic
from .workspace import Workspace

__all__ = ["CACHEABLE", "CacheHit", "StepCache", "parse_expire_after"]

# The request fields SageMaker compares, per step type.
CACHEABLE: dict[str, tuple[str, ...]] = {
    "Processing": ("AppSpecification", "Environment", "ProcessingInputs"),
    "Training": (
        "AlgorithmSpecification",
        "CheckpointConfig",
        "DebugHookConfig",
        "DebugRuleConfigurations",
        "Environment",
        "HyperParameters",
        "InputDataConfig",
    ),
    "Transform": ("DataProcessing", "Environment", "ModelName", "TransformInput"),
}

# ISO 8601 durations as SageMaker takes them ("P30D", "PT1H", "P4DT12H"), also without the
# leading P ("30d", "T16m"), in either case. A month counts 30 days and a year 365.
_DURATION = re.compile(
    r"P?(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+)S)?)?",
    re.IGNORECASE,
)


def parse_expire_after(text: str) -> timedelta:
    """``ExpireAfter`` as a duration; ValueError naming the accepted forms otherwise."""
    match = _DURATION.fullmatch(str(text).strip())
    if not match or not any(match.groupdict().values()) or str(text).upper().endswith("T"):
        raise ValueError(
            f"CacheConfig.ExpireAfter {text!r} is not an ISO 8601 duration such as P30D "
            "(30 days), PT1H (one hour) or P4DT12H"
        )
    n = {name: int(value or 0) for name, value in match.groupdict().items()}
    return timedelta(
        days=n["years"] * 365 + n["months"] * 30 + n["weeks"] * 7 + n["days"],
        hours=n["hours"],
        minutes=n["minutes"],
        seconds=n["seconds"],
    )


@dataclass(frozen=True)
class CacheHit:
    """A previous run of the step that this one reuses."""

    execution_id: str
    execution_arn: str
    end_time: str
    properties: dict[str, Any]
    property_files: dict[str, PropertyFileRef]
    outputs: list[dict[str, Any]]

    def record(self) -> dict[str, Any]:
        """What the run record says of the hit (SageMaker's CacheHitResult, and when)."""
        return {
            "SourcePipelineExecutionArn": self.execution_arn,
            "source_execution_id": self.execution_id,
            "source_end_time": self.end_time,
        }


class StepCache:
    """The cache entries of one pipeline in a workspace."""

    def __init__(self, workspace: Workspace, pipeline_name: str) -> None:
        self.workspace = workspace
        self.pipeline_name = pipeline_name

    @staticmethod
    def enabled(config: Any) -> bool:
        return isinstance(config, Mapping) and config.get("Enabled") is True

    @staticmethod
    def check(config: Any) -> None:
        """Refuse a CacheConfig SageMaker would refuse (ValueError with the reason)."""
        if config is None:
            return
        if not isinstance(config, Mapping) or not isinstance(config.get("Enabled"), bool):
            raise ValueError(f"CacheConfig must be {{'Enabled': true|false, ...}}, not {config!r}")
        unknown = set(config) - {"Enabled", "ExpireAfter"}
        if unknown:
            raise ValueError(f"CacheConfig has unknown field(s): {', '.join(sorted(unknown))}")
        if config.get("ExpireAfter") is not None:
            parse_expire_after(config["ExpireAfter"])

    @staticmethod
    def key(step_type: str, args: Mapping[str, Any]) -> str:
        """The digest of the step's key attributes, as resolved for this execution."""
        attributes = {name: args.get(name) for name in CACHEABLE[step_type]}
        text = json.dumps([step_type, attributes], sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _entry(self, step: str, key: str) -> Path:
        return self.workspace.step_cache_entry(self.pipeline_name, step, key)

    def lookup(
        self, step: str, step_type: str, args: Mapping[str, Any], config: Mapping[str, Any]
    ) -> CacheHit | None:
        """The run to reuse, or None: no entry, expired, or its outputs are gone."""
        path = self._entry(step, self.key(step_type, args))
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            ended = datetime.fromisoformat(entry["end_time"].replace("Z", "+00:00"))
        except (OSError, ValueError, KeyError, AttributeError):
            return None
        expire = config.get("ExpireAfter")
        if expire is not None and datetime.now(UTC) - ended > parse_expire_after(expire):
            return None
        outputs = list(entry.get("outputs") or [])
        if any(o.get("local_path") and not Path(o["local_path"]).exists() for o in outputs):
            return None
        files = {
            name: PropertyFileRef.from_record(step, name, value)
            for name, value in (entry.get("property_files") or {}).items()
        }
        return CacheHit(
            execution_id=entry["execution_id"],
            execution_arn=entry["execution_arn"],
            end_time=entry["end_time"],
            properties=dict(entry.get("properties") or {}),
            property_files=files,
            outputs=outputs,
        )

    def store(
        self,
        step: str,
        step_type: str,
        args: Mapping[str, Any],
        *,
        execution_id: str,
        execution_arn: str,
        properties: Mapping[str, Any],
        property_files: Mapping[str, PropertyFileRef],
        outputs: list[dict[str, Any]],
    ) -> None:
        """Keep this successful run as the step's latest for its key."""
        end = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        entry = {
            "pipeline_name": self.pipeline_name,
            "step": step,
            "type": step_type,
            "execution_id": execution_id,
            "execution_arn": execution_arn,
            "end_time": end,
            "properties": dict(properties),
            "property_files": {name: pf.to_record() for name, pf in property_files.items()},
            "outputs": outputs,
        }
        write_json_atomic(self._entry(step, self.key(step_type, args)), entry)
