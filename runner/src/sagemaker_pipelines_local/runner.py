"""Run a SageMaker pipeline definition (the JSON ``pipeline.definition()`` returns) locally.

The runner interprets the definition itself: it validates everything it can before any
step runs, builds the step graph from data dependencies (``Get Steps.X``) and
``DependsOn``, runs ready steps in a thread pool, follows Condition branches, and writes
``<workdir>/runs/<execution id>/run.json`` and ``report.html``.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import string
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .arns import DEFAULT_ACCOUNT_ID, Arns
from .cost import instance_of
from .endpoints import LiveEndpoints
from .expressions import (
    UNRESOLVED,
    ExecutionVariables,
    PropertyFileRef,
    Resolver,
    StepFailure,
    UnsupportedFeatureError,
    step_references,
)
from .image import StepEnvironments
from .jobs import StepJob
from .processes import ProcessTracker, StepStopped
from .records import RunRecord, StepRecord
from .registry import LocalModelRegistry
from .runs import recover_abandoned_runs, runner_process
from .selective import SelectivePlan, plan_selection, with_downstream
from .stepcache import CACHEABLE, StepCache
from .steps import (
    EXECUTORS,
    SUPPORTED_STEP_TYPES,
    FailStepError,
    StepOutcome,
    cleanup_work_dir,
)
from .store import LocalObjectStore, MissingObjectError, write_json_atomic
from .warmpool import WarmPools
from .workspace import Workspace

__all__ = ["ExecutionResult", "StepEvent", "resolve_parameters", "run_pipeline", "steps_from"]

SUCCEEDED, FAILED, STOPPED, EXECUTING = "Succeeded", "Failed", "Stopped", "Executing"
NOT_RUN, PENDING = "NotRun", "Pending"
SUPPORTED_VERSIONS = ("2020-12-01",)
PARAMETER_TYPES = ("String", "Integer", "Float", "Boolean")
_STEP_NAME = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")
_EXECUTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_]{0,63}$")
_TRUE = ("true", "1", "yes", "y", "on")
_FALSE = ("false", "0", "no", "n", "off")


# ---------------------------------------------------------------------------- public types
@dataclass(frozen=True)
class StepEvent:
    """A step changed state: Executing, Succeeded, Failed or Stopped (SageMaker's words)."""

    step_name: str
    step_type: str
    status: str
    elapsed_seconds: float
    message: str = ""

    @property
    def name(self) -> str:
        return self.step_name

    @property
    def type(self) -> str:
        return self.step_type

    @property
    def elapsed(self) -> float:
        return self.elapsed_seconds


@dataclass
class ExecutionResult:
    """Outcome of :func:`run_pipeline`; ``steps`` are the step records of ``run.json``."""

    execution_id: str
    status: str
    failure_reason: str | None
    steps: list[dict[str, Any]]
    run_dir: Path
    parameters: dict[str, Any]
    pipeline_name: str = ""
    start_time: str = ""
    end_time: str = ""
    not_run: list[dict[str, Any]] = field(default_factory=list)
    record_path: Path = field(default=Path("run.json"))
    report_path: Path = field(default=Path("report.html"))

    @property
    def succeeded(self) -> bool:
        return self.status == SUCCEEDED

    def step(self, name: str) -> dict[str, Any]:
        for rec in self.steps:
            if rec["name"] == name:
                return rec
        raise KeyError(f"No step named {name!r} in execution {self.execution_id}")


# ---------------------------------------------------------------------------- helpers
def _now() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_execution_id() -> str:
    """12 lowercase alphanumerics, like SageMaker's pipeline execution ids."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


def _write_record(path: Path, data: Any) -> None:
    write_json_atomic(path, data, default=_json_default)


def _json_default(value: Any) -> Any:
    if value is UNRESOLVED:
        return None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, PropertyFileRef):
        return {"PropertyFile": value.name, "Step": value.step, "Source": value.source}
    return str(value)


class _StopSignal(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the runner: stop the execution (a KeyboardInterrupt, so a
    Ctrl-C simulated by ``_thread.interrupt_main`` and a real signal take the same path)."""


_SIGNAL_WORDS = {"SIGINT": "SIGINT (Ctrl-C)", "SIGTERM": "SIGTERM"}


@contextmanager
def _stop_on_signals(run: _Execution) -> Iterator[None]:
    """While the execution runs, SIGINT and SIGTERM stop it instead of killing the runner.

    The first signal raises :class:`_StopSignal` in the scheduler (the main thread), which
    stops every step process and finishes the record; further signals while it stops are
    ignored, as a stop takes at most a few seconds. A signal the caller ignores (a shell
    ignores SIGINT for background jobs) stays ignored. Outside the main thread Python cannot
    handle signals: the caller handles them.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        if run.stop_signal is None and run.end is None:
            run.stop_signal = signal.Signals(signum).name
            raise _StopSignal(run.stop_signal)

    previous: dict[int, Any] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(signum)
        if current == signal.SIG_IGN:
            continue
        previous[signum] = current
        signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, current in previous.items():
            signal.signal(signum, current)


# ---------------------------------------------------------------------------- parameters
def _describe_parameters(declared: Mapping[str, Mapping[str, Any]]) -> str:
    return ", ".join(f"{n} ({p.get('Type', 'String')})" for n, p in declared.items()) or "none"


def _convert(value: Any, ptype: str) -> Any:
    if ptype == "String":
        return value if isinstance(value, str) else str(value)
    text = str(value).strip()
    if ptype == "Integer":
        if isinstance(value, bool):
            raise ValueError("not an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not re.fullmatch(r"[-+]?\d+", text):
            raise ValueError("not an integer")
        return int(text)
    if ptype == "Float":
        if isinstance(value, bool):
            raise ValueError("not a number")
        if isinstance(value, (int, float)):
            return float(value)
        try:
            number = float(text)
        except ValueError:
            raise ValueError("not a number") from None
        if number != number or number in (float("inf"), float("-inf")):
            raise ValueError("not a finite number")
        return number
    if ptype == "Boolean":
        if isinstance(value, bool):
            return value
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError("not a boolean (use true or false)")
    raise ValueError(f"unknown parameter type {ptype}")


def _load_definition(definition: Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    if isinstance(definition, (str, bytes)):
        try:
            definition = json.loads(definition)
        except json.JSONDecodeError as exc:
            raise ValueError(f"The pipeline definition is not valid JSON: {exc}") from None
    if not isinstance(definition, Mapping):
        raise ValueError("The pipeline definition must be a JSON object")
    return definition


def resolve_parameters(
    definition: Mapping[str, Any] | str | bytes, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Typed values of the pipeline parameters: defaults, then the (string) overrides.

    The definition (JSON text or a dict) is the source of truth: with no overrides this is
    what each parameter's default is, e.g. the S3 URI the pipeline reads its input from.
    """
    definition = _load_definition(definition)
    declared: dict[str, Mapping[str, Any]] = {}
    for p in definition.get("Parameters") or []:
        name = p.get("Name")
        ptype = p.get("Type", "String")
        if ptype not in PARAMETER_TYPES:
            raise UnsupportedFeatureError(None, f"Parameters[{name}].Type", ptype)
        declared[name] = p
    values: dict[str, Any] = {}
    for name, p in declared.items():
        if "DefaultValue" in p and p["DefaultValue"] is not None:
            try:
                values[name] = _convert(p["DefaultValue"], p.get("Type", "String"))
            except ValueError as exc:
                raise ValueError(
                    f"Parameter {name!r} ({p.get('Type', 'String')}) has an invalid default "
                    f"{p['DefaultValue']!r}: {exc}"
                ) from None
    for name, raw in (overrides or {}).items():
        if name not in declared:
            raise ValueError(
                f"Unknown pipeline parameter {name!r}. Allowed parameters: "
                f"{_describe_parameters(declared)}"
            )
        ptype = declared[name].get("Type", "String")
        try:
            values[name] = _convert(raw, ptype)
        except ValueError as exc:
            raise ValueError(
                f"Invalid value {raw!r} for pipeline parameter {name!r} of type {ptype}: {exc}. "
                f"Allowed parameters: {_describe_parameters(declared)}"
            ) from None
    for name, p in declared.items():
        if name not in values:
            raise ValueError(
                f"Pipeline parameter {name!r} ({p.get('Type', 'String')}) has no default value; "
                "pass a value for it"
            )
        enum = p.get("EnumValues")
        if enum and values[name] not in enum:
            raise ValueError(
                f"Invalid value {values[name]!r} for pipeline parameter {name!r}: allowed values "
                f"are {', '.join(map(str, enum))}"
            )
    return values


# ---------------------------------------------------------------------------- the plan
@dataclass
class _Node:
    name: str
    type: str
    definition: Mapping[str, Any]
    deps: list[str]
    gate: tuple[str, bool] | None
    order: int

    def arguments_to_resolve(self) -> Mapping[str, Any]:
        args = self.definition.get("Arguments") or {}
        if self.type == "Condition":
            return {k: v for k, v in args.items() if k not in ("IfSteps", "ElseSteps")}
        return args


_STEP_KEYS = ("Name", "Type", "Arguments", "DependsOn", "Description", "DisplayName")
_STEP_IGNORED = {
    "RetryPolicies": "no automatic retries locally",
}


def _flatten(
    steps: Any, gate: tuple[str, bool] | None, nodes: dict[str, _Node], where: str
) -> None:
    if not isinstance(steps, list):
        raise ValueError(f"{where} must be a list of steps")
    for raw in steps:
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where} contains a step that is not an object: {raw!r}")
        name, stype = raw.get("Name"), raw.get("Type")
        if not isinstance(name, str) or not _STEP_NAME.match(name):
            raise ValueError(f"Invalid step name {name!r} in {where}")
        if name in nodes:
            raise ValueError(f"Duplicate step name {name!r} in the pipeline definition")
        if not isinstance(stype, str):
            raise ValueError(f"Step {name!r} has no Type")
        depends = raw.get("DependsOn") or []
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            raise ValueError(f"Step {name!r}: DependsOn must be a list of step names")
        node = _Node(name, stype, raw, [], gate, len(nodes))
        refs = step_references(node.arguments_to_resolve())
        node.deps = list(dict.fromkeys([*depends, *sorted(refs)]))
        nodes[name] = node
        if stype == "Condition":
            args = raw.get("Arguments") or {}
            _flatten(args.get("IfSteps") or [], (name, True), nodes, f"{name}.IfSteps")
            _flatten(args.get("ElseSteps") or [], (name, False), nodes, f"{name}.ElseSteps")


