#!/usr/bin/env python3
"""Benchmark re-runs of `run-local` against a cold run, on the sample, in one run.

Each trial, in a fresh workspace (no cached step) and with no warm pool up, measures:

  COLD        `run-local --rebuild`: the definition is built, every step runs (the first
              step that runs a script starts the image's warm pool; the steps that start
              once it is up fork from it)
  UNCHANGED   `run-local` again: the build is read back, cached steps are reused, the
              others fork from the warm pool
  EDITED      `run-local` after appending a comment to train.py (restored afterwards)
  DIRECT      the scripts run directly with the definition's arguments (bench_run_local's
              baseline), plus one `definition --rebuild` (one SDK import and build)

and reports the ratios UNCHANGED/COLD, EDITED/COLD and COLD/(DIRECT + build) against the
goals of issue #15 (0.15, 0.6, 1.1), as PASS/FAIL lines: nothing is asserted. The warm pools
live in a folder of the benchmark's own (XDG_RUNTIME_DIR), stopped before each cold run and at
the end; the steps table marks the steps forked from one. The Markdown
result replaces the section between `<!-- rerun:start -->` and `<!-- rerun:end -->` of
docs/benchmarks.md.

    python bench/bench_rerun.py                      # render, install, 3 trials
    python bench/bench_rerun.py --project /tmp/p --repeat 5 --no-write
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_run_local import (  # noqa: E402 - the sibling module, run as a script
    DOC,
    Baseline,
    Project,
    install,
    load_project,
    machine,
    measure,
    render,
)

START, END = "<!-- rerun:start -->", "<!-- rerun:end -->"
WARM_POOL_VARIABLE = "SAGEMAKER_PIPELINES_LOCAL_WARM_POOL"
GOALS = {"unchanged": 0.15, "edited": 0.6, "cold_vs_direct": 1.1}


def trial(project: Project, base: Path, env: dict[str, str]) -> dict[str, object]:
    """One cold run, one unchanged re-run, one re-run after editing train.py, the baseline."""
    py = str(project.python)
    workdir = base / "workspace"
    run = [py, "-m", project.package, "run-local", "--workdir", str(workdir)]
    options = {"cwd": project.root, "env": env, "timeout": 1800.0}

    # The step environments stay cached (built once per machine, as for any user); the
    # definition is built, no step of an earlier run exists in the new workspace, and no
    # warm pool is up.
    stop = "from sagemaker_pipelines_local import stop_warm_pools; stop_warm_pools()"
    stopped = measure("stop", [py, "-c", stop], log=base / "logs" / "stop.log", **options)
    if not stopped.ok:
        raise SystemExit(f"could not stop the warm pools (log in {base / 'logs'})")
    cold = measure("cold", [*run, "--rebuild"], log=base / "logs" / "cold.log", **options)
    unchanged = measure("unchanged", run, log=base / "logs" / "unchanged.log", **options)
    train = project.scripts / "train.py"
    original = train.read_bytes()
    try:
        train.write_bytes(original + b"\n# an edit: the next run trains again\n")
        edited = measure("edited", run, log=base / "logs" / "edited.log", **options)
    finally:
        train.write_bytes(original)
    definition_file = base / "definition.json"
    build = measure(
        "definition",
        [py, "-m", project.package, "definition", "--rebuild", "-o", str(definition_file)],
        log=base / "logs" / "definition.log",
        **options,
    )
    direct = Baseline(json.loads(definition_file.read_text()), project).run(
        project.sample, base / "direct", base / "logs" / "direct", env, 0.05, 1800.0
    )
    failed = [m.label for m in (cold, unchanged, edited, build, *direct) if not m.ok]
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)} (logs in {base / 'logs'})")
    return {
        "cold": cold.seconds,
        "unchanged": unchanged.seconds,
        "edited": edited.seconds,
        "build": build.seconds,
        "direct": sum(m.seconds for m in direct),
        "steps": {
            label: _step_seconds(workdir, n)
            for n, label in enumerate(("cold", "unchanged", "edited"))
        },
    }


def _step_seconds(workdir: Path, index: int) -> dict[str, str]:
    """Each step's time in the index-th run, "cached"/"reused" where it did not run."""
    records = sorted(
        (json.loads(p.read_text()) for p in workdir.glob("runs/*/run.json")),
        key=lambda r: r["start_time"],
    )
    shown = {}
    for step in records[index]["steps"]:
        if step.get("cache_hit"):
            shown[step["name"]] = "cache hit"
        elif step.get("status") == "Succeeded":
            forked = "warm pool" in ((step.get("environment") or {}).get("processes") or [])
            shown[step["name"]] = f"{step.get('duration_seconds') or 0:.1f} s" + (
                " (warm pool)" if forked else ""
            )
    return shown


