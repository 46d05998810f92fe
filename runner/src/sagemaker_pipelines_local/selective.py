"""Selective execution, as ``StartPipelineExecution``'s ``SelectiveExecutionConfig`` asks
for it: only the selected steps run; the steps they depend on (data, ``DependsOn``, the
condition whose branch holds them) are not run again but take their results from a source
execution of the same pipeline, where each of them must have succeeded; every other step
is not run. :func:`steps_from` gives the usual selection, "from this step on".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .workspace import Workspace

__all__ = [
    "SelectivePlan",
    "latest_execution",
    "plan_selection",
    "selective_execution_config",
    "with_downstream",
]


def selective_execution_config(source_arn: str, steps: Iterable[str]) -> dict[str, Any]:
    """``StartPipelineExecution``'s ``SelectiveExecutionConfig``: run `steps`, take what they
    need from the execution `source_arn`."""
    return {
        "SourcePipelineExecutionArn": source_arn,
        "SelectedSteps": [{"StepName": name} for name in steps],
    }


@dataclass(frozen=True)
class SelectivePlan:
    """What a selective execution runs, and what it takes from its source execution."""

    source_arn: str
    source_id: str
    selected: frozenset[str]
    reused: Mapping[str, Mapping[str, Any]]  # step name -> its record in the source

    def config(self) -> dict[str, Any]:
        """The request's ``SelectiveExecutionConfig``, as the run record keeps it."""
        return selective_execution_config(self.source_arn, sorted(self.selected))


def with_downstream(upstream: Mapping[str, Iterable[str]], start: str) -> set[str]:
    """``start`` and every step that depends on it, directly or through others."""
    chosen = {start}
    changed = True
    while changed:
        changed = False
        for name, before in upstream.items():
            if name not in chosen and chosen & set(before):
                chosen.add(name)
                changed = True
    return chosen


def _needed(upstream: Mapping[str, Iterable[str]], selected: set[str]) -> set[str]:
    """The steps outside ``selected`` that a selected step depends on, transitively."""
    needed: set[str] = set()
    todo = [dep for name in selected for dep in upstream[name]]
    while todo:
        name = todo.pop()
        if name in selected or name in needed:
            continue
        needed.add(name)
        todo.extend(upstream[name])
    return needed


def latest_execution(workdir: Workspace | str | Path, pipeline_name: str) -> dict[str, Any] | None:
    """The run record of the pipeline's most recently started execution in the workspace."""
    workspace = Workspace.of(workdir)
    latest: dict[str, Any] | None = None
    for path in workspace.runs_dir.glob("*/run.json") if workspace.runs_dir.is_dir() else []:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if record.get("pipeline_name") != pipeline_name:
            continue
        if latest is None or str(record.get("start_time")) > str(latest.get("start_time")):
            latest = record
    return latest


def plan_selection(
    config: Mapping[str, Any],
    upstream: Mapping[str, Iterable[str]],
    workspace: Workspace,
    pipeline_name: str,
) -> SelectivePlan:
    """Check ``config`` against the pipeline and the source execution; ValueError naming
    what is wrong and what to do, before anything runs."""
    arn = str(config.get("SourcePipelineExecutionArn") or "")
    selected_steps = config.get("SelectedSteps") or []
    names = [str(s.get("StepName")) for s in selected_steps if isinstance(s, Mapping)]
    if not arn or not names or len(names) != len(selected_steps):
        raise ValueError(
            "SelectiveExecutionConfig needs SourcePipelineExecutionArn and at least one "
            "SelectedSteps entry {'StepName': ...}"
        )
    unknown = [name for name in names if name not in upstream]
    if unknown:
        raise ValueError(
            f"Selected step(s) {', '.join(unknown)} are not in the pipeline "
            f"(its steps: {', '.join(upstream)})"
        )
    source_id = arn.rsplit("/", 1)[-1]
    path = workspace.run_record(source_id)
    try:
        source = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ValueError(
            f"Source execution {source_id} is not in {workspace.runs_dir} (or its run.json "
            "cannot be read): give an execution of this workspace"
        ) from None
    if source.get("pipeline_name") != pipeline_name:
        raise ValueError(
            f"Source execution {source_id} ran pipeline {source.get('pipeline_name')}, not "
            f"{pipeline_name}: results are reused only within one pipeline"
        )
    steps = {s.get("name"): s for s in source.get("steps") or [] if isinstance(s, Mapping)}
    reused: dict[str, Mapping[str, Any]] = {}
    for name in sorted(_needed(upstream, set(names))):
        step = steps.get(name)
        status = step.get("status") if step else "absent"
        if status != "Succeeded":
            raise ValueError(
                f"Step '{name}' is {status} in execution {source_id}, and a selected step "
                f"needs its results: run from an earlier step, including '{name}'"
            )
        gone = [
            o["local_path"]
            for o in step.get("outputs") or []
            if o.get("local_path") and not Path(o["local_path"]).exists()
        ]
        if gone:
            raise ValueError(
                f"The outputs of step '{name}' in execution {source_id} are gone ({gone[0]}; "
                f"pruned?): run from an earlier step, including '{name}'"
            )
        reused[name] = step
    return SelectivePlan(
        source_arn=str(source.get("execution_arn") or arn),
        source_id=source_id,
        selected=frozenset(names),
        reused=reused,
    )
