"""The pipeline definition, built offline, checked against the SageMaker API itself.

Each step's Arguments are validated with botocore's request shapes for the API call the
service makes for that step, after replacing pipeline expressions (Get, Std:Join,
Std:JsonGet) with values of the type the shape expects.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
from types import SimpleNamespace

import botocore.session
import pytest
from botocore.validate import ParamValidator

# Step type -> (API operation, fields the service fills in at execution time).
API_OF_STEP = {
    "Processing": ("CreateProcessingJob", {"ProcessingJobName": "placeholder-job"}),
    "Training": ("CreateTrainingJob", {"TrainingJobName": "placeholder-job"}),
    "Model": ("CreateModel", {"ModelName": "placeholder-model"}),
    "Transform": ("CreateTransformJob", {"TransformJobName": "placeholder-job"}),
    "RegisterModel": ("CreateModelPackage", {}),
    "EndpointConfig": ("CreateEndpointConfig", {}),
    "Endpoint": ("CreateEndpoint", {}),
}
EXPRESSIONS = ("Get", "Std:Join", "Std:JsonGet")


def all_steps(steps: list[dict]) -> list[dict]:
    """Every step, including those nested in a ConditionStep's branches."""
    found = []
    for step in steps:
        found.append(step)
        if step["Type"] == "Condition":
            found += all_steps(step["Arguments"].get("IfSteps", []))
            found += all_steps(step["Arguments"].get("ElseSteps", []))
    return found


def is_expression(value: object) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in EXPRESSIONS


def placeholder(shape) -> object:
    return {
        "string": "placeholder",
        "integer": 1,
        "long": 1,
        "float": 1.0,
        "double": 1.0,
        "boolean": True,
        "timestamp": "2026-01-01T00:00:00Z",
    }.get(shape.type_name, "placeholder")


def substitute(value: object, shape) -> object:
    """Replace pipeline expressions with values of the type the API shape expects."""
    if is_expression(value):
        return placeholder(shape)
    if shape.type_name == "structure" and isinstance(value, dict):
        return {
            key: substitute(item, shape.members[key]) if key in shape.members else item
            for key, item in value.items()
        }
    if shape.type_name == "list" and isinstance(value, list):
        return [substitute(item, shape.member) for item in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {key: substitute(item, shape.value) for key, item in value.items()}
    return value


def expressions(value: object) -> list[dict]:
    if is_expression(value):
        inner = next(iter(value.values()))
        return [value, *expressions(inner)]
    if isinstance(value, dict):
        return [found for item in value.values() for found in expressions(item)]
    if isinstance(value, list):
        return [found for item in value for found in expressions(item)]
    return []


@pytest.fixture(scope="module")
def sagemaker_api():
    return botocore.session.get_session().get_service_model("sagemaker")


@pytest.fixture(scope="module")
def steps(definition: dict) -> dict[str, dict]:
    return {step["Name"]: step for step in all_steps(definition["Steps"])}


# The Unicode classes of the API's (Java) patterns, widened to what Python's re knows.
UNICODE_CLASSES = {r"\p{L}": r"\w", r"\p{N}": r"\d", r"\p{Z}": r"\s", r"\p{M}": ""}


def python_pattern(pattern: str | None) -> re.Pattern | None:
    """The shape's pattern for re.fullmatch, or None where it has no Python equivalent."""
    if not pattern:
        return None
    for java, python in UNICODE_CLASSES.items():
        pattern = pattern.replace(java, python)
    pattern = re.sub(r"\$\{\d+,\d+\}$", "$", pattern)  # '(...)${1,256}': a length, checked apart
    try:
        return None if r"\p{" in pattern else re.compile(pattern, re.DOTALL)
    except re.error:
        return None


def literal_problems(value: object, shape, where: str) -> list[str]:
    """Literal strings longer than the shape allows or outside its pattern: botocore's
    validator checks neither, the service refuses both. Expressions are resolved later."""
    if is_expression(value):
        return []
    if shape.type_name == "string" and isinstance(value, str):
        problems = []
        if len(value) > shape.metadata.get("max", len(value)):
            problems.append(f"{where}: {len(value)} characters, at most {shape.metadata['max']}")
        pattern = python_pattern(shape.metadata.get("pattern"))
        if pattern is not None and not pattern.fullmatch(value):
            problems.append(f"{where}: {value!r} does not match {shape.metadata['pattern']}")
        return problems
    if shape.type_name == "structure" and isinstance(value, dict):
        return [
            problem
            for key, item in value.items()
            if key in shape.members
            for problem in literal_problems(item, shape.members[key], f"{where}.{key}")
        ]
    if shape.type_name == "list" and isinstance(value, list):
        return [p for i, v in enumerate(value) for p in literal_problems(v, shape.member, where)]
    if shape.type_name == "map" and isinstance(value, dict):
        return [
            problem
            for key, item in value.items()
            for problem in [
                *literal_problems(key, shape.key, f"{where} key"),
                *literal_problems(item, shape.value, f"{where}.{key}"),
            ]
        ]
    return []


def validate(steps: dict[str, dict], sagemaker_api) -> set[str]:
    """Each step's Arguments against its API request shape; the step types validated."""
    validated = set()
    for name, step in steps.items():
        if step["Type"] not in API_OF_STEP:
            continue
        operation, filled_by_service = API_OF_STEP[step["Type"]]
        shape = sagemaker_api.operation_model(operation).input_shape
        request = {**filled_by_service, **substitute(step["Arguments"], shape)}
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), f"{name} ({operation}):\n{report.generate_report()}"
        problems = literal_problems(step["Arguments"], shape, name)
        assert not problems, f"{name} ({operation}):\n" + "\n".join(problems)
        validated.add(step["Type"])
    return validated


