#!/usr/bin/env python3
"""Benchmark `run-local` of a rendered project against its scripts run directly.

For every dataset size (the sample, then the sample resampled to more rows) this measures,
each in its own process tree, wall time (time.perf_counter) and peak memory (the sum of the
RSS of the process and all its descendants, sampled from /proc every 50 ms):

  SDK        `python -m <pkg> definition --rebuild -o FILE`: one SDK import + definition build
  DIRECT     the four scripts run directly, one after the other, with the arguments the
             pipeline definition passes them: preprocess.py -> train.py -> evaluate.py ->
             a small driver that imports the model's inference.py and calls model_fn, then
             input_fn / predict_fn / output_fn on MultiRecord mini-batches of batch.csv,
             as the batch transform does
  RUN-LOCAL  `python -m <pkg> run-local --data CSV --rebuild --workdir DIR`

(--rebuild: neither reads the definition back from the runner's build cache; warm pools
off: every step is a new process, as each direct script is) and reports
run-local / (DIRECT + SDK), the per-step times, and how time and memory grow with the
number of rows. The goals are printed as PASS/FAIL lines; nothing is asserted.
The Markdown result replaces the section between `<!-- bench:start -->` and
`<!-- bench:end -->` of docs/benchmarks.md (created if missing).

Usage (from the template repository, with copier installed):

    python bench/bench_run_local.py                       # 150,100000,1000000 rows
    python bench/bench_run_local.py --rows 150 --repeat 5 --no-write
    python bench/bench_run_local.py --project /tmp/bench-proj --uv /path/to/uv

Needs Linux (/proc) and only the standard library plus copier (for rendering).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime as dt
import itertools
import json
import math
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "benchmarks.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
MiB = 1024 * 1024
TRAIN_ENTRY = "train.py"  # SourceCode(entry_script=...) in pipeline.py; not in the definition

# Goals of the issue.
SAMPLE_RATIO_GOAL = 1.5  # run-local <= 1.5 x (direct scripts + one SDK import) on the sample
CSV_MEMORY_GOAL = 4.0  # run-local peak memory <= 4 x the input CSV's size (--csv-mb sizes)
OUTSIDE_STEPS = "outside steps"


# ============================================================================ measuring
@dataclass
class Measure:
    """One process tree: wall time, peak of the summed tree RSS, largest single process."""

    label: str
    seconds: float
    cpu_seconds: float  # user + system of the process and every descendant it waited for
    peak_tree_mib: float  # largest sum of PSS over the tree (shared pages counted once)
    peak_tree_rss_mib: float  # largest sum of VmRSS over the tree (shared pages counted twice)
    peak_process_mib: float  # largest single process (VmHWM / ru_maxrss)
    returncode: int
    log: Path
    samples: int = 0
    # (wall-clock time, tree PSS in KiB) of every sample, to find which step held the peak.
    timeline: list[tuple[float, int]] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                found.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return found


def _status_kib(pid: int) -> tuple[int, int, int]:
    """(VmRSS, VmHWM, Pss) of a process in KiB; zeros once it is gone.

    Pss (proportional set size) divides each shared page among the processes mapping it.
    Summing VmRSS instead counts twice the pages a child shares with its parent, e.g. the
    whole runner between fork() and exec() of a step, and the shared libraries.
    """
    rss = hwm = 0
    pss = -1
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                    break
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm, (rss if pss < 0 else pss)


class TreeSampler(threading.Thread):
    """Samples the summed RSS of a process tree every `interval` seconds."""

    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_tree_kib = 0
        self.peak_tree_rss_kib = 0
        self.peak_process_kib = 0
        self.samples = 0
        self.timeline: list[tuple[float, int]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(self.interval)

    def sample(self) -> None:
        pending: list[tuple[int, tuple[int, int] | None]] = [(self.pid, None)]
        seen, total_rss, total_pss = set(), 0, 0
        while pending:
            pid, parent = pending.pop()
            if pid in seen:
                continue
            seen.add(pid)
            # Children first, then this process's memory: a child forked in between is then
            # missed for one sample, rather than counted with the half of the parent's pages
            # that the parent, read before the fork, still reported as its own.
            children = _children(pid)
            rss, hwm, pss = _status_kib(pid)
            total_rss += rss
            # A child caught between (v)fork and exec still shows its parent's address space:
            # the same RSS and PSS to the KiB. Those pages are the parent's; count them once.
            if (rss, pss) != parent:
                total_pss += pss
            self.peak_process_kib = max(self.peak_process_kib, hwm, rss)
            pending.extend((child, (rss, pss)) for child in children)
        self.peak_tree_kib = max(self.peak_tree_kib, total_pss)
        self.peak_tree_rss_kib = max(self.peak_tree_rss_kib, total_rss)
        self.timeline.append((time.time(), total_pss))
        self.samples += 1

    def stop(self) -> None:
        self._done.set()
        self.join()


def measure(
    label: str,
    cmd: list[str],
    *,
    log: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    interval: float = 0.05,
    timeout: float | None = None,
) -> Measure:
    """Run `cmd` (output to `log`) and measure its wall time and peak tree RSS."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        out.write(("$ " + " ".join(cmd) + "\n").encode())
        out.flush()
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a timeout ends the whole tree
        )
        sampler = TreeSampler(proc.pid, interval)
        sampler.start()
        timer = None
        if timeout:
            timer = threading.Timer(timeout, _kill_group, args=(proc.pid,))
            timer.start()
        # wait4 gives the largest RSS of any process of the tree it waited for, exactly.
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if timer:
            timer.cancel()
        sampler.stop()
    peak_process = max(sampler.peak_process_kib, usage.ru_maxrss)
    # A process that exits between two samples is still bounded below by its own peak.
    return Measure(
        label=label,
        seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_tree_mib=max(sampler.peak_tree_kib, 1) / 1024,
        peak_tree_rss_mib=max(sampler.peak_tree_rss_kib, peak_process) / 1024,
        peak_process_mib=peak_process / 1024,
        returncode=proc.returncode,
        log=log,
        samples=sampler.samples,
        timeline=sampler.timeline,
    )


