"""mkdocs hook: writes the reference pages from the code, so they cannot drift from it.

A page asks for a generated section with a marker line, e.g. `<!-- generated: questions -->`.
At build time this hook replaces each marker with Markdown made from:

- questions        copier.yml and hooks/questions.py (types, defaults, choices, help, rules)
- cli              the argparse parser of a freshly rendered project (`cli.build_parser()`)
- make-targets     the rendered project's Makefile
- parameters       the definition JSON captured by docs/_capture/capture_tutorial.py
- layout           the files of rendered projects, with the descriptions kept below
- ci-cd-<provider> the rendered project's own docs/ci-cd.md
- release-<provider> the rendered project's own docs/release.md

Projects are rendered with Copier's public API from this working tree, once per build.
Anything it cannot explain (a rendered file without a description, a parameter without
one, an unknown marker) stops the build with a message that says what to add.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib
import json
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COPIER_YML = ROOT / "copier.yml"
SNIPPETS = ROOT / "docs" / "_snippets"
DEFINITION_SNAPSHOT = SNIPPETS / "tutorial" / "definition.json"
MARKER = re.compile(r"^<!-- generated: ([a-z0-9-]+) -->$", re.MULTILINE)

# Answers of each rendered variant; "default" is `copier copy --defaults`.
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "github-actions": {"ci_provider": "github-actions"},
    "none": {"ci_provider": "none"},
}


def descriptions(text: str) -> dict[str, str]:
    """`name` on one line, its description on the indented lines below it."""
    found: dict[str, str] = {}
    name = ""
    for line in text.strip("\n").splitlines():
        if line and not line[0].isspace():
            name = line.strip()
            found[name] = ""
        elif line.strip():
            found[name] = f"{found[name]} {line.strip()}".strip()
    return found


# One line per file of a generated project. `{pkg}` stands for the package folder.
# A rendered file missing here stops the build: describe it before publishing.
FILE_DESCRIPTIONS: dict[str, str] = descriptions(
    """
.copier-answers.yml
    the answers and the template commit it was rendered from; read by `copier update`
.gitignore
    keeps `.venv/`, `.local/` (local runs) and build output out of git
.pre-commit-config.yaml
    hooks that run offline from `.venv`: ruff, conflict markers, `.rej` files, YAML, whitespace
Makefile
    every command a person or CI runs: install, test, lint, run-local, definition, upsert,
    start, approve, deploy, serve, invoke
NOTES.md
    the team's own notes; rendered once, never touched by an update
README.md
    quick start, the pipeline as a diagram, commands, parameters, settings
pyproject.toml
    dependencies (SageMaker SDK and scikit-learn pinned), the local runner pinned to the
    template's release in the dev group, console script, pytest and ruff settings
uv.lock
    every package's exact version and hashes, as the template's tests ran them: `make install`
    installs these; the team's after the first render, kept in step by uv
infra/buildspec.yml
    CodeBuild: `make install`, `make lint`, `make test` on pull requests and commits
infra/buildspec-release.yml
    CodeBuild on the branch: `make upsert` (both pipelines) and `make start`
infra/buildspec-deploy.yml
    CodeBuild after a person's approval in CodePipeline: `make deploy-aws STAGE=prod`, the
    version staging serves
.github/workflows/ci.yml
    GitHub Actions: tests on pull requests and pushes; on `main`, upsert and start through OIDC
.github/workflows/promote.yml
    GitHub Actions, started by hand: deploys what staging serves to production in the
    `production` environment, once its required reviewers approve
infra/pipeline-stack.yml
    CloudFormation: artifact bucket, execution role, model package group, the approval rule that
    deploys staging, CodeBuild, CodePipeline with the manual approval before production,
    failure e-mails
infra/github-oidc-stack.yml
    CloudFormation: OIDC deploy and promote roles for GitHub, artifact bucket, execution role,
    model package group, the approval rule that deploys staging
docs/ci-cd.md
    how the project is built and released, and how to deploy its stack
docs/release.md
    how a version goes to staging and production: approve, try, promote, roll back, delete an
    endpoint
data/iris.csv
    sample data (the bundled Iris set, or your `dataset_path`): the default input and the tests'
    data
