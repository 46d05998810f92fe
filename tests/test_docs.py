"""The documentation site: it builds with --strict, its reference pages come from the code,
and the tutorial's captured output is still what the code prints."""

from __future__ import annotations

import difflib
import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, UV, load, reference

SNIPPETS = ROOT / "docs" / "_snippets" / "tutorial"


capture = load("docs_capture", ROOT / "docs" / "_capture" / "capture_tutorial.py")


def page_text(site: Path, page: str) -> str:
    """The visible text of a built page's article."""
    raw = (site / page / "index.html").read_text()
    article = raw[raw.index("<article") : raw.index("</article>")]
    return html.unescape(re.sub(r"<[^>]+>", "", article))


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL")}
    env["NO_MKDOCS_2_WARNING"] = "1"  # Material's banner about its successor
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(target)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-6000:]}"
    return target


def test_questions_page_has_every_question_and_its_help(site):
    _, asked, computed = reference.load_questions()
    text = page_text(site, "reference/questions")
    for key, spec in asked.items():
        assert f"{key}¶" in text, f"question {key} has no section"
        first_help_line = str(spec.get("help", "")).strip().splitlines()[0].strip()
        first_help_line = first_help_line.replace("`", "")  # code spans lose their backticks
        assert first_help_line in text, f"help of {key} is missing"
    for key in computed:
        assert key in text, f"computed value {key} is missing"
    # Each question's rules, from the rule functions of hooks/questions.py.
    for key, rules in reference.question_rules().RULES.items():
        for rule in rules:
            shown = reference.doc_line(rule).replace("`", "")  # code spans lose their backticks
            assert shown in text, f"rule {rule.__name__} of {key} is missing"


def test_cli_page_has_every_command_and_option_of_the_parser(site, tmp_path):
    project = reference.render(tmp_path / "project")
    package, module = reference.load_cli(project)
    try:
        parser = module.build_parser()
        commands = {}
        for name, sub in reference._subcommands(parser):
            children = dict(reference._subcommands(sub))
            commands.update({f"{name} {c}": p for c, p in children.items()} or {name: sub})
    finally:
        reference.forget_package(package)
    text = page_text(site, "reference/cli")
    assert set(commands) >= {"definition", "run-local", "upsert", "start", "models list"}
    for name, sub in commands.items():
        assert f"{name}¶" in text, f"command {name} has no section"
        for action in sub._actions:
            for option in [] if action.dest == "help" else action.option_strings:
                assert option in text, f"{name} {option} is not documented"


def test_parameters_page_lists_the_captured_definition_parameters(site):
    definition = json.loads((SNIPPETS / "definition.json").read_text())
    text = page_text(site, "reference/parameters")
    for parameter in definition["Parameters"]:
        assert parameter["Name"] in text


def test_tutorial_includes_every_captured_transcript(site):
    text = page_text(site, "tutorial")
    assert "--8<--" not in text
    for snippet in SNIPPETS.glob("*.txt"):
        first_command = snippet.read_text().splitlines()[0].removeprefix("$ ")
        assert first_command in text, f"{snippet.name} is not shown in the tutorial"


def test_readme_excerpts_are_the_captured_transcripts():
    """A block after `<!-- captured: NAME -->` in the README is a contiguous part of the
    committed snippet NAME, so the README shows what the code prints."""
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"<!-- captured: (\S+) -->\n```\n(.*?)```", readme, re.DOTALL)
    assert blocks, "the README shows no captured session"
    for name, block in blocks:
        snippet = (ROOT / "docs" / "_snippets" / name).read_text()
        assert block in snippet, f"the README's excerpt of {name} differs from the capture"


def test_every_rendered_file_has_a_description(tmp_path):
    """The layout page fails the build otherwise; this names the files of every variant."""
    choices = yaml.safe_load((ROOT / "copier.yml").read_text())["sagemaker_sdk"]["choices"]
    variants = {**reference.VARIANTS, "no-gate": {"quality_gate": False}}
    variants.update({f"sdk-{sdk}": {"sagemaker_sdk": sdk} for sdk in choices})
    missing = {}
    for name, answers in variants.items():
        project = reference.render(tmp_path / name, **answers)
        if undescribed := reference.undescribed_files(project):
            missing[name] = undescribed
    assert not missing, f"add these to FILE_DESCRIPTIONS in docs/_hooks/reference.py: {missing}"


def test_committed_snippets_hold_placeholders_not_machine_details():
    texts = {path.name: path.read_text() for path in SNIPPETS.iterdir()}
    assert {"copier-copy.txt", "run-local.txt", "aws.txt", "definition.json"} <= set(texts)
    for name, text in texts.items():
        for leak in (str(ROOT), "/tmp/", "\x1b["):
            assert leak not in text, f"{name} contains {leak!r}: run `make docs-capture`"
        assert not re.search(r"(Execution |runs/|execution/)[a-z0-9]{12}\b", text), name
    json.loads(texts["definition.json"])


@pytest.mark.slow
def test_tutorial_output_is_what_the_code_prints(tmp_path, shared_bytecode):
    """Renders, installs and runs the tutorial again; the committed snippets must match."""
    written = capture.capture(
        tmp_path / "out",
        tmp_path / "work",
        UV,
        lambda project: shared_bytecode.seed(project / ".venv"),
    )
    shared_bytecode.keep(tmp_path / "work" / capture.PROJECT / ".venv")
    fresh = {path.name: path.read_text() for path in written}
    committed = {path.name: path.read_text() for path in SNIPPETS.iterdir()}
    assert set(fresh) == set(committed), "run `make docs-capture` and commit docs/_snippets/"
    stale = []
    for name in sorted(fresh):
        if fresh[name] != committed[name]:
            diff = difflib.unified_diff(
                committed[name].splitlines(), fresh[name].splitlines(),
                f"committed/{name}", f"now/{name}", lineterm="", n=1,
            )  # fmt: skip
            stale.append("\n".join(list(diff)[:40]))
    assert not stale, (
        "The tutorial's output changed; check the page still reads right, then run "
        "`make docs-capture` and commit docs/_snippets/:\n" + "\n\n".join(stale)
    )