def build_plan(definition: Mapping[str, Any]) -> dict[str, _Node]:
    """Flattened steps (Condition branches included) with validated dependencies."""
    nodes: dict[str, _Node] = {}
    _flatten(definition.get("Steps"), None, nodes, "Steps")
    if not nodes:
        raise ValueError("The pipeline definition has no steps")
    for node in nodes.values():
        for dep in node.deps:
            if dep not in nodes:
                raise ValueError(f"Step {node.name!r} depends on unknown step {dep!r}")
            if dep == node.name:
                raise ValueError(f"Step {node.name!r} depends on itself")
    # Cycle check over data/DependsOn edges plus condition -> branch edges.
    edges = {n.name: set(n.deps) | ({n.gate[0]} if n.gate else set()) for n in nodes.values()}
    state: dict[str, int] = {}

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name) :] + [name]
            raise ValueError(f"The pipeline has a dependency cycle: {' -> '.join(cycle)}")
        state[name] = 1
        for dep in sorted(edges[name]):
            visit(dep, [*path, name])
        state[name] = 2

    for name in nodes:
        visit(name, [])
    return nodes


def upstream(nodes: Mapping[str, _Node]) -> dict[str, set[str]]:
    """Each step's direct upstream: its data and DependsOn edges, and its condition step."""
    return {n.name: set(n.deps) | ({n.gate[0]} if n.gate else set()) for n in nodes.values()}