src/{pkg}/__init__.py
    package marker with the project's description
src/{pkg}/__main__.py
    `python -m {pkg}` entry point
src/{pkg}/cli.py
    the command line: definition, run-local, upsert, start, models list / approve / reject,
    deploy, serve, invoke, undeploy, prune
src/{pkg}/config.py
    the one settings object: render-time answers, overridden by `SAGEMAKER_*` variables
src/{pkg}/pipeline.py
    `get_pipeline()` and `get_deploy_pipeline()`: the only module that knows the SageMaker SDK
    (v3 or v2 API)
src/{pkg}/offline.py
    builds the project's definition with no account, through the local runner's offline extra
src/{pkg}/code_uploads.py
    puts the scripts in S3 under keys named by their content (no checkout path, no build
    time), so unchanged code hits SageMaker's step cache
src/{pkg}/provenance.py
    what a version records about its code (git commit, dirty flag, template version), the
    definition's own hash and the model card; `place_build` puts them and the code keys into
    the SDK's build; `models show` groups it
src/{pkg}/aws.py
    the account: upsert the pipeline, start executions, list model packages
src/{pkg}/scripts/preprocess.py
    Preprocess step: checks the CSV, splits train / test / batch, fingerprints the input
    (sha256, rows, columns and their types)
src/{pkg}/scripts/train.py
    Train step: sklearn Pipeline (impute, one-hot, random forest), saved with its serving code
src/{pkg}/scripts/evaluate.py
    Evaluate step: metrics on the test split in SageMaker's model quality format, and the
    Approved champion's on the same rows
src/{pkg}/scripts/inference.py
    serving handlers (model_fn, input_fn, predict_fn, output_fn), shipped in model.tar.gz
src/{pkg}/scripts/resolve_version.py
    deploy pipeline, first step: the Approved version, its held-out rows and batch
    predictions, and what the stage's endpoint serves now
src/{pkg}/scripts/smoke_test.py
    deploy pipeline, last step: the endpoint answers the held-out rows as the batch did and
    refuses a malformed row, or the previous config is put back
tests/conftest.py
    fixtures: settings, sample data, the definition built offline and the scripts run on the
    sample, each once per session
tests/script_runner.py
    runs a container script in the test process with its command line and environment
tests/test_scripts.py
    each container script on the sample data, and its refusals of bad data
tests/test_inference.py
    the serving handlers on single and multi-row CSV and JSON
tests/test_definition.py
    every step's arguments against the SageMaker API shapes in botocore; references; the gate
tests/test_run_local.py
    `run-local` end to end, once: every step, the image's versions, the registry, the report;
    then `models approve` deploys to a local staging endpoint that passes its smoke test
tests/test_deploy_scripts.py
    the deploy scripts' failure paths (rollback, deletion, refusals), their AWS calls checked
    by botocore's Stubber
tests/test_cli.py
    `upsert` and `start` against a moto server through `AWS_ENDPOINT_URL`; the CLI's errors
tests/test_cost.py
    what `start --wait` prints of each job's billed time (botocore's Stubber), and the cost
    estimate `run-local` ends with
tests/test_cicd.py
    cfn-lint, checkov, the workflow schema, and the commands CI runs
tests/checkov_report.py
    checkov's checks of the stacks (and workflow) in one process, as JSON per framework
"""
)

# Who changes a file after the first render (brief: the template's ownership rules).
TEMPLATE_OWNED = (
    "infra/*",
    ".github/workflows/*",
    "Makefile",
    ".pre-commit-config.yaml",
)
OWNER_TEXT = {
    "team": "yours: never overwritten",
    "template": "template's: merged, expect conflicts",
    "copier": "Copier's: rewritten",
    "shared": "shared: 3-way merged",
}

# What each pipeline parameter changes; a parameter missing here stops the build.
PARAMETER_DESCRIPTIONS: dict[str, str] = descriptions(
    """
InputDataUri
    the CSV the Preprocess step reads (`run-local --data CSV` sets it for you)
ProcessingInstanceType
    instance type of the Preprocess and Evaluate jobs
