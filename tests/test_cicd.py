"""CI/CD files of each ci_provider: the right files, valid YAML, nothing of Jinja left.

The linters (cfn-lint, checkov, check-jsonschema) run inside each generated project, in
its own tests/test_cicd.py, which `make test` of test_generated_projects.py executes.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from conftest import render

FILES = {
    "codepipeline": [
        "infra/pipeline-stack.yml",
        "infra/buildspec.yml",
        "infra/buildspec-release.yml",
        "infra/buildspec-deploy.yml",
    ],
    "github-actions": [
        "infra/github-oidc-stack.yml",
        ".github/workflows/ci.yml",
        ".github/workflows/promote.yml",
    ],
    "none": [],
}
ALL_CI_FILES = sorted({name for names in FILES.values() for name in names})
ALWAYS = ["docs/ci-cd.md", "tests/test_cicd.py"]
JINJA_LEFT = re.compile(r"\{\{|\{%|%\}|\{#|#\}")
# GitHub Actions expressions are `${{ ... }}`: the workflow keeps them on purpose.
GITHUB_EXPRESSION = re.compile(r"\$\{\{[^}]*\}\}")
# Resources defined once (template/{% if false %}jinja-includes{% endif %}/cfn_common.jinja)
# and rendered into both stacks.
SHARED = [
    "ArtifactBucket",
    "ArtifactBucketPolicy",
    "AccessLogBucket",
    "SageMakerExecutionRole",
    "ModelPackageGroup",
    "ModelApproverRole",
    "FailureTopic",
    "FailureEmailSubscription",
    "SageMakerPipelineFailedRule",
    "DeployOnApprovalRule",
    "DeployOnApprovalRole",
    "DeployOnApprovalDeadLetterQueue",
    "DeployOnApprovalDeadLetterQueuePolicy",
    "DeployOnApprovalUndeliveredAlarm",
]


class CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation's short forms (!Ref, !Sub, ...) as {tag: value}."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_stack(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=CloudFormationLoader)


@pytest.fixture(scope="module")
def projects(tmp_path_factory):
    base = tmp_path_factory.mktemp("cicd")
    return {provider: render(base / provider, ci_provider=provider) for provider in FILES}


@pytest.mark.parametrize("provider", sorted(FILES))
def test_each_provider_renders_its_files_and_only_them(projects, provider):
    project = projects[provider]
    for name in ALL_CI_FILES:
        wanted = name in FILES[provider]
        assert (project / name).is_file() == wanted, f"{provider}: {name} wanted={wanted}"
    for name in ALWAYS:
        assert (project / name).is_file(), f"{provider}: {name} missing"
    if provider == "none":
        assert not (project / "infra").exists() and not (project / ".github").exists()
        assert not list(project.rglob("buildspec*"))
    # Everything CodePipeline needs lives in infra/ (since 0.2.0): nothing at the top level.
    assert not list(project.glob("buildspec*"))
    # The directory of the shared Jinja macros never reaches a project.
    assert not [p for p in project.rglob("*") if "jinja-includes" in str(p)]


@pytest.mark.parametrize("provider", sorted(FILES))
def test_ci_files_are_rendered_and_valid_yaml(projects, provider):
    project = projects[provider]
    for name in FILES[provider] + ALWAYS:
        text = (project / name).read_text()
        assert text.endswith("\n") and not text.endswith("\n\n"), f"{name}: end of file"
        assert not re.search(r"[ \t]$", text, re.MULTILINE), f"{name}: trailing whitespace"
        if name.startswith(".github/"):
            text = GITHUB_EXPRESSION.sub("", text)
        match = JINJA_LEFT.search(text)
        assert match is None, (
            f"{provider}: {name} keeps Jinja: {text[match.start() - 60 :][:120]!r}"
        )
    for name in FILES[provider]:
        path = project / name
        if name.endswith("-stack.yml"):
            stack = load_stack(path)
            assert stack["AWSTemplateFormatVersion"] == "2010-09-09"
            assert {"Parameters", "Resources", "Outputs"} <= set(stack)
        else:
            document = yaml.safe_load(path.read_text())
            assert isinstance(document, dict) and document, name


def test_workflow_shape(projects):
    workflow = yaml.safe_load((projects["github-actions"] / ".github/workflows/ci.yml").read_text())
    on = workflow.get("on", workflow.get(True))  # YAML 1.1 reads `on` as True
    assert set(on) == {"pull_request", "push"}
    assert set(workflow["jobs"]) == {"test", "release", "template"}
    assert workflow["jobs"]["release"]["permissions"]["id-token"] == "write"
    setup = [s for s in workflow["jobs"]["test"]["steps"] if "setup-python" in s.get("uses", "")]
    assert setup[0]["with"]["python-version"] == "3.11"


def test_shared_resources_are_identical_in_both_stacks(projects):
    pipeline = load_stack(projects["codepipeline"] / "infra/pipeline-stack.yml")
    github = load_stack(projects["github-actions"] / "infra/github-oidc-stack.yml")
    for name in SHARED:
        assert pipeline["Resources"][name] == github["Resources"][name], name
    assert pipeline["Mappings"] == github["Mappings"]
    assert pipeline["Parameters"]["NotificationEmail"] == github["Parameters"]["NotificationEmail"]
    release = pipeline["Resources"]["ReleaseBuildRole"]["Properties"]["Policies"][1]
    deploy = github["Resources"]["GitHubDeployRole"]["Properties"]["Policies"][0]
    assert release == deploy, "the CodeBuild release and GitHub deploy roles may do the same"
    prod = pipeline["Resources"]["DeployProdBuildRole"]["Properties"]["Policies"][1]
    promote = github["Resources"]["GitHubPromoteRole"]["Properties"]["Policies"][0]
    assert prod == promote, "the CodeBuild deploy-prod and GitHub promote roles may do the same"


def test_the_data_key_is_shared_by_both_stacks_and_only_there_when_asked(tmp_path, projects):
    stacks = {}
    for provider in ("codepipeline", "github-actions"):
        project = render(tmp_path / provider, ci_provider=provider, encrypt_and_isolate=True)
        (stack_file,) = (project / "infra").glob("*-stack.yml")
        stacks[provider] = load_stack(stack_file)
    pipeline, github = stacks["codepipeline"], stacks["github-actions"]
    for name in [*SHARED, "DataKey", "DataKeyAlias"]:
        assert pipeline["Resources"][name] == github["Resources"][name], name
    assert pipeline["Outputs"]["DataKeyArn"] == github["Outputs"]["DataKeyArn"]
    off = load_stack(projects["codepipeline"] / "infra/pipeline-stack.yml")
    assert "DataKey" not in off["Resources"] and "DataKeyArn" not in off["Outputs"]
    assert "kms:" not in str(off["Resources"]["SageMakerExecutionRole"])


@pytest.mark.parametrize("provider", ["codepipeline", "github-actions"])
def test_names_fit_aws_limits_and_arns_cover_both_spellings(tmp_path, provider):
    """The longest slug (40), and names with capitals that SageMaker lowercases in ARNs."""
    slug = "a" * 30 + "-b23456789"
    project = render(
        tmp_path / "long",
        project_name="Long Name",
        project_slug=slug,
        pipeline_name="Churn-Pipeline",
        model_package_group_name="ChurnGroup",
        ci_provider=provider,
    )
    (stack_file,) = (project / "infra").glob("*-stack.yml")
    stack = load_stack(stack_file)
    limits = {
        ("AWS::IAM::Role", "RoleName"): 64,
        ("AWS::Events::Rule", "Name"): 64,
        ("AWS::SNS::Topic", "TopicName"): 256,
        ("AWS::KMS::Alias", "AliasName"): 256,
        ("AWS::CodeBuild::Project", "Name"): 150,
        ("AWS::CodePipeline::Pipeline", "Name"): 100,
        ("AWS::Logs::LogGroup", "LogGroupName"): 512,
        ("AWS::SQS::Queue", "QueueName"): 80,
        ("AWS::CloudWatch::Alarm", "AlarmName"): 255,
    }
    for name, resource in stack["Resources"].items():
        for (kind, field), limit in limits.items():
            if resource["Type"] == kind:
                value = resource["Properties"][field]
                assert slug in value and len(value) <= limit, f"{name}.{field}: {value}"
    text = stack_file.read_text()
    for spelling in ("pipeline/Churn-Pipeline", "pipeline/churn-pipeline"):
        assert spelling in text
    for spelling in ("pipeline/Churn-Pipeline-deploy", "pipeline/churn-pipeline-deploy"):
        assert spelling in text
    if provider == "codepipeline":  # CodePipeline's limit on an approval's CustomData
        stages = stack["Resources"]["ReleasePipeline"]["Properties"]["Stages"]
        custom = [a["Configuration"].get("CustomData", "") for s in stages for a in s["Actions"]]
        assert max(map(len, custom)) <= 500
    for spelling in (
        "model-package-group/ChurnGroup",
        "model-package-group/churngroup",
    ):
        assert spelling in text