def steps_from(definition: Mapping[str, Any] | str, step: str) -> list[str]:
    """``step`` and every step after it (that depends on it, or is in a branch of it), in
    the definition's order: what "run from this step" selects. ValueError for an unknown
    step, naming the steps there are."""
    nodes = build_plan(_load_definition(definition))
    if step not in nodes:
        raise ValueError(f"Step {step!r} is not in the pipeline (its steps: {', '.join(nodes)})")
    chosen = with_downstream(upstream(nodes), step)
    return [name for name in nodes if name in chosen]


def _check_definition(definition: Mapping[str, Any], ignored: list[dict[str, Any]]) -> None:
    version = definition.get("Version")
    if version not in SUPPORTED_VERSIONS:
        raise UnsupportedFeatureError(None, "Version", version, "definition format version")
    for key, value in definition.items():
        if key in ("Version", "Metadata", "Parameters", "Steps"):
            continue
        if key == "PipelineExperimentConfig":
            if value:
                ignored.append(
                    {
                        "step": None,
                        "setting": key,
                        "value": value,
                        "reason": "no SageMaker Experiments locally",
                    }
                )
            continue
        if key == "MlflowConfig":
            if value:
                ignored.append(
                    {"step": None, "setting": key, "value": value, "reason": "no MLflow locally"}
                )
            continue
        raise UnsupportedFeatureError(None, key, value, "unknown top-level setting")