ProcessingInstanceCount
    instances of the Preprocess job (the local runner accepts only 1)
TrainingInstanceType
    instance type of the Train job
TrainingKeepAliveSeconds
    seconds the training instance stays warm after the job, for the next training job to
    start on it (SageMaker's warm pool, at most 3600; 0 releases it; ignored locally)
TransformInstanceType
    instance type of the BatchTransform job
MetricThreshold
    a stricter bound for the quality gate in one execution; the gate also requires the
    project's floor, so a looser value cannot pass (only with `quality_gate: true`)
NEstimators
    trees in the random forest (`--n-estimators` of train.py)
MaxDepth
    maximum depth of a tree; 0 = unlimited (`--max-depth`)
MinSamplesLeaf
    minimum rows in a leaf (`--min-samples-leaf`)
"""
)


class ReferenceError(Exception):
    """The code has something the reference cannot describe; the message says what to add."""


# ----------------------------------------------------------------------------- rendering
class Renders:
    """Projects rendered from this working tree, each once, in a temporary folder."""

    def __init__(self) -> None:
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._projects: dict[str, Path] = {}

    def project(self, variant: str = "default") -> Path:
        if variant not in self._projects:
            self._projects[variant] = render(self._root() / variant, **VARIANTS[variant])
        return self._projects[variant]

    def _root(self) -> Path:
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="docs-render-")
        return Path(self._tmp.name)

    def cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
        self._tmp, self._projects = None, {}


def render(destination: Path, **answers: Any) -> Path:
    """`copier copy --defaults --data ...` of this working tree (uncommitted changes included)."""
    import copier

    with warnings.catch_warnings(), _stdout_to_devnull():
        warnings.simplefilter("ignore")  # DirtyLocalWarning: the working tree is what we want
        copier.run_copy(
            str(ROOT),
            str(destination),
            data=answers,
            defaults=True,
            unsafe=True,
            quiet=True,
            vcs_ref="HEAD",
            settings=copier.Settings(),
        )
    return destination


@contextmanager
def _stdout_to_devnull() -> Iterator[None]:
    """The dataset task prints a line per render; keep the build log for what matters."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def answers_of(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / ".copier-answers.yml").read_text())


# ----------------------------------------------------------------------------- Markdown
def md(text: str) -> str:
    """Plain text as Markdown: code spans kept, `<`, `>`, `*`, `_`, `[`, `]`, `|` escaped."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        part = parts[i].replace("\\", "\\\\")
        for char in "*_[]|":
            part = part.replace(char, "\\" + char)
        parts[i] = part.replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    if text == "":
        return '`""`'
    ticks = "``" if "`" in text else "`"
    return f"{ticks}{text}{ticks}"  # tables keep a `|` inside a code span as text


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- questions
_TAG = re.compile(r"({%-?.*?-?%})", re.DOTALL)
_EXPR = re.compile(r"{{-?\s*(.*?)\s*-?}}")
_CALL = re.compile(r"^{{\s*(\w+)\(.*?\)(\s+or\s+UNSET)?\s*}}$")


def question_rules():
    """hooks/questions.py, the questionnaire's Jinja extension, loaded by its path."""
    import importlib.util

    name = "copier_sagemaker_pipelines_questions"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "hooks" / "questions.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def doc_line(function: Callable[..., Any]) -> str:
    """A function's docstring as one line."""
    return " ".join((function.__doc__ or "").split())


def validator_rules(key: str, validator: str) -> list[tuple[str, tuple[str, ...]]]:
    """(rule, allowed values) of a `{{ refusal('key') }}` validator, from the rules' code."""
    if f"refusal('{key}')" not in validator:
        raise SystemExit(f"copier.yml: the validator of {key} is not {{{{ refusal('{key}') }}}}.")
    return [(doc_line(r), getattr(r, "allowed", ())) for r in question_rules().RULES[key]]


def choice_markdown(name: str, value: Any) -> str:
    """A choice, and when it cannot be chosen (its `validator`, said by the function)."""
    refusal = described_call(value.get("validator", "")) if isinstance(value, dict) else ""
    return code(name) + (f" ({md(refusal)})" if refusal else "")


def described_call(template: str) -> str:
    """`{{ function() }}` of the extension, said by the function's docstring; '' otherwise."""
    found = _CALL.match(template.strip())
    function = getattr(question_rules(), found.group(1), None) if found else None
    return doc_line(function) if function is not None else ""


def computed_choices(template: str) -> list[tuple[str, list[str]]]:
    """Choices written as Jinja: [(condition, [choice, ...]), ...]."""
    branches: list[tuple[str, list[str]]] = []
    for chunk in _TAG.split(template):
        tag = re.match(r"{%-?\s*(if|elif|else|endif)\b\s*(.*?)\s*-?%}", chunk, re.DOTALL)
        if tag:
            kind, condition = tag.groups()
            if kind in ("if", "elif"):
                branches.append((condition, []))
            elif kind == "else":
                branches.append(("otherwise", []))
            continue
        items = re.findall(r"^\s*-\s*(\S.*?)\s*$", chunk, re.MULTILINE)
        if items:
            if not branches:
                branches.append(("", []))
            branches[-1][1].extend(item.strip("'\"") for item in items)
    return branches


def load_questions() -> tuple[dict[str, Any], dict[str, dict], dict[str, dict]]:
    config = yaml.safe_load(COPIER_YML.read_text())
    settings = {k: v for k, v in config.items() if k.startswith("_")}
    asked = {
        k: v for k, v in config.items() if not k.startswith("_") and v.get("when") is not False
    }
    computed = {k: v for k, v in config.items() if not k.startswith("_") and v.get("when") is False}
    return settings, asked, computed


def comments_of(key: str) -> str:
    """The comment lines inside a key's block of copier.yml (YAML drops them)."""
    lines = COPIER_YML.read_text().splitlines()
    start = lines.index(f"{key}:")
    found = []
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):
            break
        if line.strip().startswith("#"):
            found.append(line.strip().lstrip("#").strip())
    return " ".join(found)