def test_literals_are_checked_against_the_apis_lengths_and_patterns(sagemaker_api):
    shape = sagemaker_api.operation_model("CreateModelPackage").input_shape
    fine = {"CustomerMetadataProperties": {"GitDirty": "true", "Uri": "s3://b/k.json"}}
    assert literal_problems(fine, shape, "RegisterModel") == []
    for metadata in ({"Columns": "a,b"}, {"Long": "x" * 257}, {"bad,key": "v"}):
        request = {"CustomerMetadataProperties": metadata}
        assert literal_problems(request, shape, "RegisterModel"), metadata


def test_every_step_validates_against_the_sagemaker_api(steps, sagemaker_api):
    assert validate(steps, sagemaker_api) == {
        "Processing", "Training", "Model", "Transform", "RegisterModel"
    }, "a step type of the pipeline was not validated"  # fmt: skip


def test_every_deploy_step_validates_against_the_sagemaker_api(deploy_definition, sagemaker_api):
    steps = {step["Name"]: step for step in deploy_definition["Steps"]}
    assert validate(steps, sagemaker_api) == {"Processing", "Model", "EndpointConfig", "Endpoint"}


def test_the_flow_and_the_gate(definition, steps, settings):
    pipeline = importlib.import_module(f"{settings.package_name}.pipeline")
    create_model, transform, register = release_steps = list(pipeline.RELEASE_STEPS)
    top = [(step["Name"], step["Type"]) for step in definition["Steps"]]
    assert top[:3] == [
        ("Preprocess", "Processing"),
        ("Train", "Training"),
        ("Evaluate", "Processing"),
    ]
    if settings.quality_gate:
        # Nothing that releases a model may run outside the gate (no top-level repack steps).
        assert top[3:] == [("QualityGate", "Condition")]
        gate = steps["QualityGate"]["Arguments"]
        assert [s["Name"] for s in gate["IfSteps"]] == release_steps
        assert [(s["Name"], s["Type"]) for s in gate["ElseSteps"]] == [("Fail", "Fail")]
        # The answer's threshold is a floor in the definition itself; the parameter can only
        # add to it; and the champion's score (plus the margin) as Evaluate found it: every
        # condition must hold (a ConditionStep's conditions are all required).
        floor, chosen, champion = gate["Conditions"]
        expected = "LessThanOrEqualTo" if settings.lower_is_better else "GreaterThanOrEqualTo"
        assert floor["Type"] == chosen["Type"] == champion["Type"] == expected
        assert floor["LeftValue"] == chosen["LeftValue"] == champion["LeftValue"]
        assert floor["RightValue"] == settings.metric_threshold
        assert chosen["RightValue"] == {"Get": "Parameters.MetricThreshold"}
        required = champion["RightValue"]["Std:JsonGet"]
        assert required["Path"] == "champion_challenger.required"
        assert required["PropertyFile"] == floor["LeftValue"]["Std:JsonGet"]["PropertyFile"]
        arguments = steps["Evaluate"]["Arguments"]["AppSpecification"]["ContainerArguments"]
        pairs = dict(zip(arguments[::2], arguments[1::2], strict=False))
        assert pairs["--model-package-group"] == settings.model_package_group_name
        assert (pairs["--metric"], float(pairs["--margin"])) == (
            settings.metric,
            settings.champion_margin,
        )
    else:
        assert [name for name, _ in top[3:]] == release_steps
        assert "QualityGate" not in steps and "Fail" not in steps
    types = [steps[name]["Type"] for name in release_steps]
    assert types == ["Model", "Transform", "RegisterModel"]
    assert steps[register]["DependsOn"] == [transform]
    assert steps[transform]["Arguments"]["ModelName"] == {"Get": f"Steps.{create_model}.ModelName"}
    # What the deploy pipeline's smoke test compares an endpoint's answers with.
    metadata = steps[register]["Arguments"]["CustomerMetadataProperties"]
    assert metadata["HeldOutRows"] == {
        "Get": "Steps.Preprocess.ProcessingOutputConfig.Outputs['batch'].S3Output.S3Uri"
    }
    assert metadata["BatchPredictions"] == {
        "Get": f"Steps.{transform}.TransformOutput.S3OutputPath"
    }
    # Which execution made the version, and with which hyperparameters, as text.
    assert metadata["PipelineExecutionId"] == {"Get": "Execution.PipelineExecutionId"}
    for name in settings.hyperparameters:
        parameter = {"Get": f"Parameters.{name}"}
        assert metadata[name] == {"Std:Join": {"On": "", "Values": [parameter]}}, name