def _preflight(
    nodes: Mapping[str, _Node], resolver: Resolver, ignored: list[dict[str, Any]]
) -> None:
    """Refuse unsupported step types and settings before anything runs."""
    for node in nodes.values():
        if node.type not in EXECUTORS:
            raise UnsupportedFeatureError(
                node.name,
                "Type",
                node.type,
                f"step type; supported step types: {', '.join(SUPPORTED_STEP_TYPES)}",
            )
    for node in nodes.values():
        for key, value in node.definition.items():
            if key in _STEP_KEYS:
                continue
            if key == "PropertyFiles" and node.type == "Processing":
                continue
            if key == "CacheConfig":
                try:
                    StepCache.check(value)
                except ValueError as exc:
                    raise ValueError(f"Step {node.name!r}: {exc}") from None
                if StepCache.enabled(value) and node.type not in CACHEABLE:
                    ignored.append(
                        {
                            "step": node.name,
                            "setting": key,
                            "value": value,
                            "reason": "SageMaker caches only job steps (processing, training, "
                            "transform): this step runs every time",
                        }
                    )
                continue
            if key in _STEP_IGNORED:
                if value:
                    ignored.append(
                        {
                            "step": node.name,
                            "setting": key,
                            "value": value,
                            "reason": _STEP_IGNORED[key],
                        }
                    )
                continue
            raise UnsupportedFeatureError(node.name, key, value, "step setting")
        try:
            partial = resolver.resolve(node.arguments_to_resolve())
        except UnsupportedFeatureError as exc:
            if exc.step is None:
                raise UnsupportedFeatureError(node.name, exc.setting, exc.value) from None
            raise
        except StepFailure as exc:
            raise ValueError(f"Step {node.name!r}: {exc}") from None
        if node.type == "Condition":
            raw = node.definition.get("Arguments") or {}
            partial = {**partial, **{k: raw[k] for k in ("IfSteps", "ElseSteps") if k in raw}}
        try:
            EXECUTORS[node.type].check(node.name, partial, lambda *_a: None)
        except StepFailure as exc:
            raise ValueError(str(exc)) from None