def migration_comments() -> list[str]:
    """The comment lines right above each entry of `_migrations` in copier.yml, in order."""
    lines = COPIER_YML.read_text().splitlines()
    comments: list[str] = []
    found: list[str] = []
    for line in lines[lines.index("_migrations:") + 1 :]:
        if line and not line.startswith(" "):  # the next top-level key
            break
        if line.strip().startswith("#"):
            found.append(line.strip().lstrip("#").strip())
        elif line.startswith("  - "):  # an entry (its own lists are indented further)
            comments.append(" ".join(found))
            found = []
    return comments


def help_markdown(text: str) -> str:
    """The help as the prompt shows it; `{{ x }}` as <x>, `{{ f() }}` as what f says."""
    text = re.sub(r"{{.*?}}", lambda m: described_call(m.group(0)) or m.group(0), str(text))
    text = _EXPR.sub(lambda m: f"<{m.group(1)}>", _TAG.sub("", text))
    lines = [line.strip() for line in text.strip().splitlines()]
    return "  \n".join(md(line) for line in lines if line)


def questions_markdown(renders: Renders) -> str:
    settings, asked, computed = load_questions()
    defaults = answers_of(renders.project())
    summary_rows = []
    sections = []
    for key, spec in asked.items():
        default = spec.get("default", "")
        effective = defaults.get(key, "")
        choices = spec.get("choices")
        if isinstance(choices, list):
            choice_text = ", ".join(code(str(c)) for c in choices)
        elif isinstance(choices, dict):
            choice_text = ", ".join(choice_markdown(name, value) for name, value in choices.items())
        elif isinstance(choices, str) and described_call(choices):
            choice_text = md(described_call(choices))
        elif isinstance(choices, str):
            choice_text = "; ".join(
                f"{md(cond)}: " + ", ".join(code(c) for c in items) if cond else ", ".join(items)
                for cond, items in computed_choices(choices)
            )
        else:
            choice_text = ""
        summary_rows.append(
            [f"[`{key}`](#{key})", spec.get("type", "str"), code(effective), choice_text]
        )
        facts = [f"- **type**: `{spec.get('type', 'str')}`"]
        if isinstance(default, str) and described_call(default):
            facts.append(
                f"- **default**: {md(described_call(default))} With every default: "
                f"{code(effective)}"
            )
        elif isinstance(default, str) and "{{" in default:
            facts.append(f"- **default**: {code(default)}; with every default: {code(effective)}")
        else:
            facts.append(f"- **default**: {code(default)}")
        if choice_text:
            facts.append(f"- **choices**: {choice_text}")
        if "when" in spec:
            facts.append(f"- **asked only when** {code(spec['when'])} is true")
        validator = spec.get("validator")
        if validator:
            facts.append("- **rules** (a wrong answer is refused with a message naming the rule):")
            for line, allowed in validator_rules(key, validator):
                facts.append(f"    - {md(line)}")
                if allowed:
                    facts.append(f"      Allowed: {', '.join(code(v) for v in allowed)}.")
        sections.append(
            f"### `{key}`\n\n{help_markdown(spec.get('help', ''))}\n\n" + "\n".join(facts)
        )

    computed_rows = [
        [f"`{key}`", code(spec.get("default", "")), md(comments_of(key))]
        for key, spec in computed.items()
    ]
    skip = settings.get("_skip_if_exists") or []
    setting_lines = [
        f"- Copier {md(str(settings.get('_min_copier_version', '')))} or newer "
        "(`_min_copier_version`).",
        "- Never overwritten once they exist, by `copier update` either (`_skip_if_exists`): "
        + ", ".join(code(p) for p in skip)
        + ".",
    ]
    migrations = [m for m in settings.get("_migrations") or [] if isinstance(m, dict)]
    if migrations:
        setting_lines.append("- Migrations that `copier update` runs (`_migrations`):")
        for migration, note in zip(migrations, migration_comments(), strict=True):
            script = Path(str(migration["command"][1])).name
            when = code(str(migration["version"])) if "version" in migration else "every update"
            line = f"    - {when}, {code(script)}" + (f": {md(note)}" if note else "")
            setting_lines.append(line)
    return "\n\n".join(
        [
            table(["question", "type", "with every default", "choices"], summary_rows),
            "## Each question",
            *sections,
            "## Computed values",
            "Derived from the answers, never asked and not stored in `.copier-answers.yml` "
            "(`when: false`).",
            table(["key", "value", "note"], computed_rows),
            "## Template settings",
            "\n".join(setting_lines),
        ]
    )