# The jobs that call AWS cannot be network-isolated: Evaluate (the champion, in SageMaker and
# S3), ResolveVersion and SmokeTest (SageMaker's API). The others need no network.
CONNECTED_STEPS = {"Evaluate", "ResolveVersion", "SmokeTest"}


def _security(step: dict) -> tuple[list, object, object]:
    """(the step's KMS key fields, its network isolation, its inter-container encryption);
    None where the API has no such field for the step."""
    a = step["Arguments"]
    if step["Type"] in ("Processing", "Training"):
        if step["Type"] == "Processing":
            network = a.get("NetworkConfig", {})
            volume = a["ProcessingResources"]["ClusterConfig"].get("VolumeKmsKeyId")
            keys = [a["ProcessingOutputConfig"].get("KmsKeyId"), volume]
        else:
            network, volume = a, a["ResourceConfig"].get("VolumeKmsKeyId")
            keys = [a["OutputDataConfig"].get("KmsKeyId"), volume]
        isolated = network.get("EnableNetworkIsolation", False)
        return keys, isolated, network.get("EnableInterContainerTrafficEncryption", False)
    if step["Type"] == "Transform":  # isolated as its model is
        output, resources = a["TransformOutput"], a["TransformResources"]
        return [output.get("KmsKeyId"), resources.get("VolumeKmsKeyId")], None, None
    if step["Type"] == "EndpointConfig":
        return [a.get("KmsKeyId")], None, None
    if step["Type"] == "Model":
        return [], a.get("EnableNetworkIsolation", False), None
    return [], None, None


@pytest.mark.parametrize("which", ["build", "deploy"])
def test_encryption_and_isolation_are_exactly_where_the_answer_puts_them(
    which, definition, deploy_definition, settings
):
    from importlib import import_module

    on = settings.encrypt_and_isolate
    offline = import_module(f"{settings.package_name}.offline")
    key = offline.offline_kms_key_arn(settings) if on else None
    pipeline = definition if which == "build" else deploy_definition
    checked = set()
    for step in all_steps(pipeline["Steps"]):
        keys, isolated, traffic = _security(step)
        name = step["Name"].split("-")[0]  # SDK v2's ModelStep N holds a step N-CreateModel
        assert keys == [key] * len(keys), f"{step['Name']}: KMS keys {keys}, expected {key}"
        if isolated is not None:
            assert isolated == (on and name not in CONNECTED_STEPS), f"{step['Name']}: {isolated}"
            checked.add(name)
        if traffic is not None:
            assert traffic == on, f"{step['Name']}: EnableInterContainerTrafficEncryption"
        if step["Type"] == "Model":
            a = step["Arguments"]
            (container,) = [a["PrimaryContainer"]] if "PrimaryContainer" in a else a["Containers"]
            # Isolated, the image's pip install of the inference code must find no index.
            environment = container.get("Environment", {})
            assert (environment.get("PIP_NO_BUILD_ISOLATION") == "false") == on, environment
    expected = {"build": {"Preprocess", "Train", "Evaluate", "CreateModel"},
                "deploy": {"ResolveVersion", "CreateModel", "SmokeTest"}}[which]  # fmt: skip
    assert checked == expected