# ---------------------------------------------------------------------------- the run
class _Execution:
    def __init__(
        self,
        definition: Mapping[str, Any],
        nodes: dict[str, _Node],
        *,
        workspace: Workspace,
        execution: ExecutionVariables,
        parameters: dict[str, Any],
        overrides: Mapping[str, Any],
        ignored: list[dict[str, Any]],
        progress: Callable[[StepEvent], None] | None,
        max_workers: int,
        arns: Arns,
        environments: StepEnvironments | None = None,
        selective: SelectivePlan | None = None,
        warm: WarmPools | None = None,
    ) -> None:
        self.environments = environments
        self.selective = selective
        self.warm = warm
        self.definition = definition
        self.nodes = nodes
        self.workspace = workspace
        self.workdir = workspace.root
        self.run_dir = workspace.run_dir(execution.execution_id)
        self.execution = execution
        self.parameters = parameters
        self.overrides = dict(overrides)
        self.ignored = ignored
        self.progress = progress
        self.max_workers = max_workers
        self.store = LocalObjectStore(workspace)
        self.registry = LocalModelRegistry(workspace)
        self.arns = arns
        self.cancel = threading.Event()
        self.processes = ProcessTracker()
        self.endpoints = LiveEndpoints(
            workspace, region=arns.region, account_id=arns.account_id, environments=environments
        )
        self.status: dict[str, str] = {name: PENDING for name in nodes}
        self.outcomes: dict[str, bool] = {}
        self.properties: dict[str, dict[str, Any]] = {}
        self.property_files: dict[tuple[str, str], PropertyFileRef] = {}
        self.records: dict[str, StepRecord] = {}
        self.started_at: dict[str, float] = {}
        self.failed_steps: list[str] = []
        self.failure_messages: list[str] = []
        self.halted_reason: str | None = None
        self.stopped = False
        self.stop_signal: str | None = None
        self.start = execution.start_time
        self.end: datetime | None = None
        self.bin_dir = self._make_bin_dir()
        self.runner = runner_process()
        for node in nodes.values():
            self.records[node.name] = StepRecord(
                name=node.name,
                type=node.type,
                depends_on=list(node.deps),
                branch={"condition": node.gate[0], "outcome": node.gate[1]} if node.gate else None,
            )
        if selective is not None:
            for node in nodes.values():
                if node.name in selective.reused:
                    self._reuse(node, selective.reused[node.name], selective.source_arn)
                elif node.name not in selective.selected:
                    self._mark_not_run(
                        node.name,
                        "not selected: this selective execution runs only "
                        f"{', '.join(sorted(selective.selected))}",
                    )

    def _reuse(self, node: _Node, source: Mapping[str, Any], source_arn: str) -> None:
        """A step the selected ones depend on: its results as the source execution left them."""
        rec, now = self.records[node.name], _iso(_now())
        rec.status, rec.start_time, rec.end_time, rec.duration_seconds = SUCCEEDED, now, now, 0.0
        rec.outputs = list(source.get("outputs") or [])
        rec.properties = dict(source.get("properties") or {})
        rec.property_files = dict(source.get("property_files") or {})
        rec.selective_execution_result = {"SourcePipelineExecutionArn": source_arn}
        self.status[node.name] = SUCCEEDED
        self.properties[node.name] = rec.properties
        for name, value in rec.property_files.items():
            self.property_files[(node.name, name)] = PropertyFileRef.from_record(
                node.name, name, value
            )
        if node.type == "Condition":
            self.outcomes[node.name] = rec.properties.get("Outcome") == "True"

    def _make_bin_dir(self) -> Path | None:
        """``python``/``python3`` on PATH point at this interpreter for shell entrypoints."""
        bin_dir = self.workspace.run_bin_dir(self.execution.execution_id)
        try:
            bin_dir.mkdir(parents=True, exist_ok=True)
            for name in ("python", "python3"):
                link = bin_dir / name
                if not link.exists():
                    link.symlink_to(sys.executable)
        except OSError:
            return None
        return bin_dir

    # -- events and records ---------------------------------------------------
    def _emit(self, name: str, status: str, message: str = "") -> None:
        if self.progress is None:
            return
        started = self.started_at.get(name)
        elapsed = round(time.monotonic() - started, 3) if started is not None else 0.0
        try:
            self.progress(StepEvent(name, self.nodes[name].type, status, elapsed, message))
        except Exception:  # noqa: BLE001, S110 - a broken progress callback must not break the run
            pass

    def overall_status(self) -> str:
        if self.end is None:
            return EXECUTING
        if self.stopped:
            return STOPPED
        if self.failed_steps:
            return FAILED
        return SUCCEEDED

    def failure_reason(self) -> str | None:
        if self.stopped and self.stop_signal:
            how = _SIGNAL_WORDS.get(self.stop_signal, self.stop_signal)
            return f"The execution was stopped: the runner received {how}."
        if self.stopped:
            return "The execution was stopped (interrupted by the user)."
        if not self.failure_messages:
            return None
        return "; ".join(self.failure_messages)

    def record(self) -> RunRecord:
        steps = [self.records[n.name] for n in sorted(self.nodes.values(), key=lambda n: n.order)]
        ignored = list(self.ignored)
        for rec in steps:
            ignored.extend(rec.ignored)
        duration = ((self.end or _now()) - self.start).total_seconds()
        return RunRecord(
            execution_id=self.execution.execution_id,
            execution_arn=self.execution.execution_arn,
            pipeline_name=self.execution.pipeline_name,
            status=self.overall_status(),
            failure_reason=self.failure_reason(),
            start_time=_iso(self.start),
            end_time=_iso(self.end),
            duration_seconds=round(duration, 3),
            parameters=self.parameters,
            parameter_overrides=self.overrides,
            workdir=str(self.workdir),
            run_dir=str(self.run_dir),
            region=self.arns.region,
            runner=self.runner,
            steps=steps,
            ignored=ignored,
            selective_execution=self.selective.config() if self.selective else None,
        )

    def save(self) -> None:
        path = self.workspace.run_record(self.execution.execution_id)
        _write_record(path, self.record().to_dict())

    # -- scheduling -------------------------------------------------------------
    def _blocker(self, node: _Node) -> str | None:
        """None when ``node`` can start, "" while it must wait, else why it cannot run."""
        if node.gate is not None:
            cond, branch = node.gate
            cstatus = self.status[cond]
            if cstatus in (PENDING, EXECUTING):
                return ""
            if cstatus != SUCCEEDED:
                return f"its condition step '{cond}' did not succeed ({cstatus})"
            if self.outcomes.get(cond) != branch:
                taken = "true" if self.outcomes.get(cond) else "false"
                return (
                    f"branch not taken: condition '{cond}' evaluated to {taken}, this step is "
                    f"in its {'IfSteps' if branch else 'ElseSteps'}"
                )
        for dep in node.deps:
            if self.status[dep] in (FAILED, STOPPED, NOT_RUN):
                return f"dependency '{dep}' {self.status[dep]}"
        if any(self.status[dep] != SUCCEEDED for dep in node.deps):
            return ""
        return None

    def _mark_not_run(self, name: str, reason: str) -> None:
        self.status[name] = NOT_RUN
        self.records[name].status = NOT_RUN
        self.records[name].not_run_reason = reason

    def _ready(self) -> list[_Node]:
        changed = True
        while changed:
            changed = False
            for node in self.nodes.values():
                if self.status[node.name] != PENDING:
                    continue
                blocker = self._blocker(node)
                if blocker:
                    self._mark_not_run(node.name, blocker)
                    changed = True
        return [
            n
            for n in sorted(self.nodes.values(), key=lambda n: n.order)
            if self.status[n.name] == PENDING and self._blocker(n) is None
        ]

    def run(self) -> None:
        self.processes.start_watchdog()
        self.save()
        if self.selective is not None:
            for name in self.selective.reused:
                message = f"reused: the results of execution {self.selective.source_id}"
                self._emit(name, SUCCEEDED, f"{message} (selective execution)")
        running: dict[Future[tuple[str, StepOutcome | None, str | None, StepJob]], str] = {}
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="step") as pool:
            while True:
                try:
                    if self.halted_reason is None:
                        started = False
                        for node in self._ready():
                            if len(running) >= self.max_workers:
                                break
                            running[self._submit(pool, node)] = node.name
                            started = True
                        if started:
                            # The record shows a started step as Executing, not Pending.
                            self.save()
                    else:
                        self._ready()
                    if not running:
                        break
                    done, _ = wait(list(running), timeout=0.2, return_when=FIRST_COMPLETED)
                    for fut in done:
                        self._finish(running[fut], fut)
                        del running[fut]
                        self.save()
                except KeyboardInterrupt:
                    # Ctrl-C: terminate the running jobs, let their threads finish, stop.
                    self._stop()
        for node in self.nodes.values():
            if self.status[node.name] == PENDING:
                reason = self._blocker(node) or (
                    f"not started: {self.halted_reason}" if self.halted_reason else "not started"
                )
                self._mark_not_run(node.name, reason)
        self.end = _now()

    def _stop(self) -> None:
        self.stopped = True
        self.halted_reason = "the execution was stopped"
        self.cancel.set()
        self.processes.terminate_all()

    def settle(self) -> None:
        """After the scheduler ended, however it ended: no step is left Executing or Pending.

        A step whose thread never reported back (the scheduler was interrupted while starting
        or collecting it) is stopped and recorded as Stopped.
        """
        left = [n for n, status in self.status.items() if status == EXECUTING]
        if left:
            self._stop()
        now = _iso(_now())
        for name in left:
            self.status[name] = STOPPED
            rec = self.records[name]
            rec.status = STOPPED
            rec.end_time = now
            if name in self.started_at:
                rec.duration_seconds = round(time.monotonic() - self.started_at[name], 3)
            rec.failure_reason = rec.failure_reason or "stopped: the execution was stopped"
        for name, status in self.status.items():
            if status == PENDING:
                self._mark_not_run(name, f"not started: {self.halted_reason or 'the runner ended'}")
        if self.end is None:
            self.end = _now()

    def _submit(
        self, pool: ThreadPoolExecutor, node: _Node
    ) -> Future[tuple[str, StepOutcome | None, str | None, StepJob]]:
        self.status[node.name] = EXECUTING
        rec = self.records[node.name]
        rec.status = EXECUTING
        rec.start_time = _iso(_now())
        self.started_at[node.name] = time.monotonic()
        self._emit(node.name, EXECUTING)
        resolver = Resolver(
            parameters=self.parameters,
            execution=self.execution,
            step_properties=dict(self.properties),
            property_files=dict(self.property_files),
            read_s3_json=self._read_s3_json,
        )
        step_dir = self.workspace.step_dir(self.execution.execution_id, node.name)
        step_dir.mkdir(parents=True, exist_ok=True)
        rec.step_dir = str(step_dir)
        job = StepJob(
            name=node.name,
            type=node.type,
            definition=node.definition,
            args={},
            step_dir=step_dir,
            work_dir=self.workspace.step_work_dir(self.execution.execution_id, node.name),
            workspace=self.workspace,
            store=self.store,
            registry=self.registry,
            execution=self.execution,
            arns=self.arns,
            resolver=resolver,
            cancel=self.cancel,
            processes=self.processes,
            bin_dir=self.bin_dir,
            environments=self.environments,
            endpoints=self.endpoints,
            warm=self.warm,
        )
        job.work_dir.mkdir(parents=True, exist_ok=True)
        return pool.submit(self._execute, node, job)

    def _read_s3_json(self, uri: str) -> Any:
        try:
            raw = self.store.read_bytes(uri)
        except (MissingObjectError, ValueError) as exc:
            raise StepFailure(f"Std:JsonGet: {exc}") from exc
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise StepFailure(f"Std:JsonGet: {uri} is not valid JSON: {exc}") from exc

    @staticmethod
    def _execute(node: _Node, job: StepJob) -> tuple[str, StepOutcome | None, str | None, StepJob]:
        executor = EXECUTORS[node.type]
        config = node.definition.get("CacheConfig")
        cache = None
        if node.type in CACHEABLE and StepCache.enabled(config):
            cache = StepCache(job.workspace, job.execution.pipeline_name)
        try:
            job.args = job.resolver.resolve(node.arguments_to_resolve())
            executor.check(node.name, job.args, job.ignore)
            hit = cache.lookup(node.name, node.type, job.args, config) if cache else None
            if hit is not None:
                job.cache_hit, job.outputs = hit.record(), list(hit.outputs)
                cleanup_work_dir(job)
                outcome = StepOutcome(properties=hit.properties, property_files=hit.property_files)
                return SUCCEEDED, outcome, None, job
            outcome = executor.run(job)
            if cache is not None:
                cache.store(
                    node.name,
                    node.type,
                    job.args,
                    execution_id=job.execution.execution_id,
                    execution_arn=job.execution.execution_arn,
                    properties=outcome.properties,
                    property_files=outcome.property_files,
                    outputs=list(job.outputs),
                )
        except FailStepError as exc:
            return FAILED, StepOutcome(properties={"ErrorMessage": str(exc)}), str(exc), job
        except StepStopped as exc:
            return STOPPED, None, str(exc), job
        except UnsupportedFeatureError as exc:
            if exc.step is None:
                exc = UnsupportedFeatureError(node.name, exc.setting, exc.value)
            return FAILED, None, str(exc), job
        except (StepFailure, MissingObjectError) as exc:
            return FAILED, None, str(exc), job
        except Exception as exc:  # noqa: BLE001 - any error fails the step, with a traceback
            tb_path = job.step_dir / "error.log"
            tb_path.write_text(traceback.format_exc(), encoding="utf-8")
            job.logs["error"] = str(tb_path)
            return (
                FAILED,
                None,
                f"{type(exc).__name__}: {exc} (traceback in {tb_path})",
                job,
            )
        cleanup_work_dir(job)
        return SUCCEEDED, outcome, None, job

    def _finish(self, name: str, fut: Future[Any]) -> None:
        node = self.nodes[name]
        rec = self.records[name]
        try:
            status, outcome, reason, job = fut.result()
        except BaseException as exc:  # noqa: BLE001 - defensive: _execute catches Exception
            status, outcome, reason, job = FAILED, None, f"{type(exc).__name__}: {exc}", None
        end = _now()
        rec.end_time = _iso(end)
        rec.duration_seconds = round(time.monotonic() - self.started_at[name], 3)
        rec.status = status
        rec.failure_reason = reason
        if job is not None:
            rec.logs = dict(job.logs)
            rec.outputs = list(job.outputs)
            rec.environment = job.environment
            if rec.environment is not None and job.process_starts:
                # How the step's processes started: forked from a warm pool, or new.
                rec.environment["processes"] = list(job.process_starts)
            rec.cache_hit = job.cache_hit
            instance = instance_of(node.type, job.args)
            if instance is not None:
                rec.instance = instance
            seen: set[str] = set()
            for item in job.ignored:
                if item["setting"] not in seen:
                    seen.add(item["setting"])
                    rec.ignored.append(item)
        if outcome is not None:
            rec.properties = outcome.properties
            rec.property_files = {pf.name: pf.to_record() for pf in outcome.property_files.values()}
        self.status[name] = status
        if status == SUCCEEDED and outcome is not None:
            self.properties[name] = outcome.properties
            for pf in outcome.property_files.values():
                self.property_files[(name, pf.name)] = pf
            if outcome.outcome is not None:
                self.outcomes[name] = outcome.outcome
        if status == FAILED:
            self.failed_steps.append(name)
            if node.type == "Fail":
                self.failure_messages.append(reason or "")
            else:
                self.failure_messages.append(f"Step '{name}' ({node.type}) failed: {reason}")
            if self.halted_reason is None:
                self.halted_reason = f"the execution failed (step '{name}' failed)"
        elif status == STOPPED:
            self.stopped = True
            if self.halted_reason is None:
                self.halted_reason = "the execution was stopped"
        if job is not None and job.cache_hit is not None:
            source = job.cache_hit["source_execution_id"]
            self._emit(name, status, f"cache hit: the outputs of execution {source} (CacheConfig)")
            return
        self._emit(name, status, reason or "")