def report(trials: list[dict[str, object]], project: Project) -> tuple[str, list[str]]:
    def median(key: str) -> float:
        return statistics.median(float(t[key]) for t in trials)  # type: ignore[arg-type]

    cold, unchanged, edited = median("cold"), median("unchanged"), median("edited")
    baseline = median("direct") + median("build")
    ratios = {
        "unchanged": unchanged / cold,
        "edited": edited / cold,
        "cold_vs_direct": cold / baseline,
    }
    words = {
        "unchanged": "re-run, nothing changed / cold run",
        "edited": "re-run after editing train.py / cold run",
        "cold_vs_direct": "cold run / (scripts run directly + one definition build)",
    }
    goal_lines = [
        f"{'PASS' if ratios[k] <= GOALS[k] else 'FAIL'}  {words[k]}: {ratios[k]:.2f}x "
        f"(goal <= {GOALS[k]}x)"
        for k in GOALS
    ]
    info = machine()
    last = trials[-1]["steps"]  # type: ignore[index]
    names = list(last["cold"])  # type: ignore[index]
    lines = [
        f"Measured {info['date']} on {info['nproc']} cores ({info['cpu']}, {info['memory']}, "
        f"load {info['load']}), project `{project.package}` on its sample, median of "
        f"{len(trials)} trials, each in a fresh workspace (the cold run builds the definition).",
        "",
        "| run | wall time (s) | ratio |",
        "|---|---:|---:|",
        f"| cold run (definition built, every step run) | {cold:.1f} | 1.00x |",
        f"| re-run, nothing changed | {unchanged:.1f} | **{ratios['unchanged']:.2f}x** |",
        f"| re-run after editing `train.py` | {edited:.1f} | **{ratios['edited']:.2f}x** |",
        f"| scripts run directly + one definition build | {baseline:.1f} "
        f"({median('direct'):.1f} + {median('build'):.1f}) | cold is "
        f"**{ratios['cold_vs_direct']:.2f}x** |",
        "",
        "Steps of the last trial:",
        "",
        "| step | cold | unchanged | edited |",
        "|---|---|---|---|",
        *(
            f"| {name} | {last['cold'].get(name, '-')} | {last['unchanged'].get(name, '-')} | "  # type: ignore[index]
            f"{last['edited'].get(name, '-')} |"  # type: ignore[index]
            for name in names
        ),
        "",
        "Goals (issue #15):",
        "",
        "```",
        *goal_lines,
        "```",
    ]
    return "\n".join(lines), goal_lines


def publish(doc: Path, section: str) -> None:
    text = doc.read_text()
    if START not in text or END not in text:
        text = text.rstrip("\n") + f"\n\n## Re-runs\n\n{START}\n{END}\n"
    head, _, rest = text.partition(START)
    _, _, foot = rest.partition(END)
    doc.write_text(f"{head}{START}\n{section}\n{END}{foot}")
    print(f"Wrote {doc}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, help="reuse (or render into) this project")
    parser.add_argument("--repeat", type=int, default=3, help="trials; the median is reported")
    parser.add_argument("--uv", default=os.environ.get("UV", "uv"), help="uv for make install")
    parser.add_argument("--no-write", action="store_true", help="do not update the docs page")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-rerun-") as scratch:
        root = args.project or Path(scratch) / "project"
        if not (root / ".copier-answers.yml").is_file():
            render(Path(__file__).resolve().parents[1], root, "HEAD", {})
            install(root, args.uv, compile_bytecode=True)
        project = load_project(root)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env.pop(WARM_POOL_VARIABLE, None)  # the default keep-alive, as a user has it
        env["XDG_RUNTIME_DIR"] = str(Path(scratch) / "xdg")  # the benchmark's own warm pools
        Path(env["XDG_RUNTIME_DIR"]).mkdir(mode=0o700)
        trials = []
        try:
            for number in range(args.repeat):
                trials.append(_trial_printed(project, Path(scratch) / f"trial-{number}", env))
        finally:
            stop = "from sagemaker_pipelines_local import stop_warm_pools; stop_warm_pools()"
            subprocess.run([str(project.python), "-c", stop], env=env, check=False)
        section, goal_lines = report(trials, project)
    print(section)
    if not args.no_write:
        publish(DOC, section)
    return 0


def _trial_printed(project: Project, base: Path, env: dict[str, str]) -> dict[str, object]:
    result = trial(project, base, env)
    print(
        f"{base.name}: cold {result['cold']:.1f} s, unchanged {result['unchanged']:.1f} s, "
        f"edited {result['edited']:.1f} s, direct {result['direct']:.1f} s + build "
        f"{result['build']:.1f} s",
        flush=True,
    )
    return result


if __name__ == "__main__":
    sys.exit(main())