def test_a_version_records_its_code_and_data(definition, steps, settings):
    """The commit, dirty flag and template version compiled in; the data's fingerprint read
    from the file Preprocess writes; a model card of what is known when the definition is built."""
    pipeline = importlib.import_module(f"{settings.package_name}.pipeline")
    provenance = importlib.import_module(f"{settings.package_name}.provenance")
    register = steps[pipeline.RELEASE_STEPS[2]]["Arguments"]
    metadata = register["CustomerMetadataProperties"]
    source = provenance.source_revision()
    assert (metadata["GitCommit"], metadata["GitDirty"], metadata["TemplateVersion"]) == (
        source.commit, source.dirty, source.template_version
    )  # fmt: skip
    assert source.dirty in ("true", "false", "unknown")
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", metadata["DefinitionHash"])
    assert register["MetadataProperties"] == {
        "CommitId": source.commit, "GeneratedBy": {"Get": "Execution.PipelineExecutionArn"}
    }  # fmt: skip

    (fingerprint,) = steps["Preprocess"]["PropertyFiles"]
    assert (fingerprint["OutputName"], fingerprint["FilePath"]) == (
        "fingerprint",
        "fingerprint.json",
    )
    outputs = steps["Preprocess"]["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    local = {o["OutputName"]: o["S3Output"]["LocalPath"] for o in outputs}
    assert local["fingerprint"] == "/opt/ml/processing/output/fingerprint"  # preprocess.py's
    reference = {"Get": f"Steps.Preprocess.PropertyFiles.{fingerprint['PropertyFileName']}"}
    for key, path in (("InputDataSha256", "sha256"), ("InputSchemaSha256", "schema_sha256")):
        assert metadata[key] == {"Std:JsonGet": {"PropertyFile": reference, "Path": path}}
    for key, path in (("InputDataRows", "rows"), ("InputDataColumns", "column_count")):
        value = {"Std:JsonGet": {"PropertyFile": reference, "Path": path}}
        assert metadata[key] == {"Std:Join": {"On": "", "Values": [value]}}  # text, not a number
    assert metadata["InputFingerprint"]["Std:Join"]["Values"][1] == "fingerprint.json"

    card = register["ModelCard"]
    assert card["ModelCardStatus"] == "Draft"
    content = json.loads(card["ModelCardContent"])
    assert content["additional_information"]["custom_details"]["git_commit"] == source.commit
    assert settings.target_column in content["intended_uses"]["purpose_of_model"]


def test_the_definition_records_its_own_hash(definition_text, settings):
    provenance = importlib.import_module(f"{settings.package_name}.provenance")
    assert provenance.DEFINITION_HASH_PLACEHOLDER not in definition_text
    assert provenance.verify_definition(definition_text)
    assert provenance.verify_definition(json.dumps(json.loads(definition_text), indent=2))
    edited = json.loads(definition_text)
    edited["Parameters"][0]["DefaultValue"] = "s3://another-bucket/data.csv"
    assert not provenance.verify_definition(json.dumps(edited))


def test_the_source_revision_says_what_it_knows(settings, tmp_path):
    """Outside a repository, before the first commit, clean and dirty; the template version
    from the answers file."""
    import subprocess

    provenance = importlib.import_module(f"{settings.package_name}.provenance")
    assert provenance.source_revision(tmp_path) == provenance.SourceRevision(
        "not-a-git-repository", "unknown", "unknown"
    )

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / ".copier-answers.yml").write_text("_commit: v1.2.3-4-gabc\n_src_path: x\n")
    assert provenance.source_revision(tmp_path) == provenance.SourceRevision(
        "no-commits", "true", "v1.2.3-4-gabc"
    )
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "first")
    head = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    assert provenance.source_revision(tmp_path).commit == head
    assert provenance.source_revision(tmp_path).dirty == "false"
    (tmp_path / "new.py").write_text("")
    assert provenance.source_revision(tmp_path).dirty == "true"
    assert provenance.metadata_value("v1.0+local,build") == "v1.0+local-build"