def _kill_group(pid: int) -> None:
    """Kill the measured tree: its group, and descendants that started their own session."""
    pending, tree = [pid], []
    while pending:
        current = pending.pop()
        tree.append(current)
        pending.extend(_children(current))
    for member in tree:
        try:
            os.kill(member, signal.SIGKILL)
        except OSError:
            pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ============================================================================ project
@dataclass
class Project:
    root: Path
    package: str
    target: str
    sample: Path

    @property
    def python(self) -> Path:
        return self.root / ".venv" / "bin" / "python"

    @property
    def scripts(self) -> Path:
        return self.root / "src" / self.package / "scripts"


def render(template: Path, dst: Path, vcs_ref: str | None, answers: dict[str, str]) -> None:
    import copier  # only needed to render; --project reuses one

    print(f"Rendering {template} ({vcs_ref or 'working tree'}) into {dst} ...", flush=True)
    copier.run_copy(
        str(template),
        dst,
        data=answers,
        defaults=True,
        unsafe=True,
        vcs_ref=vcs_ref,
        settings=copier.Settings(),
        quiet=True,
    )


def install(root: Path, uv: str, compile_bytecode: bool) -> None:
    print(f"Installing {root} (make install UV={uv}) ...", flush=True)
    done = subprocess.run(
        ["make", "-C", str(root), "install", f"UV={uv}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"make install failed ({done.returncode}):\n{done.stdout[-3000:]}")
    if compile_bytecode:
        # With PYTHONDONTWRITEBYTECODE set (some CI images and containers) no .pyc is ever
        # cached and every process recompiles pandas, sklearn and the SDK: several seconds per
        # process that a developer's machine does not pay. Compile once, as a first run would.
        print("Compiling bytecode of .venv and src/ (once) ...", flush=True)
        py = str(root / ".venv" / "bin" / "python")
        for folder in (root / ".venv" / "lib", root / "src"):
            subprocess.run(
                [py, "-m", "compileall", "-q", "-j0", str(folder)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                check=False,
            )


def load_project(root: Path) -> Project:
    answers = _answers(root / ".copier-answers.yml")
    package = answers.get("package_name") or ""
    if not (root / "src" / package).is_dir():
        found = [p.parent.name for p in (root / "src").glob("*/__main__.py")]
        if len(found) != 1:
            raise SystemExit(f"cannot tell the package of {root}: src/ has {found}")
        package = found[0]
    samples = sorted((root / "data").glob("*.csv"))
    if len(samples) != 1:
        raise SystemExit(f"expected one sample CSV in {root / 'data'}, found {samples}")
    with open(samples[0], newline="") as fh:
        header = next(csv.reader(fh))
    target = answers.get("target_column") or header[-1]
    return Project(root=root, package=package, target=target, sample=samples[0])


def _answers(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        import yaml

        data = yaml.safe_load(path.read_text()) or {}
        return {str(k): str(v) for k, v in data.items() if not isinstance(v, (list, dict))}
    except ImportError:
        out = {}
        for line in path.read_text().splitlines():
            key, sep, value = line.partition(":")
            if sep and not line.startswith((" ", "#", "-")):
                out[key.strip()] = value.strip().strip("'\"")
        return out


# ============================================================================ datasets
def scaled_dataset(
    sample: Path,
    target: str,
    rows: int,
    out: Path,
    seed: int,
    noise: float = 0.05,
    size_bytes: int = 0,
) -> Path:
    """`rows` rows drawn with replacement from `sample`, numeric features + N(0, noise * std).

    The sample itself when `rows` equals its size. With `size_bytes`, rows are drawn until
    the file holds that many bytes instead (`rows` is ignored). Deterministic for a seed.
    """
    with open(sample, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        data = [row for row in reader if row]
    if rows == len(data) and not size_bytes:
        return sample
    if out.is_file():
        return out
    numeric: dict[int, tuple[float, int]] = {}  # column -> (noise sigma, decimals)
    for i, name in enumerate(header):
        if name == target:
            continue
        try:
            values = [float(row[i]) for row in data if row[i].strip()]
        except ValueError:
            continue
        if len(values) < 2:
            continue
        decimals = max((len(row[i].partition(".")[2]) for row in data), default=0)
        numeric[i] = (noise * statistics.pstdev(values), decimals + 1)
    rng = random.Random(seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        drawn = 0
        # tell() on a text file is slow: by size, look every 1,024 rows (overshoot < 64 KiB).
        while (drawn % 1024 or fh.tell() < size_bytes) if size_bytes else (drawn < rows):
            row = list(rng.choice(data))
            for i, (sigma, decimals) in numeric.items():
                if row[i].strip():
                    row[i] = f"{float(row[i]) + rng.gauss(0.0, sigma):.{decimals}f}"
            writer.writerow(row)
            drawn += 1
    tmp.replace(out)
    return out


# ============================================================================ baseline
TRANSFORM_DRIVER = r'''
"""Score batch files with inference.py the way a MultiRecord/Line batch transform does."""
import importlib.util, json, sys
from pathlib import Path

spec = json.loads(Path(sys.argv[1]).read_text())
sys.path.insert(0, spec["code_dir"])
module_spec = importlib.util.spec_from_file_location(
    Path(spec["program"]).stem, Path(spec["code_dir"]) / spec["program"])
inference = importlib.util.module_from_spec(module_spec)
sys.modules[module_spec.name] = inference
module_spec.loader.exec_module(inference)
model = inference.model_fn(spec["model_dir"])
limit = spec["max_payload_bytes"]


def score(lines):
    data = inference.input_fn(b"\n".join(lines).decode("utf-8"), spec["content_type"])
    body = inference.output_fn(inference.predict_fn(data, model), spec["accept"])
    body = body[0] if isinstance(body, tuple) else body
    return body.encode("utf-8") if isinstance(body, str) else body


Path(spec["output_dir"]).mkdir(parents=True, exist_ok=True)
for path in spec["files"]:
    records = 0
    target = Path(spec["output_dir"]) / (Path(path).name + ".out")
    with open(path, "rb") as src, open(target, "wb") as dst:
        batch, size = [], 0
        for line in src:
            line = line.rstrip(b"\r\n")
            records += 1
            if batch and (spec["strategy"] != "MultiRecord" or size + 1 + len(line) > limit):
                dst.write(score(batch).rstrip(b"\n") + b"\n")
                batch, size = [], 0
            size += len(line) + (1 if batch else 0)
            batch.append(line)
        if batch:
            dst.write(score(batch).rstrip(b"\n") + b"\n")
    print(f"{Path(path).name}: {records} records")
'''


STEP_ENVIRONMENT: dict[str, Any] = {}  # what the runner chose, for the published table


def step_python(project: Project, definition: dict[str, Any]) -> str:
    """The Python run-local gives the steps: their image's environment, asked of the runner.

    The runner builds it once and caches it; asking here builds it before anything is timed,
    so neither side pays for the build and both run the scripts with the image's versions.
    """
    image = next(
        s["Arguments"]["AppSpecification"]["ImageUri"]
        for s in definition.get("Steps") or []
        if s.get("Type") == "Processing"
    )
    code = (
        "import json, sys; from sagemaker_pipelines_local import StepEnvironments; "
        "print(json.dumps(StepEnvironments().for_image(sys.argv[1])))"
    )
    out = subprocess.run(
        [str(project.python), "-c", code, str(image)],
        capture_output=True,
        text=True,
        check=True,
    )
    STEP_ENVIRONMENT.update(json.loads(out.stdout))
    return STEP_ENVIRONMENT["python"]


# Evaluate's meeting with the champion asks the model registry, which a script run by hand
# has none of: the direct run scores the new model alone (with nothing Approved, run-local's
# Evaluate adds one registry call to it, through the runner's local API).
CHAMPION_OPTIONS = ("--model-package-group", "--metric", "--margin")


def _without_champion(arguments: list[Any]) -> list[Any]:
    kept, skip = [], False
    for argument in arguments:
        if skip:
            skip = False
        elif argument in CHAMPION_OPTIONS:
            skip = True
        else:
            kept.append(argument)
    return kept


class Baseline:
    """Runs the definition's Processing/Training/Transform steps' scripts directly.

    Arguments, hyperparameters and transform settings come from the definition JSON, so the
    scripts get exactly what the pipeline passes, in the Python run-local gives them; container
    paths (/opt/ml/...) become host folders, and each step reads its inputs in place from the
    producing step's folders (no copies, no model.tar.gz): what a person chaining the scripts
    by hand would do.
    """

    def __init__(self, definition: dict[str, Any], project: Project) -> None:
        self.project = project
        self.step_python = step_python(project, definition)
        self.params = {p["Name"]: p.get("DefaultValue") for p in definition.get("Parameters") or []}
        self.steps: list[dict[str, Any]] = []
        self._flatten(definition.get("Steps") or [])
        self.by_name = {s["Name"]: s for s in self.steps}
        runnable = [
            s["Type"] for s in self.steps if s["Type"] in ("Processing", "Training", "Transform")
        ]
        if runnable.count("Training") != 1 or "Transform" not in runnable:
            raise SystemExit(f"unexpected pipeline shape for the baseline: {runnable}")

    def _flatten(self, steps: list[dict[str, Any]]) -> None:
        for step in steps:
            self.steps.append(step)
            if step["Type"] == "Condition":
                self._flatten(step["Arguments"].get("IfSteps") or [])

    # ---------------------------------------------------------------- resolving
    def resolve(self, value: Any, outputs: dict[str, dict[str, Path]], data_dir: Path) -> Any:
        if isinstance(value, dict) and "Get" in value:
            ref = value["Get"]
            if ref == "Parameters.InputDataUri":
                return data_dir
            if ref.startswith("Parameters."):
                return self.params[ref.split(".", 1)[1]]
            if ref.startswith("Execution."):
                return "baseline"
            if ref.startswith("Steps."):
                step, _, rest = ref[len("Steps.") :].partition(".")
                if rest.startswith("ProcessingOutputConfig.Outputs['"):
                    return outputs[step][rest.split("'")[1]]
                if rest == "ModelArtifacts.S3ModelArtifacts":
                    return outputs[step]["model"]
                if rest == "ModelName":
                    return step
            raise SystemExit(f"the baseline cannot resolve {ref}")
        if isinstance(value, dict) and "Std:Join" in value:
            join = value["Std:Join"]
            parts = [self.resolve(v, outputs, data_dir) for v in join["Values"]]
            return join["On"].join(str(p) for p in parts)
        return value

    # ---------------------------------------------------------------- running
    def run(
        self,
        data: Path,
        root: Path,
        logs: Path,
        env: dict[str, str],
        interval: float,
        timeout: float | None,
    ) -> list[Measure]:
        data_dir = root / "input"
        data_dir.mkdir(parents=True, exist_ok=True)
        (data_dir / data.name).symlink_to(data.resolve())
        outputs: dict[str, dict[str, Path]] = {}
        results = []
        py = self.step_python
        for step in self.steps:
            name, kind, args = step["Name"], step["Type"], step["Arguments"]
            work = root / name
            if kind == "Processing":
                cmd, cwd, step_env = self._processing(name, args, work, outputs, data_dir)
            elif kind == "Training":
                cmd, cwd, step_env = self._training(name, args, work, outputs, data_dir)
            elif kind == "Transform":
                cmd, cwd, step_env = self._transform(args, work, outputs, data_dir)
            else:
                continue
            m = measure(
                name,
                [py, *cmd],
                log=logs / f"{name}.log",
                cwd=cwd,
                env={**env, **step_env},
                interval=interval,
                timeout=timeout,
            )
            results.append(m)
            if not m.ok:
                break
        return results

    def _map(self, text: str, work: Path, mapping: dict[str, Path]) -> str:
        if text in mapping:
            return str(mapping[text])
        if text.startswith("/opt/ml/"):
            return str(work / text.lstrip("/"))
        return text

    def _processing(self, name, args, work, outputs, data_dir):
        mapping: dict[str, Path] = {}
        for inp in args.get("ProcessingInputs") or []:
            if inp.get("InputName") == "code":
                continue
            s3 = inp["S3Input"]
            mapping[s3["LocalPath"]] = Path(self.resolve(s3["S3Uri"], outputs, data_dir))
        outputs[name] = {}
        for out in (args.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            local = work / out["S3Output"]["LocalPath"].lstrip("/")
            local.mkdir(parents=True, exist_ok=True)
            outputs[name][out["OutputName"]] = local
        app = args["AppSpecification"]
        script = self.project.scripts / Path(app["ContainerEntrypoint"][-1]).name
        cargs = [
            self._map(str(self.resolve(a, outputs, data_dir)), work, mapping)
            for a in _without_champion(app.get("ContainerArguments") or [])
        ]
        env = {
            k: str(self.resolve(v, outputs, data_dir))
            for k, v in (args.get("Environment") or {}).items()
        }
        work.mkdir(parents=True, exist_ok=True)
        return [str(script), *cargs], work, env

    def _training(self, name, args, work, outputs, data_dir):
        model_dir = work / "model"
        model_dir.mkdir(parents=True, exist_ok=True)
        env = {
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DATA_DIR": str(work / "output"),
        }
        for channel in args.get("InputDataConfig") or []:
            if channel["ChannelName"] in ("code", "sm_drivers"):
                continue
            uri = channel["DataSource"]["S3DataSource"]["S3Uri"]
            env[f"SM_CHANNEL_{channel['ChannelName'].upper()}"] = str(
                self.resolve(uri, outputs, data_dir)
            )
        hps = []
        for key, value in (args.get("HyperParameters") or {}).items():
            hps += [f"--{key}", str(self.resolve(value, outputs, data_dir))]
        outputs[name] = {"model": model_dir}
        env.update(
            {
                k: str(self.resolve(v, outputs, data_dir))
                for k, v in (args.get("Environment") or {}).items()
            }
        )
        return [str(self.project.scripts / TRAIN_ENTRY), *hps], work, env

    def _transform(self, args, work, outputs, data_dir):
        model_step = self.resolve(args["ModelName"], outputs, data_dir)
        container = self.by_name[model_step]["Arguments"]["PrimaryContainer"]
        model_dir = Path(self.resolve(container["ModelDataUrl"], outputs, data_dir))
        cenv = container.get("Environment") or {}
        submit = cenv.get("SAGEMAKER_SUBMIT_DIRECTORY", "/opt/ml/model/code")
        code_dir = model_dir / submit.removeprefix("/opt/ml/model").strip("/")
        tin, tout = args["TransformInput"], args.get("TransformOutput") or {}
        source = Path(self.resolve(tin["DataSource"]["S3DataSource"]["S3Uri"], outputs, data_dir))
        max_mb = float(args.get("MaxPayloadInMB") or 6)
        spec = {
            "model_dir": str(model_dir),
            "code_dir": str(code_dir),
            "program": cenv.get("SAGEMAKER_PROGRAM", "inference.py"),
            "files": [str(p) for p in sorted(source.rglob("*")) if p.is_file()],
            "output_dir": str(work / "output"),
            "content_type": tin.get("ContentType", "text/csv"),
            "accept": tout.get("Accept") or tin.get("ContentType", "text/csv"),
            "strategy": args.get("BatchStrategy") or "SingleRecord",
            "max_payload_bytes": int(max_mb * MiB),
        }
        work.mkdir(parents=True, exist_ok=True)
        (work / "spec.json").write_text(json.dumps(spec, indent=2))
        (work / "transform_driver.py").write_text(TRANSFORM_DRIVER)
        return (
            [str(work / "transform_driver.py"), str(work / "spec.json")],
            code_dir,
            {},
        )


# ============================================================================ one size
@dataclass
class Trial:
    sdk: Measure
    direct: list[Measure]
    run_local: Measure
    run_local_steps: dict[str, float] = field(default_factory=dict)
    run_local_pipeline_s: float | None = None
    run_local_step_mib: dict[str, float] = field(default_factory=dict)  # peak tree PSS per step

    @property
    def ok(self) -> bool:
        return bool(
            self.sdk.ok and self.run_local.ok and self.direct and all(m.ok for m in self.direct)
        )


@dataclass
class SizeResult:
    rows: int
    trials: list[Trial]
    csv_mib: float = 0.0
    memory_goal: bool = False  # measured for the "peak <= 4x the CSV" goal (--csv-mb)

    def ok(self) -> bool:
        return all(t.ok for t in self.trials)

    def med(self, fn) -> float:
        """Median over the trials of fn(trial); a trial whose commands failed is left out."""
        values = [fn(t) for t in self.trials if t.ok]
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else float("nan")

    # medians of each quantity across trials
    @property
    def sdk_s(self) -> float:
        return self.med(lambda t: t.sdk.seconds)

    @property
    def direct_s(self) -> float:
        return self.med(lambda t: sum(m.seconds for m in t.direct))

    @property
    def direct_plus_sdk_s(self) -> float:
        return self.med(lambda t: sum(m.seconds for m in t.direct) + t.sdk.seconds)

    @property
    def run_local_s(self) -> float:
        return self.med(lambda t: t.run_local.seconds)

    # Ratios are of the medians, so they match the medians shown next to them.
    @property
    def ratio(self) -> float:
        return _div(self.run_local_s, self.direct_plus_sdk_s)

    @property
    def cpu_direct_plus_sdk_s(self) -> float:
        return self.med(lambda t: sum(m.cpu_seconds for m in t.direct) + t.sdk.cpu_seconds)

    @property
    def cpu_run_local_s(self) -> float:
        return self.med(lambda t: t.run_local.cpu_seconds)

    @property
    def cpu_ratio(self) -> float:
        return _div(self.cpu_run_local_s, self.cpu_direct_plus_sdk_s)

    def rss(self, which: str) -> float:
        if which == "sdk":
            return self.med(lambda t: t.sdk.peak_tree_rss_mib)
        if which == "direct":
            return self.med(lambda t: max(m.peak_tree_rss_mib for m in t.direct))
        return self.med(lambda t: t.run_local.peak_tree_rss_mib)

    @property
    def sdk_mib(self) -> float:
        return self.med(lambda t: t.sdk.peak_tree_mib)

    @property
    def direct_mib(self) -> float:
        return self.med(lambda t: max(m.peak_tree_mib for m in t.direct))

    @property
    def run_local_mib(self) -> float:
        return self.med(lambda t: t.run_local.peak_tree_mib)

    @property
    def mem_ratio(self) -> float:
        """run-local holds the SDK while a script runs: compare with the two together."""
        return _div(self.run_local_mib, self.sdk_mib + self.direct_mib)

    def step_s(self, name: str, direct: bool) -> float:
        if direct:
            return self.med(lambda t: next((m.seconds for m in t.direct if m.label == name), None))
        return self.med(lambda t: t.run_local_steps.get(name))

    def step_mib(self, name: str) -> float:
        return self.med(
            lambda t: next((m.peak_tree_mib for m in t.direct if m.label == name), None)
        )

    def run_local_step_mib(self, name: str) -> float:
        return self.med(lambda t: t.run_local_step_mib.get(name))

    @property
    def csv_ratio(self) -> float:
        return _div(self.run_local_mib, self.csv_mib)


def _div(x: float, y: float) -> float:
    return x / y if y and not math.isnan(y) else float("nan")


def run_local_record(workdir: Path) -> tuple[dict[str, float], float | None]:
    record = _run_json(workdir)
    steps = {s["name"]: s.get("duration_seconds") or 0.0 for s in record.get("steps") or []}
    return steps, record.get("duration_seconds")


def _run_json(workdir: Path) -> dict[str, Any]:
    records = sorted((workdir / "runs").glob("*/run.json"))
    return json.loads(records[-1].read_text()) if records else {}


def run_local_step_peaks(workdir: Path, run: Measure) -> dict[str, float]:
    """Peak tree PSS (MiB) while each step ran, from run.json's start/end times.

    The tree is the runner plus the step's process; OUTSIDE_STEPS is the peak of the samples
    taken while no step ran (definition build, upload, report).
    """

    def when(text: str | None) -> float | None:
        if not text:
            return None
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    windows = {}
    for step in _run_json(workdir).get("steps") or []:
        start, end = when(step.get("start_time")), when(step.get("end_time"))
        if start is not None and end is not None:
            windows[step["name"]] = (start, end)
    peaks: dict[str, float] = {}
    for moment, kib in run.timeline:
        names = [n for n, (a, b) in windows.items() if a <= moment <= b] or [OUTSIDE_STEPS]
        for name in names:
            peaks[name] = max(peaks.get(name, 0.0), kib / 1024)
    return peaks


def bench_size(
    project: Project,
    data: Path,
    rows: int,
    repeat: int,
    work: Path,
    args: argparse.Namespace,
    env: dict[str, str],
) -> SizeResult:
    trials = []
    for rep in range(repeat):
        base = work / f"rows-{rows}" / f"rep-{rep}"
        shutil.rmtree(base, ignore_errors=True)
        # Alternate the order so neither side always gets the warmer page cache.
        trial = run_trial(project, data, base, env, args, run_local_first=rep % 2 == 1)
        trials.append(trial)
        _print_trial(rows, rep, trial)
        for m in [trial.sdk, *trial.direct, trial.run_local]:
            if not m.ok:
                print(f"  !! {m.label} exited {m.returncode}; log {m.log}:\n{tail(m.log)}")
        if not args.keep:
            for sub in ("direct", "run-local"):
                shutil.rmtree(base / sub, ignore_errors=True)
    return SizeResult(rows=rows, trials=trials)


def run_trial(
    project: Project,
    data: Path,
    base: Path,
    env: dict[str, str],
    args: argparse.Namespace,
    run_local_first: bool,
) -> Trial:
    """One measurement of each: SDK (definition), the direct scripts, run-local."""
    py = str(project.python)
    logs = base / "logs"
    definition_path = base / "definition.json"
    options = {
        "cwd": project.root,
        "env": env,
        "interval": args.interval,
        "timeout": args.timeout,
    }
    # --rebuild: both sides build the definition (the build cache would spare run-local the
    # SDK import after `definition`; a re-run's saving is measured apart).
    run_local_cmd = [py, "-m", project.package, "run-local", "--data", str(data), "--rebuild"]
    run_local_cmd += ["--workdir", str(base / "run-local")]
    run_local = None
    if run_local_first:
        run_local = measure("run-local", run_local_cmd, log=logs / "run-local.log", **options)
    sdk = measure(
        "definition",
        [py, "-m", project.package, "definition", "--rebuild", "-o", str(definition_path)],
        log=logs / "definition.log",
        **options,
    )
    direct = []
    if sdk.ok:
        baseline = Baseline(json.loads(definition_path.read_text()), project)
        direct = baseline.run(
            data, base / "direct", logs / "direct", env, args.interval, args.timeout
        )
    if run_local is None:
        run_local = measure("run-local", run_local_cmd, log=logs / "run-local.log", **options)
    steps, pipeline_s = run_local_record(base / "run-local")
    step_mib = run_local_step_peaks(base / "run-local", run_local)
    return Trial(
        sdk=sdk,
        direct=direct,
        run_local=run_local,
        run_local_steps=steps,
        run_local_pipeline_s=pipeline_s,
        run_local_step_mib=step_mib,
    )


def _print_trial(rows: int, rep: int, t: Trial) -> None:
    direct = " ".join(f"{m.label} {m.seconds:.1f}s/{m.peak_tree_mib:.0f}MiB" for m in t.direct)
    print(
        f"  rows {rows:>9,} #{rep + 1}: definition {t.sdk.seconds:.1f}s/"
        f"{t.sdk.peak_tree_mib:.0f}MiB | direct {direct} | run-local "
        f"{t.run_local.seconds:.1f}s/{t.run_local.peak_tree_mib:.0f}MiB "
        f"(steps {', '.join(f'{k} {v:.1f}s' for k, v in t.run_local_steps.items() if v >= 0.05)};"
        f" peak MiB {', '.join(f'{k} {v:.0f}' for k, v in t.run_local_step_mib.items())})",
        flush=True,
    )


# ============================================================================ report
def machine() -> dict[str, str]:
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / MiB:.1f} GiB"
    except OSError:
        pass
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def fmt(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:,.{digits}f}"


def growth(results: list[SizeResult]) -> list[dict[str, Any]]:
    rows = []
    for a, b in itertools.pairwise(results):
        r = b.rows / a.rows

        def g(fn, a=a, b=b, r=r):
            x, y = fn(a), fn(b)
            if math.isnan(x) or math.isnan(y):
                return None, None
            if x <= 0 or y <= 0:  # e.g. an overhead within the noise, below zero
                return float("nan"), float("nan")
            return y / x, math.log(y / x) / math.log(r) if r > 1 else float("nan")

        rows.append(
            {
                "from": a.rows,
                "to": b.rows,
                "rows_x": r,
                "run_local_time": g(lambda s: s.run_local_s),
                "direct_time": g(lambda s: s.direct_plus_sdk_s),
                "overhead_time": g(lambda s: s.run_local_s - s.direct_plus_sdk_s),
                "run_local_mem": g(lambda s: s.run_local_mib),
                "direct_mem": g(lambda s: s.direct_mib),
            }
        )
    return rows


def goals(results: list[SizeResult], sample_rows: int, tolerance: float) -> list[str]:
    lines = []
    sample = next((s for s in results if s.rows == sample_rows), None)
    if sample is None:
        lines.append("SKIP  sample: the sample size was not measured")
    elif not sample.ok():
        lines.append("FAIL  sample: a measured command failed")
    else:
        verdict = "PASS" if sample.ratio <= SAMPLE_RATIO_GOAL else "FAIL"
        lines.append(
            f"{verdict}  sample ({sample_rows} rows): run-local {sample.run_local_s:.1f} s = "
            f"{sample.ratio:.2f}x (direct scripts {sample.direct_s:.1f} s + one SDK import "
            f"{sample.sdk_s:.1f} s = {sample.direct_plus_sdk_s:.1f} s); goal <= "
            f"{SAMPLE_RATIO_GOAL}x"
        )
        lines.append(
            f"INFO  sample: CPU time run-local {sample.cpu_run_local_s:.1f} s vs direct + SDK "
            f"{sample.cpu_direct_plus_sdk_s:.1f} s = {sample.cpu_ratio:.2f}x (less sensitive "
            "to other load on the machine than wall time)"
        )
    for s in (s for s in results if s.memory_goal):
        if not s.trials or not s.ok():
            lines.append(f"FAIL  run-local peak memory at {s.csv_mib:.0f} MiB: a command failed")
            continue
        steps = {n: s.run_local_step_mib(n) for n in s.trials[0].run_local_step_mib}
        held = max(steps, key=lambda n: -1 if math.isnan(steps[n]) else steps[n], default="?")
        verdict = "PASS" if s.csv_ratio <= CSV_MEMORY_GOAL else "FAIL"
        lines.append(
            f"{verdict}  run-local peak memory <= {CSV_MEMORY_GOAL:g}x the CSV ({s.csv_mib:.0f} "
            f"MiB, {s.rows:,} rows): {s.run_local_mib:.0f} MiB = {s.csv_ratio:.2f}x, during {held}"
        )
    for row in growth(results):
        label = f"{row['from']:,} -> {row['to']:,} rows (x{row['rows_x']:,.0f})"
        limit = row["rows_x"] * (1 + tolerance)
        for key, what in (("run_local_time", "time"), ("run_local_mem", "peak memory")):
            factor, exponent = row[key]
            if factor is None:
                lines.append(f"FAIL  {what} {label}: not measured (a command failed)")
                continue
            verdict = "PASS" if factor <= limit else "FAIL"
            lines.append(
                f"{verdict}  run-local {what} {label}: x{factor:.2f} (exponent "
                f"{exponent:.2f}); linear allows x{row['rows_x']:,.0f} (+{tolerance:.0%})"
            )
    return lines


def markdown(
    results: list[SizeResult],
    info: dict[str, str],
    goal_lines: list[str],
    args: argparse.Namespace,
    project: Project,
    repeats: dict[int, int],
) -> str:
    out = [
        f"Measured {info['date']} on {info['nproc']} CPUs ({info['cpu']}), {info['memory']} RAM, "
        f"{info['os']}, Python {platform.python_version()} (project venv: "
        f"{_py_version(project)}; the scripts, both sides: Python "
        f"{STEP_ENVIRONMENT.get('python_version', '?')} with "
        f"{', '.join(STEP_ENVIRONMENT.get('versions', [])[:4]) or 'the project venv'}); "
        f"load average at the end {info['load']}. "
        f"Bytecode precompiled: {'no' if args.no_compile else 'yes'}. Datasets: seed "
        f"{args.seed}, noise {args.noise:g} x std. Median of "
        + ", ".join(f"{n} run(s) at {r:,} rows" for r, n in repeats.items())
        + ".",
        "",
        "Time, seconds (wall clock; CPU = user + system of the whole process tree):",
        "",
        (
            "| rows | SDK import + definition | direct scripts | direct + SDK | run-local "
            "| **run-local / (direct + SDK)** | CPU direct + SDK | CPU run-local "
            "| CPU ratio | run-local µs/row |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results:
        out.append(
            f"| {s.rows:,} | {fmt(s.sdk_s)} | {fmt(s.direct_s)} | {fmt(s.direct_plus_sdk_s)} | "
            f"{fmt(s.run_local_s)}{'' if s.ok() else ' (failed)'} | **{fmt(s.ratio, 2)}x** | "
            f"{fmt(s.cpu_direct_plus_sdk_s)} | {fmt(s.cpu_run_local_s)} | "
            f"{fmt(s.cpu_ratio, 2)}x | {fmt(s.run_local_s / s.rows * 1e6, 1)} |"
        )
    out += [
        "",
        (
            "Peak memory, MiB: largest sum over the process tree of PSS (shared pages counted "
            "once), with the sum of RSS in parentheses; direct = the largest of the four scripts:"
        ),
        "",
        (
            "| rows | CSV MiB | SDK import + definition | direct scripts | run-local "
            "| run-local / (SDK + largest script) | run-local / CSV |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in results:
        out.append(
            f"| {s.rows:,} | {fmt(s.csv_mib)} | {fmt(s.sdk_mib, 0)} ({fmt(s.rss('sdk'), 0)}) | "
            f"{fmt(s.direct_mib, 0)} ({fmt(s.rss('direct'), 0)}) | "
            f"{fmt(s.run_local_mib, 0)} ({fmt(s.rss('run-local'), 0)}) | "
            f"{fmt(s.mem_ratio, 2)}x | {fmt(s.csv_ratio, 2) + 'x' if s.memory_goal else '-'} |"
        )
    names = [m.label for m in results[0].trials[0].direct] if results[0].trials else []
    if names:
        out += [
            "",
            (
                "Per step: seconds run directly / inside run-local (from run.json), and peak PSS "
                "MiB of the script run directly / of run-local's tree (runner + step) during it:"
            ),
            "",
            "| rows | " + " | ".join(names) + " | run-local outside steps |",
            "|---:|" + "---:|" * (len(names) + 1),
        ]
        for s in results:
            cells = [
                f"{fmt(s.step_s(n, True))} / {fmt(s.step_s(n, False))} "
                f"({fmt(s.step_mib(n), 0)} / {fmt(s.run_local_step_mib(n), 0)} MiB)"
                for n in names
            ]
            outside = s.med(
                lambda t: (
                    t.run_local.seconds - sum(t.run_local_steps.values())
                    if t.run_local_steps
                    else None
                )
            )
            outside_mib = fmt(s.run_local_step_mib(OUTSIDE_STEPS), 0)
            out.append(
                f"| {s.rows:,} | " + " | ".join(cells) + f" | {fmt(outside)} ({outside_mib} MiB) |"
            )
    rows = growth(results)
    if rows:
        out += [
            "",
            "Growth between sizes (factor, and exponent k in time ~ rows^k; k <= 1 is linear):",
            "",
            (
                "| rows | x rows | run-local time | direct + SDK time | run-local overhead "
                "| run-local memory | direct memory |"
            ),
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in rows:

            def c(pair):
                f, k = pair
                if f is None:
                    return "n/a"
                if math.isnan(f):
                    return "n/a (<= 0)"
                return f"x{f:.2f} (k={k:.2f})"

            out.append(
                f"| {row['from']:,} -> {row['to']:,} | x{row['rows_x']:,.0f} | "
                f"{c(row['run_local_time'])} | {c(row['direct_time'])} | "
                f"{c(row['overhead_time'])} | {c(row['run_local_mem'])} | "
                f"{c(row['direct_mem'])} |"
            )
    out += ["", "Goals:", "", "```", *goal_lines, "```"]
    return "\n".join(out)


def _py_version(project: Project) -> str:
    try:
        code = "import platform; print(platform.python_version())"
        return subprocess.run(
            [str(project.python), "-c", code],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


DOC_INTRO = f"""# Benchmarks: `run-local` against the scripts run directly

`run-local` builds the pipeline definition with the SageMaker SDK (offline, inside moto),
then executes it on this machine: every step's script runs as a subprocess, with the
container paths, the S3 copies and the `model.tar.gz` of a SageMaker job. This page
measures what that costs next to the plain scripts.

What is measured, for the sample and for the sample resampled to 100,000 and 1,000,000
rows (rows drawn with replacement, numeric features plus Gaussian noise of 5% of the
column's standard deviation, fixed seed; the larger datasets are near-copies of the 150
sample rows, so the forest stays small, a few MB, and the figures are about row counts
rather than about hard data):

- **SDK import + definition**: `python -m <package> definition -o FILE`, one process that
  imports the SDK and builds the definition.
- **direct scripts**: `preprocess.py`, `train.py`, `evaluate.py`, then a small driver that
  imports the model's `inference.py` and calls `model_fn` once and `input_fn` /
  `predict_fn` / `output_fn` per MultiRecord mini-batch (lines, at most MaxPayloadInMB), one
  after the other, each with the arguments the pipeline definition passes it, reading the
  previous script's output folders in place.
- **run-local**: `python -m <package> run-local --data CSV --workdir DIR`.

Wall time is `time.perf_counter` around each process; CPU time is user + system of the
process and all its descendants (from `wait4`), which other load on the machine disturbs
much less. Peak memory is the largest sum, over a process and all its descendants, of the
proportional set size (PSS: a page shared by several processes is divided among them),
sampled from `/proc` every 50 ms; the sum of RSS is shown next to it, and counts shared
pages (libraries, and the whole runner in the instant between `fork` and `exec` of a step)
more than once. For run-local the tree is the runner, which keeps the SDK imported, plus
the step running. The goals: on the sample, run-local within {SAMPLE_RATIO_GOAL}x of the
direct scripts plus one SDK import; time and memory growing no faster than linearly with
rows.

Reproduce (renders a fresh project from `HEAD` into a temporary folder; the 1M-row size
takes several minutes):

```bash
make bench
# or: .venv/bin/python bench/bench_run_local.py --rows 150,100000,1000000
```

See [bench/README.md](../bench/README.md) for the options.

{START}
{END}
"""


def publish(doc: Path, section: str) -> None:
    text = doc.read_text() if doc.is_file() else DOC_INTRO
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, foot = rest.partition(END)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(f"{head}{START}\n{section}\n{END}{foot}")
    print(f"Wrote {doc}")


# ============================================================================ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--rows",
        default="150,100000,1000000",
        help="comma-separated dataset sizes; the sample's own size means the sample",
    )
    p.add_argument(
        "--csv-mb",
        default="",
        help="comma-separated dataset sizes in MiB of CSV (rows drawn until the file is that "
        f"large); each gets the goal run-local peak memory <= {CSV_MEMORY_GOAL:g}x the CSV",
    )
    p.add_argument(
        "--repeat",
        type=int,
        help="runs per size (default: 3 up to 10,000 rows, 1 above); median reported",
    )
    p.add_argument(
        "--project",
        type=Path,
        help="reuse this rendered project (rendered and installed if missing)",
    )
    p.add_argument("--template", type=Path, default=REPO, help="template (default: this repo)")
    p.add_argument(
        "--vcs-ref",
        default="HEAD",
        help="git ref to render (default HEAD; '' renders the working tree)",
    )
    p.add_argument(
        "--answer",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="copier answer for the rendered project (repeatable)",
    )
    p.add_argument(
        "--uv",
        default=os.environ.get("UV") or shutil.which("uv") or "uv",
        help="uv executable for `make install` (default: $UV or uv on PATH)",
    )
    p.add_argument("--workdir", type=Path, help="scratch folder (default: a temporary one)")
    p.add_argument("--seed", type=int, default=0, help="seed of the resampled datasets")
    p.add_argument(
        "--noise",
        type=float,
        default=0.05,
        help="noise added to numeric features, as a fraction of the column's std (0.05)",
    )
    p.add_argument("--interval", type=float, default=0.05, help="RSS sampling period, s")
    p.add_argument("--timeout", type=float, default=3 * 3600, help="per command, s")
    p.add_argument(
        "--tolerance",
        type=float,
        default=0.10,
        help="measurement tolerance of the linear-growth goals (default 0.10)",
    )
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="do not precompile the project's bytecode after installing",
    )
    p.add_argument("--no-warmup", action="store_true", help="skip the unmeasured warm-up run")
    p.add_argument("--keep", action="store_true", help="keep run folders and the temp dir")
    p.add_argument("--output", type=Path, default=DOC, help=f"Markdown file (default {DOC})")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not Path("/proc/self/status").is_file():
        print("error: needs Linux /proc to measure process-tree memory", file=sys.stderr)
        return 2
    sizes = [int(x.replace("_", "")) for x in args.rows.split(",") if x.strip()]
    by_size = [float(x) for x in args.csv_mb.split(",") if x.strip()]
    answers = {}
    for pair in args.answer:
        key, sep, value = pair.partition("=")
        if not sep:
            print(f"error: --answer expects KEY=VALUE, got {pair!r}", file=sys.stderr)
            return 2
        answers[key] = value

    scratch = args.workdir or Path(tempfile.mkdtemp(prefix="bench-run-local-"))
    scratch.mkdir(parents=True, exist_ok=True)
    root = args.project or scratch / "project"
    try:
        if not (root / ".copier-answers.yml").is_file():
            render(args.template, root, args.vcs_ref or None, answers)
        install(root, args.uv, compile_bytecode=not args.no_compile)
        project = load_project(root)
        env = dict(os.environ)
        env.pop("VIRTUAL_ENV", None)
        # Warm pools off: every step is a new process of run-local's tree, as each direct
        # script is, so time and the tree's peak memory compare like with like (bench_rerun
        # measures the warm pools).
        env["SAGEMAKER_PIPELINES_LOCAL_WARM_POOL"] = "0"
        with open(project.sample, newline="") as fh:
            sample_rows = sum(1 for row in csv.reader(fh) if row) - 1

        if not args.no_warmup:
            print("Warm-up: one unmeasured run-local on the sample ...", flush=True)
            warm = measure(
                "warm-up",
                [
                    str(project.python),
                    "-m",
                    project.package,
                    "run-local",
                    "--workdir",
                    str(scratch / "warmup"),
                ],
                log=scratch / "warmup.log",
                cwd=project.root,
                env=env,
            )
            shutil.rmtree(scratch / "warmup", ignore_errors=True)
            if not warm.ok:
                print(
                    f"error: the warm-up run-local failed:\n{tail(warm.log)}",
                    file=sys.stderr,
                )
                return 1

        results = []
        repeats = {}
        jobs = [(rows, 0) for rows in sizes] + [(0, mib) for mib in by_size]
        for rows, mib in jobs:
            name = f"{mib:g}MiB" if mib else str(rows)
            data = scaled_dataset(
                project.sample,
                project.target,
                rows,
                scratch / "data" / f"{project.sample.stem}-{name}-s{args.seed}-n{args.noise:g}.csv",
                args.seed,
                args.noise,
                size_bytes=int(mib * MiB),
            )
            if mib:
                with open(data, "rb") as fh:
                    rows = sum(1 for _ in fh) - 1
            repeat = args.repeat or (3 if rows <= 10_000 else 1)
            repeats[rows] = repeat
            size_mib = data.stat().st_size / MiB
            print(
                f"\n== {rows:,} rows ({data.name}, {size_mib:.1f} MiB), {repeat} run(s)",
                flush=True,
            )
            result = bench_size(project, data, rows, repeat, scratch, args, env)
            result.csv_mib, result.memory_goal = size_mib, bool(mib)
            results.append(result)
        results.sort(key=lambda r: r.rows)

        raw = [dataclasses.asdict(r) for r in results]
        (scratch / "results.json").write_text(json.dumps(raw, indent=2, default=str))
        goal_lines = goals(results, sample_rows, args.tolerance)
        report = markdown(results, machine(), goal_lines, args, project, repeats)
        print("\n" + report + "\n")
        if not args.no_write:
            publish(args.output, report)
        return 0 if all(s.ok() for s in results) else 1
    finally:
        if args.keep or args.workdir:
            print(f"Kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