# ---------------------------------------------------------------------------- entry point
def run_pipeline(
    definition: Mapping[str, Any] | str,
    *,
    workdir: Path,
    pipeline_name: str,
    region: str,
    account_id: str = DEFAULT_ACCOUNT_ID,
    parameters: Mapping[str, str] | None = None,
    execution_id: str | None = None,
    progress: Callable[[StepEvent], None] | None = None,
    max_workers: int = 2,
    environments: StepEnvironments | None = None,
    selective_execution: Mapping[str, Any] | None = None,
    warm_pool: float | None = None,
) -> ExecutionResult:
    """Run the pipeline definition on this machine and return the execution's outcome.

    ``workdir`` is the workspace folder (``.local/`` in a generated project): the object
    store under ``s3/``, the registry, the models and ``runs/<execution id>/``. ``region`` is
    the region the pipeline is deployed to and ``account_id`` the account (default the
    placeholder ``000000000000``); the run record and every ARN name them (the runner never
    reads either from the environment). ``environments`` chooses each step's Python: by
    default the image's library versions, built once and cached (see :mod:`.image`);
    ``StepEnvironments("current")`` runs the steps in this interpreter.
    ``selective_execution`` is ``StartPipelineExecution``'s ``SelectiveExecutionConfig``
    (``SourcePipelineExecutionArn``, ``SelectedSteps``): only those steps run, the steps
    they depend on take their results from that execution (see :mod:`.selective`).
    ``warm_pool`` is how long, in seconds, a warm pool of an image's Python stays up after
    its last step (steps fork from it instead of importing their libraries again; see
    :mod:`.warmpool`): default ``SAGEMAKER_PIPELINES_LOCAL_WARM_POOL`` or 600, ``0`` off.

    Raises ``ValueError`` (bad parameters, malformed definition) or
    :class:`UnsupportedFeatureError` before anything runs; a step that fails at run time
    makes the execution ``Failed`` instead (see ``failure_reason``).
    """
    definition = _load_definition(definition)
    warm = WarmPools(warm_pool)  # ValueError for a keep-alive out of range
    if max_workers < 1:
        raise ValueError("max_workers must be at least 1")
    if not pipeline_name:
        raise ValueError("pipeline_name is required")
    arns = Arns(region, account_id)
    # Absolute: jobs run with their temp root as cwd, so relative paths would break.
    workdir = Path(workdir).absolute()
    ignored: list[dict[str, Any]] = []
    _check_definition(definition, ignored)
    values = resolve_parameters(definition, parameters)
    nodes = build_plan(definition)

    if execution_id is None:
        execution_id = new_execution_id()
    elif not _EXECUTION_ID.match(execution_id):
        raise ValueError(f"Invalid execution id {execution_id!r}")
    execution = ExecutionVariables(
        pipeline_name=pipeline_name,
        execution_id=execution_id,
        execution_arn=arns.sagemaker(
            "pipeline", f"{pipeline_name.lower()}/execution/{execution_id}"
        ),
    )
    static = Resolver(parameters=values, execution=execution, partial=True)
    _preflight(nodes, static, ignored)

    workspace = Workspace(workdir)
    recover_abandoned_runs(workspace)
    selective = None
    if selective_execution is not None:
        selective = plan_selection(selective_execution, upstream(nodes), workspace, pipeline_name)
    run_dir = workspace.run_dir(execution_id)
    if run_dir.exists():
        raise ValueError(f"Execution {execution_id} already exists in {run_dir}")
    run_dir.mkdir(parents=True)
    run = _Execution(
        definition,
        nodes,
        workspace=workspace,
        execution=execution,
        parameters=values,
        overrides=parameters or {},
        ignored=ignored,
        progress=progress,
        max_workers=max_workers,
        arns=arns,
        environments=environments,
        selective=selective,
        warm=warm if warm.enabled else None,
    )
    with _stop_on_signals(run):
        try:
            run.run()
        except _StopSignal:
            # The signal came while the scheduler was between its own guards (starting the
            # thread pool or shutting it down): stop what runs; settle() records it.
            run._stop()
        finally:
            if run.end is None and not run.stopped and not run.failure_messages:
                # An unexpected error in the scheduler itself.
                run.failure_messages.append("the local runner stopped unexpectedly")
                run.failed_steps.append("")
            run.settle()
            record = run.record().to_dict()  # the record as run.json and the result hold it
            _finish_record(run, record)
    return ExecutionResult(
        execution_id=execution_id,
        status=record["status"],
        failure_reason=record["failure_reason"],
        steps=record["steps"],
        run_dir=run_dir,
        parameters=values,
        pipeline_name=pipeline_name,
        start_time=record["start_time"],
        end_time=record["end_time"],
        not_run=record["not_run"],
        record_path=workspace.run_record(execution_id),
        report_path=workspace.run_report(execution_id),
    )


def _finish_record(run: _Execution, record: dict[str, Any]) -> None:
    """Write the final run.json and report.html (also after a stop)."""
    execution_id = run.execution.execution_id
    _write_record(run.workspace.run_record(execution_id), record)
    try:
        from .report import write_report

        write_report(record, run.workspace.run_report(execution_id), run.store)
    except Exception as exc:  # noqa: BLE001 - the run record matters more than the report
        run.workspace.run_report_error(execution_id).write_text(
            f"The HTML report could not be written: {exc}\n{traceback.format_exc()}",
            encoding="utf-8",
        )
    if run.bin_dir is not None:
        shutil.rmtree(run.bin_dir, ignore_errors=True)
    run.endpoints.close()  # endpoints stay in the workspace; their servers end with the run
    run.processes.close()