def test_the_deploy_flow(deploy_definition, settings):
    steps = {step["Name"]: step for step in deploy_definition["Steps"]}
    kinds = [step["Type"] for step in deploy_definition["Steps"]]
    assert kinds == ["Processing", "Model", "EndpointConfig", "Endpoint", "Processing"]
    resolve, model, config, endpoint, smoke = deploy_definition["Steps"]
    assert (resolve["Name"], smoke["Name"]) == ("ResolveVersion", "SmokeTest")
    parameters = {p["Name"]: p for p in deploy_definition["Parameters"]}
    assert parameters["Stage"]["EnumValues"] == ["staging", "prod"]
    assert parameters["ModelPackageArn"]["DefaultValue"] == ""  # the newest Approved
    # The model is the version itself, read from what ResolveVersion found.
    (container,) = model["Arguments"]["Containers"]
    assert container["ModelPackageName"]["Std:JsonGet"]["Path"] == "ModelPackageArn"
    variant = config["Arguments"]["ProductionVariants"][0]
    assert variant["ModelName"] == {"Get": f"Steps.{model['Name']}.ModelName"}
    assert variant["InstanceType"] == {"Get": "Parameters.EndpointInstanceType"}
    stage_endpoint = {
        "Std:Join": {"On": "-", "Values": [settings.project_slug, {"Get": "Parameters.Stage"}]}
    }
    assert endpoint["Arguments"]["EndpointName"] == stage_endpoint
    assert endpoint["Arguments"]["EndpointConfigName"] == {
        "Get": f"Steps.{config['Name']}.EndpointConfigName"
    }
    # The smoke test runs once the endpoint serves, against that endpoint, and knows what
    # to put back.
    assert smoke["DependsOn"] == ["Endpoint"]
    arguments = smoke["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert arguments[arguments.index("--endpoint-name") + 1] == stage_endpoint
    previous = arguments[arguments.index("--previous-config") + 1]
    assert previous["Std:JsonGet"]["Path"] == "PreviousEndpointConfig"
    assert steps["ResolveVersion"]["PropertyFiles"][0]["FilePath"] == "release.json"


@pytest.mark.parametrize("which", ["build", "deploy"])
def test_references_resolve(which, definition, deploy_definition):
    definition = {"build": definition, "deploy": deploy_definition}[which]
    steps = {step["Name"]: step for step in all_steps(definition["Steps"])}
    parameters = {p["Name"] for p in definition["Parameters"]}
    property_files = {
        (name, f["PropertyFileName"])
        for name, s in steps.items()
        for f in s.get("PropertyFiles", [])
    }
    outputs = {
        (name, o["OutputName"])
        for name, s in steps.items()
        if s["Type"] == "Processing"
        for o in s["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    }
    seen = 0
    for name, step in steps.items():
        for expr in expressions(step.get("Arguments", {})):
            if "Get" not in expr:
                continue
            seen += 1
            target = expr["Get"]
            root, _, rest = target.partition(".")
            if root == "Parameters":
                assert rest in parameters, f"{name}: {target} is not a pipeline parameter"
            elif root == "Steps":
                source, _, path = rest.partition(".")
                assert source in steps, f"{name}: {target} names no step"
                assert source != name, f"{name} refers to itself"
                output = re.match(r"ProcessingOutputConfig\.Outputs\['([^']+)'\]", path)
                if output:
                    assert (source, output.group(1)) in outputs, f"{name}: no output {target}"
                if path.startswith("PropertyFiles."):
                    assert (source, path.split(".", 1)[1]) in property_files, target
            else:
                assert root == "Execution", f"{name}: unexpected reference {target}"
    assert seen >= 8


def test_parameters_and_images(definition, steps, settings):
    pipeline = importlib.import_module(f"{settings.package_name}.pipeline")
    parameters = {p["Name"]: p for p in definition["Parameters"]}
    expected = {
        "InputDataUri", "ProcessingInstanceType", "ProcessingInstanceCount",
        "TrainingInstanceType", "TrainingKeepAliveSeconds", "TransformInstanceType",
        "NEstimators", "MaxDepth", "MinSamplesLeaf",
    } | ({"MetricThreshold"} if settings.quality_gate else set())  # fmt: skip
    assert set(parameters) == expected  # no ModelApprovalStatus: a run cannot approve
    # The sample is read from a key named by its content: an edited sample is a new object.
    assert parameters["InputDataUri"]["DefaultValue"].endswith(f"/{settings.input_key()}")
    register = steps[pipeline.RELEASE_STEPS[2]]["Arguments"]
    assert register["ModelApprovalStatus"] == "PendingManualApproval"
    assert parameters["TrainingInstanceType"]["DefaultValue"] == settings.training_instance_type
    if settings.quality_gate:
        assert parameters["MetricThreshold"] == {
            "Name": "MetricThreshold", "Type": "Float", "DefaultValue": settings.metric_threshold
        }  # fmt: skip
    # Image URIs are resolved explicitly: literal, and not tied to an instance-type parameter.
    images = [
        steps["Preprocess"]["Arguments"]["AppSpecification"]["ImageUri"],
        steps["Train"]["Arguments"]["AlgorithmSpecification"]["TrainingImage"],
        steps[pipeline.RELEASE_STEPS[0]]["Arguments"]["PrimaryContainer"]["Image"],
    ]
    assert all(isinstance(image, str) and settings.framework_version in image for image in images)
    assert steps["Train"]["Arguments"]["ResourceConfig"]["InstanceType"] == {
        "Get": "Parameters.TrainingInstanceType"
    }


def test_hyperparameters_reach_the_api_as_strings(steps):
    hyperparameters = steps["Train"]["Arguments"]["HyperParameters"]
    for key, value in hyperparameters.items():
        assert isinstance(value, str) or "Std:Join" in value, (
            f"{key} would not be a string: {value}"
        )
    assert hyperparameters["n-estimators"] == {
        "Std:Join": {"On": "", "Values": [{"Get": "Parameters.NEstimators"}]}
    }


def test_the_gate_reads_the_path_evaluate_writes(steps, settings, sample_run):
    """The gate's JsonGet path, read from the evaluation.json evaluate.py wrote for the sample."""
    if not settings.quality_gate:
        # Rendered without the gate: neither the condition nor its Fail step is built.
        assert not {"QualityGate", "Fail"} & steps.keys(), sorted(steps)
        return
    gate = steps["QualityGate"]["Arguments"]["Conditions"][0]["LeftValue"]["Std:JsonGet"]
    assert gate["PropertyFile"] == {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}
    (report,) = steps["Evaluate"]["PropertyFiles"]
    assert (report["OutputName"], report["FilePath"]) == ("evaluation", "evaluation.json")

    value: object = sample_run.evaluation
    for key in gate["Path"].split("."):
        value = value[key]
    assert isinstance(value, float)
    fail_message = json.dumps(steps["Fail"]["Arguments"]["ErrorMessage"])
    assert gate["Path"] in fail_message and "Parameters.MetricThreshold" in fail_message
    assert "champion_challenger.summary" in fail_message
    assert f"{settings.metric_threshold:g} (the project's floor)" in fail_message


@pytest.fixture(scope="module")
def offline_build(settings, without_aws, tmp_path_factory) -> SimpleNamespace:
    """`definition --rebuild -o FILE` with no AWS credentials and no network, into a build
    cache of its own: a second build of the definition, beside the session's."""
    tmp = tmp_path_factory.mktemp("offline-build")
    # Any attempt to reach the network would go to these dead addresses and fail.
    dead = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    cli = importlib.import_module(f"{settings.package_name}.cli")
    with pytest.MonkeyPatch.context() as patch:
        for key in os.environ.keys() - without_aws.keys():
            patch.delenv(key)
        for key, value in {**without_aws, **dead, "XDG_CACHE_HOME": str(tmp / "cache")}.items():
            patch.setenv(key, value)
        out = tmp / "definition.json"
        status = cli.main(["definition", "--rebuild", "-o", str(out)])
    return SimpleNamespace(status=status, text=out.read_text(), cache=tmp / "cache")


def test_definition_command_needs_no_credentials_and_no_network(offline_build):
    assert offline_build.status == 0
    built = json.loads(offline_build.text)
    assert [s["Name"] for s in built["Steps"]][:3] == ["Preprocess", "Train", "Evaluate"]


def test_an_input_key_changes_with_the_content_and_only_with_it(settings, tmp_path):
    first, same, edited = (tmp_path / name / "data.csv" for name in ("a", "b", "c"))
    for path, text in ((first, "x,y\n1,2\n"), (same, "x,y\n1,2\n"), (edited, "x,y\n1,3\n")):
        path.parent.mkdir()
        path.write_text(text)
    assert settings.input_key(first) == settings.input_key(same)
    assert settings.input_key(first) != settings.input_key(edited)
    assert settings.input_key(first).startswith(f"{settings.project_slug}/input/")
    assert settings.input_key(first).endswith("/data.csv")
    edited.write_text("x,y\n1,2\n")  # edited back: the key follows the content
    assert settings.input_key(edited) == settings.input_key(first)


def test_definition_prints_the_deploy_pipeline_on_request(
    settings, deploy_definition, monkeypatch, capsys
):
    offline = importlib.import_module(f"{settings.package_name}.offline")
    cli = importlib.import_module(f"{settings.package_name}.cli")
    asked = []

    def build(settings, workdir=None, pipeline=offline.BUILD):
        asked.append(pipeline)
        return json.dumps(deploy_definition)

    monkeypatch.setattr(offline, "build_definition", build)
    assert cli.main(["definition", "--pipeline", "deploy", "--rebuild"]) == 0
    assert asked == [offline.DEPLOY]
    printed = json.loads(capsys.readouterr().out)
    assert [step["Name"] for step in printed["Steps"]] == [
        step["Name"] for step in deploy_definition["Steps"]
    ]


def test_definition_is_the_same_on_every_build(offline_build, definition_text):
    """Byte for byte, with both SDKs: the code travels under keys derived from its content
    (SageMaker's step cache compares the keys, never what is behind them)."""
    text = json.dumps(json.loads(offline_build.text))  # the command indents its output
    assert text == json.dumps(json.loads(definition_text))


def test_an_edited_script_moves_only_its_own_steps_code(
    settings, definition, tmp_path, monkeypatch
):
    """train.py edited: Train's code keys change (so its cache misses), Preprocess's and
    Evaluate's do not (they hit); the SDK's build is not redone, only placed again."""
    import shutil

    code_uploads = importlib.import_module(f"{settings.package_name}.code_uploads")
    offline = importlib.import_module(f"{settings.package_name}.offline")
    scripts = tmp_path / "scripts"
    shutil.copytree(code_uploads.SCRIPTS_DIR, scripts, ignore=shutil.ignore_patterns("__pycache__"))
    with open(scripts / "train.py", "a") as handle:
        handle.write("# an edit\n")
    monkeypatch.setattr(code_uploads, "SCRIPTS_DIR", scripts)
    cached = offline.cached_definition(settings, tmp_path / "workspace")
    assert cached is not None, "an edited script needs no new build of the SDK's part"
    edited = json.loads(cached.definition)

    def code_keys(pipeline_definition: dict) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for step in all_steps(pipeline_definition["Steps"]):
            text = json.dumps(step.get("Arguments", {}))
            found[step["Name"]] = sorted(set(re.findall(r"s3://[^\"\\]*/code/[^\"\\]*", text)))
        return found

    before, after = code_keys(definition), code_keys(edited)
    assert before["Train"] and set(before["Train"]).isdisjoint(after["Train"])
    for name in ("Preprocess", "Evaluate"):
        assert before[name] and before[name] == after[name], name
    assert "pending-" not in cached.definition
    # The edited file is where its key says, in the workspace the run reads.
    store = importlib.import_module("sagemaker_pipelines_local").LocalObjectStore(
        tmp_path / "workspace"
    )
    uploaded = [uri for uri in after["Train"] if uri.endswith("/")]
    if uploaded:  # SDK v3: the scripts folder; SDK v2: sourcedir.tar.gz
        assert store.uri_to_path(uploaded[0] + "train.py").read_bytes().endswith(b"# an edit\n")


def test_job_steps_are_cached_retried_and_bounded(definition, steps, settings):
    """Caching on the job steps whose outputs follow from their arguments (not Evaluate with
    the gate: the champion it scores is not in the cache key), retries of capacity,
    throttling and internal errors, a maximum run time, the warm pool as a parameter."""
    cached = {"Preprocess", "Train", "BatchTransform"} | (
        set() if settings.quality_gate else {"Evaluate"}
    )
    jobs = {"Processing", "Training", "Transform"}
    for step in all_steps(definition["Steps"]):
        name, kind = step["Name"], step["Type"]
        expected = (
            {"Enabled": True, "ExpireAfter": settings.cache_expire_after}
            if name in cached
            else None
        )
        assert step.get("CacheConfig") == expected, name
        if kind in ("Condition", "Fail"):
            continue
        policies = step.get("RetryPolicies", [])
        kinds = [set(policy["ExceptionType"]) for policy in policies]
        assert {"Step.SERVICE_FAULT", "Step.THROTTLING"} in kinds, name
        if kind in jobs:
            assert {"SageMaker.CAPACITY_ERROR", "SageMaker.JOB_INTERNAL_ERROR"} in kinds, name
        assert all(p["MaxAttempts"] == settings.retry_attempts for p in policies), name
    limits = {
        "Preprocess": settings.processing_max_runtime_seconds,
        "Evaluate": settings.processing_max_runtime_seconds,
        "Train": settings.training_max_runtime_seconds,
    }
    for name, seconds in limits.items():
        assert steps[name]["Arguments"]["StoppingCondition"] == {"MaxRuntimeInSeconds": seconds}
    resources = steps["Train"]["Arguments"]["ResourceConfig"]
    assert resources["KeepAlivePeriodInSeconds"] == {"Get": "Parameters.TrainingKeepAliveSeconds"}
    (keep_alive,) = [p for p in definition["Parameters"] if p["Name"] == "TrainingKeepAliveSeconds"]
    assert (keep_alive["Type"], keep_alive["DefaultValue"]) == ("Integer", 0)


def test_deploy_steps_are_retried_and_never_cached(deploy_definition, settings):
    for step in deploy_definition["Steps"]:
        assert "CacheConfig" not in step, step["Name"]
        kinds = [set(policy["ExceptionType"]) for policy in step.get("RetryPolicies", [])]
        if step["Type"] in ("Processing", "Model"):
            assert {"Step.SERVICE_FAULT", "Step.THROTTLING"} in kinds, step["Name"]
        if step["Type"] == "Processing":
            limit = step["Arguments"]["StoppingCondition"]["MaxRuntimeInSeconds"]
            assert limit == settings.processing_max_runtime_seconds


def test_an_unchanged_project_reads_its_definition_back_from_the_build_cache(
    offline_build, settings, monkeypatch, tmp_path
):
    """A second `definition` builds nothing and prints the first one's build; a changed
    setting is not served that build."""
    for name in [name for name in os.environ if name.startswith("SAGEMAKER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(offline_build.cache))
    offline = importlib.import_module(f"{settings.package_name}.offline")
    cli = importlib.import_module(f"{settings.package_name}.cli")

    def no_build(*args, **kwargs):
        raise AssertionError("built again, although nothing it is built from changed")

    monkeypatch.setattr(offline, "build_definition", no_build)
    again = tmp_path / "again.json"
    assert cli.main(["definition", "-o", str(again)]) == 0
    assert again.read_text() == offline_build.text

    stricter = dataclasses.replace(settings, metric_threshold=settings.metric_threshold + 0.01)
    assert offline.cached_definition(stricter) is None
    assert offline.cached_definition(settings) is not None
    # The definition records the commit and dirty flag, placed into the cached build: a new
    # commit needs no new build, and the definition says the new commit.
    provenance = importlib.import_module(f"{settings.package_name}.provenance")
    committed = provenance.SourceRevision("0" * 40, "false", "v9")
    monkeypatch.setattr(provenance, "source_revision", lambda: committed)
    placed = offline.cached_definition(settings)
    assert placed is not None and f'"GitCommit": "{"0" * 40}"' in placed.definition
    assert provenance.verify_definition(placed.definition)