# ----------------------------------------------------------------------------- CLI
def load_cli(project: Path) -> tuple[str, Any]:
    """Import the rendered project's cli module (standard library only) by its path."""
    package = answers_of(project)["package_name"]
    sys.path.insert(0, str(project / "src"))
    # No __pycache__ in the render: the layout page lists its files.
    writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        module = importlib.import_module(f"{package}.cli")
    finally:
        sys.path.remove(str(project / "src"))
        sys.dont_write_bytecode = writes_bytecode
    return package, module


def forget_package(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def _subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                sub.description = sub.description or helps.get(name)
                yield name, sub


def _options_table(parser: argparse.ArgumentParser) -> str:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        metavar = action.metavar or (None if action.nargs == 0 else action.dest.upper())
        names = action.option_strings or [action.dest]
        shown = ", ".join(
            f"`{n} {metavar}`" if metavar and action.option_strings else f"`{n}`" for n in names
        )
        repeatable = isinstance(action, argparse._AppendAction)
        extra = " (repeatable)" if repeatable and "repeatable" not in (action.help or "") else ""
        rows.append([shown, md((action.help or "") + extra)])
    return table(["option", "meaning"], rows) if rows else "No options."


def _usage(parser: argparse.ArgumentParser) -> str:
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
    return parser.format_usage().strip()


def cli_markdown(renders: Renders) -> str:
    project = renders.project()
    package, module = load_cli(project)
    try:
        if not hasattr(module, "build_parser"):
            raise ReferenceError(
                f"{package}/cli.py has no build_parser(); the CLI reference needs it."
            )
        parser = module.build_parser()
        parts = [
            f"Rendered with the default answers, so the package is `{package}`: "
            f"`python -m {package} COMMAND`, or `{answers_of(project)['project_slug']} COMMAND` "
            "inside the project's `.venv`.",
            f"```text\n{_usage(parser)}\n```",
            _options_table(parser),
        ]

        def walk(prefix: str, parent: argparse.ArgumentParser, depth: int) -> None:
            for name, sub in _subcommands(parent):
                title = f"{prefix} {name}".strip()
                children = list(_subcommands(sub))
                if children:
                    walk(title, sub, depth)
                    continue
                parts.append(f"{'#' * depth} `{title}`")
                parts.append(md(sub.description or ""))
                parts.append(f"```text\n{_usage(sub)}\n```")
                parts.append(_options_table(sub))

        walk("", parser, 2)
        return "\n\n".join(parts)
    finally:
        forget_package(package)


def make_targets_markdown(renders: Renders) -> str:
    makefile = (renders.project() / "Makefile").read_text()
    variables = dict(re.findall(r"^([A-Z_]+) [?:]?= (.*)$", makefile, re.MULTILINE))

    def expand(text: str) -> str:
        for _ in range(3):
            text = re.sub(r"\$\(([A-Z_]+)\)", lambda m: variables.get(m.group(1), m.group(0)), text)
        return text

    rules: dict[str, tuple[list[str], list[str]]] = {}
    for target, deps, body in re.findall(r"^(\S+):(.*)\n((?:\t.*\n?)*)", makefile, re.MULTILINE):
        # "@..." lines are the Makefile's own checks and bookkeeping; "#" lines are comments.
        commands = [line.strip() for line in body.splitlines()]
        commands = [expand(c) for c in commands if c and not c.startswith(("#", "@"))]
        rules[expand(target)] = ([expand(d) for d in deps.split()], commands)

    rows = []
    for target, help_text in re.findall(r'@echo "make (\S+)\s+(.*?)"', makefile):
        deps, commands = rules.get(target, ([], []))
        if not commands and deps:  # e.g. install: .venv/bin/python
            commands = rules.get(deps[0], ([], []))[1]
        shown = "<br>".join(code(c) for c in commands)
        rows.append([f"`make {target}`", md(expand(help_text)), shown])
    return table(["target", "does", "runs"], rows)


# ----------------------------------------------------------------------------- parameters
def _steps(steps: list[dict]) -> Iterator[dict]:
    for step in steps:
        yield step
        if step.get("Type") == "Condition":
            yield from _steps(step["Arguments"].get("IfSteps", []))
            yield from _steps(step["Arguments"].get("ElseSteps", []))


def _parameter_refs(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ("IfSteps", "ElseSteps"):
                continue
            if key == "Get" and isinstance(item, str) and item.startswith("Parameters."):
                yield item.removeprefix("Parameters.")
            else:
                yield from _parameter_refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _parameter_refs(item)


def parameters_markdown(_: Renders) -> str:
    if not DEFINITION_SNAPSHOT.is_file():
        raise ReferenceError(f"{DEFINITION_SNAPSHOT} is missing: run `make docs-capture`.")
    definition = json.loads(DEFINITION_SNAPSHOT.read_text())
    users: dict[str, list[str]] = {}
    for step in _steps(definition["Steps"]):
        for name in dict.fromkeys(_parameter_refs(step.get("Arguments", {}))):
            users.setdefault(name, []).append(step["Name"])
    rows = []
    for parameter in definition["Parameters"]:
        name = parameter["Name"]
        if name not in PARAMETER_DESCRIPTIONS:
            raise ReferenceError(
                f"pipeline parameter {name} has no description: add it to PARAMETER_DESCRIPTIONS "
                f"in {Path(__file__).relative_to(ROOT)}."
            )
        rows.append(
            [
                f"`{name}`",
                parameter.get("Type", "String"),
                code(parameter.get("DefaultValue", "")),
                ", ".join(users.get(name, [])) or "-",
                md(PARAMETER_DESCRIPTIONS[name]),
            ]
        )
    return table(["parameter", "type", "default", "used by", "what it changes"], rows)


# ----------------------------------------------------------------------------- layout
def project_files(project: Path) -> list[str]:
    return sorted(
        p.relative_to(project).as_posix()
        for p in project.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(project).parts
    )


def generic(path: str, package: str) -> str:
    return re.sub(rf"^src/{re.escape(package)}/", "src/{pkg}/", path)


def owner(path: str, package: str, skip_if_exists: list[str]) -> str:
    if path == ".copier-answers.yml":
        return "copier"
    if any(fnmatch.fnmatch(path, pattern) for pattern in skip_if_exists):
        return "team"
    if any(fnmatch.fnmatch(generic(path, package), p) for p in TEMPLATE_OWNED):
        return "template"
    return "shared"


def undescribed_files(project: Path) -> list[str]:
    package = answers_of(project)["package_name"]
    return [p for p in project_files(project) if generic(p, package) not in FILE_DESCRIPTIONS]


def _sort_key(path: str) -> tuple[int, str]:
    return (path.count("/") > 0, path)


def layout_rows(project: Path, paths: list[str]) -> list[list[str]]:
    package = answers_of(project)["package_name"]
    skip = load_questions()[0].get("_skip_if_exists") or []
    rows = []
    for path in sorted(paths, key=_sort_key):
        description = FILE_DESCRIPTIONS[generic(path, package)].replace("{pkg}", package)
        rows.append([f"`{path}`", md(description), OWNER_TEXT[owner(path, package, skip)]])
    return rows


def layout_markdown(renders: Renders) -> str:
    projects = {variant: renders.project(variant) for variant in VARIANTS}
    missing = {v: undescribed_files(p) for v, p in projects.items() if undescribed_files(p)}
    if missing:
        listed = "; ".join(f"{v}: {', '.join(files)}" for v, files in missing.items())
        raise ReferenceError(
            f"rendered file(s) without a description ({listed}): add them to FILE_DESCRIPTIONS "
            f"in {Path(__file__).relative_to(ROOT)}."
        )
    default = projects["default"]
    base = set(project_files(default))
    header = ["path", "what it is", "on `copier update`"]
    parts = [table(header, layout_rows(default, sorted(base)))]
    for variant in ("github-actions", "none"):
        files = set(project_files(projects[variant]))
        added, removed = sorted(files - base), sorted(base - files)
        parts.append(f"## With `ci_provider: {variant}`")
        lines = []
        if removed:
            lines.append("Not rendered: " + ", ".join(f"`{p}`" for p in removed) + ".")
        if added:
            lines.append(
                "Rendered instead:\n\n" + table(header, layout_rows(projects[variant], added))
            )
        parts.append("\n\n".join(lines) or "The same files.")
    return "\n\n".join(parts)


# ----------------------------------------------------------------------------- project guides
def project_doc_markdown(doc: str, variant: str) -> Callable[[Renders], str]:
    """A rendered project's own docs/<doc>.md, its headings one level down."""

    def generate(renders: Renders) -> str:
        text = (renders.project(variant) / "docs" / f"{doc}.md").read_text()
        text = re.sub(r"\A# .*\n", "", text)  # the page has its own title
        return re.sub(
            r"^(#+) ", lambda m: "#" * (len(m.group(1)) + 1) + " ", text, flags=re.MULTILINE
        )

    return generate


GENERATORS: dict[str, Callable[[Renders], str]] = {
    "questions": questions_markdown,
    "cli": cli_markdown,
    "make-targets": make_targets_markdown,
    "parameters": parameters_markdown,
    "layout": layout_markdown,
    **{f"ci-cd-{variant}": project_doc_markdown("ci-cd", variant) for variant in VARIANTS},
    **{f"release-{variant}": project_doc_markdown("release", variant) for variant in VARIANTS},
}


# ----------------------------------------------------------------------------- mkdocs events
_renders = Renders()


def on_pre_build(config: Any) -> None:
    _renders.cleanup()


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    from mkdocs.exceptions import PluginError

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            known = ", ".join(sorted(GENERATORS))
            raise PluginError(f"{page.file.src_uri}: unknown marker '{name}' (known: {known}).")
        try:
            return GENERATORS[name](_renders)
        except ReferenceError as error:
            raise PluginError(f"{page.file.src_uri}: {error}") from error

    return MARKER.sub(replace, markdown)


def on_post_build(config: Any) -> None:
    _renders.cleanup()
