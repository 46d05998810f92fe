"""What each API argument of a step gets locally: one declarative table per request shape.

For every member of the request a step sends (``CreateProcessingJob`` for a Processing step,
``CreateTrainingJob``, ``CreateModel``, ``CreateTransformJob``, ``CreateModelPackage`` for
RegisterModel, ``CreateEndpointConfig``, ``CreateEndpoint``) the table says whether the
runner **handles** it (optionally only some values), **ignores** it (it makes no difference
on one machine: the run record lists it with the reason) or **refuses** it (the run stops
before any step starts, with the reason).

A member path names list items with ``[]``: ``ProcessingInputs[].S3Input.S3Uri``. The members
of a structure are checked when the table lists any of them; a handled member whose members
are not listed (``Environment``, ``HyperParameters``) is taken as it is. A member the table
does not name is refused as unknown. ``runner/tests`` walks botocore's request shapes so the
table names every member of each shape it covers, and nothing else.

:func:`markdown` is the reference page ``docs/reference/emulation.md``;
``runner/tools/emulation_doc.py`` writes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .expressions import UNRESOLVED, UnsupportedFeatureError

__all__ = [
    "STEP_SHAPES",
    "TABLES",
    "Rule",
    "check_arguments",
    "markdown",
]

HANDLED, IGNORED, REFUSED = "handled", "ignored", "refused"
IgnoreFn = Callable[[str, Any, str], None]


@dataclass(frozen=True)
class Rule:
    """What the runner does with one member of a request."""

    kind: str
    reason: str = ""
    allowed: tuple[Any, ...] = ()  # handled: only these values (empty: any value)
    ignored_values: Mapping[Any, str] = field(default_factory=dict)  # handled, but this value
    required: str = ""  # refused when missing from its parent, with this reason


def handled(
    reason: str = "",
    *,
    allowed: tuple[Any, ...] = (),
    ignored_values: Mapping[Any, str] | None = None,
    required: str = "",
) -> Rule:
    return Rule(HANDLED, reason, allowed, dict(ignored_values or {}), required)


def ignored(reason: str) -> Rule:
    return Rule(IGNORED, reason)


def refused(reason: str) -> Rule:
    return Rule(REFUSED, reason)


# The reasons several members share.
AWS_ONLY = "only affects the job on AWS (permissions, networking, encryption or tags)"
INSTANCE = "the job runs on this machine as a subprocess, not on an instance"
IMAGE = (
    "the image itself does not run: its Python library versions do (an environment built "
    "from its pins; the step's record names it), not its operating system"
)
ONE_INSTANCE = "the local runner runs one instance"
FLEXIBLE = "a choice among instance types and counts"
NO_EXPERIMENTS = "no SageMaker Experiments locally"
JOB_NAME = "a pipeline names its jobs itself"
NOT_ENCRYPTED = (
    "the local object store and the job's folders are not encrypted: on SageMaker the key "
    "encrypts them"
)
ISOLATED = (
    "the job's process gets no AWS endpoint or credentials (as an isolated container gets "
    "none): a call to AWS fails as it would on SageMaker"
)
ONE_CONTAINER = "one instance, so no traffic between containers"
S3_PREFIX = ("S3Prefix",)
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
UNCOMPRESSED = ("None",)


PROCESSING: dict[str, Rule] = {
    "ProcessingJobName": refused(JOB_NAME),
    "ProcessingInputs": handled(),
    "ProcessingInputs[].InputName": handled(),
    "ProcessingInputs[].AppManaged": ignored("no effect locally"),
    "ProcessingInputs[].S3Input": handled(required="only S3Input inputs are supported"),
    "ProcessingInputs[].S3Input.S3Uri": handled(),
    "ProcessingInputs[].S3Input.LocalPath": handled(),
    "ProcessingInputs[].S3Input.S3DataType": handled(allowed=S3_PREFIX),
    "ProcessingInputs[].S3Input.S3InputMode": handled(allowed=("File",)),
    "ProcessingInputs[].S3Input.S3DataDistributionType": handled(allowed=DISTRIBUTIONS),
    "ProcessingInputs[].S3Input.S3CompressionType": handled(allowed=UNCOMPRESSED),
    "ProcessingInputs[].DatasetDefinition": refused("Athena/Redshift dataset inputs"),
    "ProcessingOutputConfig": handled(),
    "ProcessingOutputConfig.Outputs": handled(),
    "ProcessingOutputConfig.Outputs[].OutputName": handled(),
    "ProcessingOutputConfig.Outputs[].S3Output": handled(
        required="only S3Output outputs are supported"
    ),
    "ProcessingOutputConfig.Outputs[].S3Output.S3Uri": handled(),
    "ProcessingOutputConfig.Outputs[].S3Output.LocalPath": handled(),
    "ProcessingOutputConfig.Outputs[].S3Output.S3UploadMode": handled(
        allowed=("EndOfJob", "Continuous"),
        ignored_values={
            "Continuous": "uploaded at the end of the job locally; the final content is the same"
        },
    ),
    "ProcessingOutputConfig.Outputs[].FeatureStoreOutput": refused("Feature Store outputs"),
    "ProcessingOutputConfig.Outputs[].AppManaged": ignored("no effect locally"),
    "ProcessingOutputConfig.KmsKeyId": ignored(NOT_ENCRYPTED),
    "ProcessingResources": handled(),
    "ProcessingResources.ClusterConfig": handled(),
    "ProcessingResources.ClusterConfig.InstanceCount": handled(ONE_INSTANCE, allowed=(1,)),
    "ProcessingResources.ClusterConfig.InstanceType": ignored(INSTANCE),
    "ProcessingResources.ClusterConfig.VolumeSizeInGB": ignored(INSTANCE),
    "ProcessingResources.ClusterConfig.VolumeKmsKeyId": ignored(NOT_ENCRYPTED),
    "ProcessingResources.ClusterConfig.InstancePreferences": refused(FLEXIBLE),
    "ProcessingResources.ClusterConfig.SelectedInstanceType": refused(FLEXIBLE),
    "ProcessingResources.ClusterConfig.SelectedInstanceCount": refused(FLEXIBLE),
    "StoppingCondition": handled(),
    "StoppingCondition.MaxRuntimeInSeconds": handled("the job's process is stopped after it"),
    "AppSpecification": handled(),
    "AppSpecification.ImageUri": ignored(IMAGE),
    "AppSpecification.ContainerEntrypoint": handled(
        required="the image's built-in entrypoint cannot run locally; use a script processor"
    ),
    "AppSpecification.ContainerArguments": handled(),
    "Environment": handled(),
    "NetworkConfig": handled(),
    "NetworkConfig.EnableNetworkIsolation": handled(ISOLATED),
    "NetworkConfig.EnableInterContainerTrafficEncryption": ignored(ONE_CONTAINER),
    "NetworkConfig.VpcConfig": ignored(AWS_ONLY),
    "RoleArn": ignored(AWS_ONLY),
    "Tags": ignored(AWS_ONLY),
    "ExperimentConfig": ignored(NO_EXPERIMENTS),
}

_DEBUGGER = "SageMaker Debugger is not run locally"
_PROFILER = "SageMaker Profiler is not run locally"
_S3_CHANNEL = "only S3DataSource channels are supported"
TRAINING: dict[str, Rule] = {
    "TrainingJobName": refused(JOB_NAME),
    "HyperParameters": handled(
        "passed to the script as the training toolkit (SDK v2) or driver (SDK v3) does"
    ),
    "AlgorithmSpecification": handled(),
    "AlgorithmSpecification.TrainingImage": ignored(IMAGE),
    "AlgorithmSpecification.AlgorithmName": refused("marketplace algorithms"),
    "AlgorithmSpecification.TrainingInputMode": handled(
        allowed=("File", "FastFile"), ignored_values={"FastFile": "files are copied (File)"}
    ),
    "AlgorithmSpecification.MetricDefinitions": handled("read from the job's logs"),
    "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries": ignored(
        "metrics are read from the logs locally"
    ),
    "AlgorithmSpecification.ContainerEntrypoint": handled(),
    "AlgorithmSpecification.ContainerArguments": handled(),
    "AlgorithmSpecification.TrainingImageConfig": ignored(AWS_ONLY),
    "RoleArn": ignored(AWS_ONLY),
    "InputDataConfig": handled(),
    "InputDataConfig[].ChannelName": handled(),
    "InputDataConfig[].DataSource": handled(),
    "InputDataConfig[].DataSource.S3DataSource": handled(required=_S3_CHANNEL),
    "InputDataConfig[].DataSource.S3DataSource.S3DataType": handled(allowed=S3_PREFIX),
    "InputDataConfig[].DataSource.S3DataSource.S3Uri": handled(),
    "InputDataConfig[].DataSource.S3DataSource.S3DataDistributionType": handled(
        allowed=DISTRIBUTIONS
    ),
    "InputDataConfig[].DataSource.S3DataSource.AttributeNames": refused("augmented manifests"),
    "InputDataConfig[].DataSource.S3DataSource.InstanceGroupNames": ignored(INSTANCE),
    "InputDataConfig[].DataSource.S3DataSource.ModelAccessConfig": ignored(AWS_ONLY),
    "InputDataConfig[].DataSource.S3DataSource.HubAccessConfig": ignored(AWS_ONLY),
    "InputDataConfig[].DataSource.FileSystemDataSource": refused(_S3_CHANNEL),
    "InputDataConfig[].DataSource.DatasetSource": refused(_S3_CHANNEL),
    "InputDataConfig[].ContentType": handled(),
    "InputDataConfig[].CompressionType": handled(allowed=UNCOMPRESSED),
    "InputDataConfig[].RecordWrapperType": handled(allowed=("None",)),
    "InputDataConfig[].InputMode": handled(allowed=("File", "FastFile")),
    "InputDataConfig[].ShuffleConfig": ignored("only applies to Pipe mode"),
    "OutputDataConfig": handled(),
    "OutputDataConfig.KmsKeyId": ignored(NOT_ENCRYPTED),
    "OutputDataConfig.S3OutputPath": handled(),
    "OutputDataConfig.CompressionType": handled(allowed=("GZIP",)),
    "ResourceConfig": handled(),
    "ResourceConfig.InstanceType": ignored(INSTANCE),
    "ResourceConfig.InstanceCount": handled(ONE_INSTANCE, allowed=(1,)),
    "ResourceConfig.VolumeSizeInGB": ignored(INSTANCE),
    "ResourceConfig.VolumeKmsKeyId": ignored(NOT_ENCRYPTED),
    "ResourceConfig.KeepAlivePeriodInSeconds": ignored(INSTANCE),
    "ResourceConfig.InstanceGroups": refused("heterogeneous clusters"),
    "ResourceConfig.TrainingPlanArn": ignored(INSTANCE),
    "ResourceConfig.InstancePlacementConfig": refused("instance placement across clusters"),
    "ResourceConfig.InstancePreferences": refused(FLEXIBLE),
    "ResourceConfig.SelectedInstanceType": refused(FLEXIBLE),
    "ResourceConfig.SelectedInstanceCount": refused(FLEXIBLE),
    "VpcConfig": ignored(AWS_ONLY),
    "StoppingCondition": handled(),
    "StoppingCondition.MaxRuntimeInSeconds": handled("the job's process is stopped after it"),
    "StoppingCondition.MaxWaitTimeInSeconds": ignored("spot capacity waits do not exist locally"),
    "StoppingCondition.MaxPendingTimeInSeconds": ignored("no instance provisioning locally"),
    "Tags": ignored(AWS_ONLY),
    "EnableNetworkIsolation": handled(ISOLATED),
    "EnableInterContainerTrafficEncryption": ignored(ONE_CONTAINER),
    "EnableManagedSpotTraining": ignored("billing option of the instance"),
    "CheckpointConfig": ignored("checkpoints are not synced to S3 locally"),
    "DebugHookConfig": ignored(_DEBUGGER),
    "DebugRuleConfigurations": ignored(_DEBUGGER),
    "TensorBoardOutputConfig": ignored("TensorBoard output is not uploaded locally"),
    "ExperimentConfig": ignored(NO_EXPERIMENTS),
    "ProfilerConfig": ignored(_PROFILER),
    "ProfilerRuleConfigurations": ignored(_PROFILER),
    "Environment": handled(),
    "RetryStrategy": ignored("no automatic retries locally"),
    "RemoteDebugConfig": ignored("no remote debugging locally"),
    "InfraCheckConfig": ignored("no instance health checks locally"),
    "SessionChainingConfig": ignored(AWS_ONLY),
    "ServerlessJobConfig": refused("serverless training jobs"),
    "MlflowConfig": refused("MLflow tracking of the training job"),
    "ModelPackageConfig": refused("a model package registered by the training job itself"),
}

_CONTAINER: dict[str, Rule] = {
    "Image": handled("chooses the Python environment of the Transform step that uses it"),
    "ModelDataUrl": handled("must exist in the local object store"),
    "Environment": handled(),
    "Mode": handled(allowed=("SingleModel",)),
    "ContainerHostname": ignored("single container only"),
    "ImageConfig": ignored(AWS_ONLY),
    "InferenceSpecificationName": ignored("no effect locally"),
    "MultiModelConfig": ignored("no effect in single-model mode"),
    "ModelPackageName": handled(
        "the version's container (image, model data, environment) from the local registry"
    ),
    "ModelDataSource": refused("uncompressed model data"),
    "ContainerMetricsConfig": refused("container metrics publishing"),
    "AdditionalModelDataSources": refused("additional model data sources"),
}
MODEL: dict[str, Rule] = {
    "ModelName": handled(),
    "PrimaryContainer": handled(),
    **{f"PrimaryContainer.{member}": rule for member, rule in _CONTAINER.items()},
    "Containers": handled("one container (several make an inference pipeline: refused)"),
    **{f"Containers[].{member}": rule for member, rule in _CONTAINER.items()},
    "InferenceExecutionConfig": ignored("single container only"),
    "ExecutionRoleArn": ignored(AWS_ONLY),
    "Tags": ignored(AWS_ONLY),
    "VpcConfig": ignored(AWS_ONLY),
    "EnableNetworkIsolation": handled(
        "the Transform steps and endpoints that serve the model get no AWS endpoint, and the "
        "image's start-up `pip install` of the inference code must work with no package "
        "index (no requirements.txt, no code from S3, PIP_NO_BUILD_ISOLATION=false), or the "
        "model fails to start as it would on SageMaker"
    ),
}

_NO_CAPTURE = "no data capture locally"
TRANSFORM: dict[str, Rule] = {
    "TransformJobName": refused(JOB_NAME),
    "ModelName": handled("a Model step of the same run must have created it"),
    "MaxConcurrentTransforms": ignored("requests are sent one at a time locally"),
    "ModelClientConfig": ignored("no invocation timeouts or retries locally"),
    "MaxPayloadInMB": handled(),
    "BatchStrategy": handled(allowed=("MultiRecord", "SingleRecord")),
    "Environment": handled(),
    "TransformInput": handled(),
    "TransformInput.DataSource": handled(),
    "TransformInput.DataSource.S3DataSource": handled(required="only S3DataSource is supported"),
    "TransformInput.DataSource.S3DataSource.S3DataType": handled(allowed=S3_PREFIX),
    "TransformInput.DataSource.S3DataSource.S3Uri": handled(),
    "TransformInput.ContentType": handled(),
    "TransformInput.CompressionType": handled(allowed=UNCOMPRESSED),
    "TransformInput.SplitType": handled(allowed=("None", "Line")),
    "TransformOutput": handled(),
    "TransformOutput.S3OutputPath": handled(),
    "TransformOutput.Accept": handled(),
    "TransformOutput.AssembleWith": handled(allowed=("None", "Line")),
    "TransformOutput.KmsKeyId": ignored(NOT_ENCRYPTED),
    "DataCaptureConfig": ignored(_NO_CAPTURE),
    "TransformResources": ignored(INSTANCE + "; its VolumeKmsKeyId: " + NOT_ENCRYPTED),
    "DataProcessing": handled(),
    "DataProcessing.InputFilter": handled(allowed=("$",)),
    "DataProcessing.OutputFilter": handled(allowed=("$",)),
    "DataProcessing.JoinSource": handled(
        "joining is implemented for CSV lines only", allowed=("None", "Input")
    ),
    "Tags": ignored(AWS_ONLY),
    "ExperimentConfig": ignored(NO_EXPERIMENTS),
}

_STORED = "stored in the model package's record in the local registry"
MODEL_PACKAGE: dict[str, Rule] = {
    "ModelPackageGroupName": handled(required="a model package group is required"),
    "ModelPackageDescription": handled(_STORED),
    "InferenceSpecification": handled(
        _STORED + "; each container's ModelDataUrl must exist in the local object store"
    ),
    "ModelApprovalStatus": handled("Approved, Rejected or PendingManualApproval"),
    "ModelMetrics": handled(_STORED + ", each metrics file's content with it"),
    "DriftCheckBaselines": handled(_STORED + ", each file's content with it"),
    "CustomerMetadataProperties": handled(_STORED),
    "MetadataProperties": handled(_STORED),
    "Domain": handled(_STORED),
    "Task": handled(_STORED),
    "SamplePayloadUrl": handled(_STORED),
    "SkipModelValidation": handled(_STORED),
    "AdditionalInferenceSpecifications": handled(_STORED),
    "SourceUri": handled(_STORED),
    "ModelCard": handled(_STORED),
    "ModelLifeCycle": handled(_STORED),
    "CertifyForMarketplace": handled(_STORED),
    "ClientToken": handled(_STORED),
    "Tags": ignored(AWS_ONLY),
    "SecurityConfig": ignored(AWS_ONLY),
    "ModelPackageName": refused("unversioned model packages"),
    "ValidationSpecification": refused("model package validation jobs"),
    "SourceAlgorithmSpecification": refused("marketplace algorithms"),
    "ModelPackageRegistrationType": refused("unversioned model packages"),
    "ManagedStorageType": refused("model data managed by SageMaker"),
}

_ONE_SERVER = "an endpoint is one model server process on this machine"
_VARIANT: dict[str, Rule] = {
    "VariantName": handled(required="a production variant needs a name"),
    "ModelName": handled("a Model step of this workspace must have created it"),
    "InitialInstanceCount": ignored(_ONE_SERVER),
    "InstanceType": ignored(INSTANCE),
    "InstancePools": ignored(_ONE_SERVER),
    "VariantInstanceProvisionTimeoutInSeconds": ignored(INSTANCE),
    "InitialVariantWeight": ignored("one variant takes all the traffic"),
    "AcceleratorType": ignored(INSTANCE),
    "CoreDumpConfig": ignored(AWS_ONLY),
    "ServerlessConfig": ignored("served the same way: one process on this machine"),
    "VolumeSizeInGB": ignored(INSTANCE),
    "ModelDataDownloadTimeoutInSeconds": ignored("the model data is a local file"),
    "ContainerStartupHealthCheckTimeoutInSeconds": ignored(
        "the model server gets 120 s to answer /ping"
    ),
    "EnableSSMAccess": ignored(AWS_ONLY),
    "ManagedInstanceScaling": ignored(_ONE_SERVER),
    "RoutingConfig": ignored(_ONE_SERVER),
    "InferenceAmiVersion": ignored(INSTANCE),
    "CapacityReservationConfig": ignored(INSTANCE),
    "AcceleratorPartitionLayouts": ignored(INSTANCE),
}
ENDPOINT_CONFIG: dict[str, Rule] = {
    "EndpointConfigName": handled(required="the endpoint config needs a name"),
    "ProductionVariants": handled("exactly one variant (several split traffic: refused)"),
    **{f"ProductionVariants[].{member}": rule for member, rule in _VARIANT.items()},
    "DataCaptureConfig": ignored(_NO_CAPTURE),
    "Tags": ignored(AWS_ONLY),
    "KmsKeyId": ignored(NOT_ENCRYPTED),
    "AsyncInferenceConfig": refused("asynchronous inference"),
    "ExplainerConfig": refused("SageMaker Clarify explainers"),
    "ShadowProductionVariants": refused("shadow variants"),
    "ExecutionRoleArn": ignored(AWS_ONLY),
    "VpcConfig": ignored(AWS_ONLY),
    "EnableNetworkIsolation": ignored(AWS_ONLY),
    "MetricsConfig": ignored("no CloudWatch metrics locally"),
    "CrossRegionTrafficConfig": ignored(AWS_ONLY),
}
ENDPOINT: dict[str, Rule] = {
    "EndpointName": handled(required="the endpoint needs a name"),
    "EndpointConfigName": handled("an EndpointConfig step of this workspace must have created it"),
    "DeploymentConfig": ignored(
        "an update replaces the model server at once; a config that fails to start leaves "
        "the previous one serving, as SageMaker does"
    ),
    "Tags": ignored(AWS_ONLY),
}

# The arguments of the two steps that are no API request: they are the pipeline's own.
FAIL: dict[str, Rule] = {"ErrorMessage": handled()}
CONDITION: dict[str, Rule] = {
    "Conditions": handled(),
    "IfSteps": handled(),
    "ElseSteps": handled(),
}

# Request shape (the SageMaker API operation) -> its table.
TABLES: dict[str, dict[str, Rule]] = {
    "CreateProcessingJob": PROCESSING,
    "CreateTrainingJob": TRAINING,
    "CreateModel": MODEL,
    "CreateTransformJob": TRANSFORM,
    "CreateModelPackage": MODEL_PACKAGE,
    "CreateEndpointConfig": ENDPOINT_CONFIG,
    "CreateEndpoint": ENDPOINT,
}
# Step type -> the request its arguments are.
STEP_SHAPES = {
    "Processing": "CreateProcessingJob",
    "Training": "CreateTrainingJob",
    "Model": "CreateModel",
    "Transform": "CreateTransformJob",
    "RegisterModel": "CreateModelPackage",
    "EndpointConfig": "CreateEndpointConfig",
    "Endpoint": "CreateEndpoint",
}


# ---------------------------------------------------------------------------- checking
def _known(value: Any) -> bool:
    return value is not None and value is not UNRESOLVED


def _empty(value: Any) -> bool:
    return value in (None, "", [], {})


def _is_allowed(value: Any, allowed: tuple[Any, ...]) -> bool:
    if value in allowed:
        return True
    if isinstance(value, bool) or not all(isinstance(a, int) for a in allowed):
        return False
    try:  # a count given as a string or a float: "1", 1.0
        return int(value) in allowed and float(value) == int(value)
    except (TypeError, ValueError):
        return True  # not a number: the job's own validation says so


def _children(table: Mapping[str, Rule], path: str) -> bool:
    prefix = f"{path}." if path else ""
    return any(key.startswith(prefix) and key != path for key in table)


def check_arguments(table: Mapping[str, Rule], step: str, args: Any, ignore: IgnoreFn) -> None:
    """Apply ``table`` to a step's arguments: record what is ignored, refuse what is refused.

    Values not known yet (:data:`~.expressions.UNRESOLVED`, before the run) pass; the check
    runs again with every value resolved.
    """
    _check_object(table, step, args, "", "", ignore)


def _check_object(
    table: Mapping[str, Rule],
    step: str,
    obj: Any,
    path: str,
    shown: str,
    ignore: IgnoreFn,
) -> None:
    if not _known(obj):
        return
    if not isinstance(obj, Mapping):
        raise UnsupportedFeatureError(step, shown or "Arguments", obj, "expected an object")
    for key, value in obj.items():
        member = f"{path}.{key}" if path else str(key)
        setting = f"{shown}.{key}" if shown else str(key)
        rule = table.get(member)
        if rule is None:
            raise UnsupportedFeatureError(step, setting, value, "unknown or unsupported setting")
        _check_member(table, rule, step, value, member, setting, ignore)
    for key, rule in _members(table, path):
        if rule.required and not obj.get(key):
            raise UnsupportedFeatureError(
                step, f"{shown}.{key}" if shown else key, obj.get(key), rule.required
            )


def _members(table: Mapping[str, Rule], path: str) -> list[tuple[str, Rule]]:
    prefix = f"{path}." if path else ""
    return [
        (key[len(prefix) :], rule)
        for key, rule in table.items()
        if key.startswith(prefix) and "." not in key[len(prefix) :]
    ]


def _check_member(
    table: Mapping[str, Rule],
    rule: Rule,
    step: str,
    value: Any,
    member: str,
    setting: str,
    ignore: IgnoreFn,
) -> None:
    if rule.kind == IGNORED:
        if not _empty(value):
            ignore(setting, value, rule.reason)
        return
    if rule.kind == REFUSED:
        if not _empty(value):
            raise UnsupportedFeatureError(step, setting, value, rule.reason)
        return
    if rule.allowed and _known(value) and not _is_allowed(value, rule.allowed):
        supported = "supported: " + ", ".join(str(a) for a in rule.allowed)
        detail = f"{supported}; {rule.reason}" if rule.reason else supported
        raise UnsupportedFeatureError(step, setting, value, detail)
    if _known(value) and not isinstance(value, (Mapping, list)) and value in rule.ignored_values:
        ignore(setting, value, rule.ignored_values[value])
    if isinstance(value, list) and _children(table, f"{member}[]"):
        for i, item in enumerate(value):
            _check_object(table, step, item, f"{member}[]", f"{setting}[{i}]", ignore)
    elif isinstance(value, Mapping) and _children(table, member):
        _check_object(table, step, value, member, setting, ignore)


# ---------------------------------------------------------------------------- the docs page
_WORDS = {HANDLED: "handled", IGNORED: "ignored", REFUSED: "**refused**"}
_STEP_OF = {shape: step for step, shape in STEP_SHAPES.items()}


def _describe(rule: Rule) -> str:
    parts = []
    if rule.reason:
        parts.append(rule.reason)
    if rule.allowed:
        parts.append("only " + ", ".join(f"`{a}`" for a in rule.allowed))
    for value, why in rule.ignored_values.items():
        parts.append(f"`{value}` is ignored: {why}")
    if rule.required:
        parts.append(f"refused when missing: {rule.required}")
    return "; ".join(parts).replace("|", "\\|")


def markdown() -> str:
    """The reference page ``docs/reference/emulation.md``, generated from the tables."""
    lines = [
        "# What the local runner does with each API argument",
        "",
        "<!-- Generated from runner/src/sagemaker_pipelines_local/emulation.py by",
        "     runner/tools/emulation_doc.py. Do not edit. -->",
        "",
        "Each step of a pipeline definition carries the request SageMaker's API would get:",
        "a Processing step a `CreateProcessingJob` request, and so on. For every member of",
        "those requests this page says what the local runner does with it:",
        "",
        "- **handled**: emulated (with `only` values, any other value is refused);",
        "- **ignored**: accepted, makes no difference on one machine, and listed under",
        "  `ignored` in the run record with the reason shown here;",
        "- **refused**: the run stops before any step starts and says which step, setting",
        "  and value, and why.",
        "",
        "A member not on this page (a setting newer than the runner, a typo) is refused. The",
        "members of a handled member that has no rows of its own (`Environment`,",
        "`HyperParameters`) are taken as they are. Rules across members (a Transform's",
        "`JoinSource`, distributed-training hyperparameters, one model container) are in",
        "the step's executor. Why the runner works this way:",
        "[What the local runner emulates](../explanation/local-runner.md).",
    ]
    for shape, table in TABLES.items():
        lines += [
            "",
            f"## {_STEP_OF[shape]} steps: `{shape}`",
            "",
            "| Member | Locally | Why, and the values the runner takes |",
            "|---|---|---|",
        ]
        for path, rule in table.items():
            lines.append(f"| `{path}` | {_WORDS[rule.kind]} | {_describe(rule)} |")
    lines.append("")
    return "\n".join(lines)
