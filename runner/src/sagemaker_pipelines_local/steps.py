"""The pipeline layer's step executors: one per step type, each a few lines over the jobs.

Every executor has two halves:

* ``check(...)`` validates the step's arguments against the step type's table in
  :mod:`.emulation` (plus the few rules across members a table cannot say). The runner calls
  it before anything runs with every value it can already know (parameters, literals; step
  properties are :data:`~.expressions.UNRESOLVED`) and again at run time with everything
  resolved. It refuses unsupported settings with :class:`~.expressions.UnsupportedFeatureError`
  and records the settings it ignores because they do not change results locally.
* ``run(job)`` creates the step's local job through :class:`~.jobs.LocalJobs` with the
  resolved arguments as the request, and returns the job's ``Describe*`` output as the
  step's properties.
"""

from __future__ import annotations

import json
import shutil
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._script_driver import safe_deserialize
from .emulation import (
    CONDITION,
    ENDPOINT,
    ENDPOINT_CONFIG,
    FAIL,
    MODEL,
    MODEL_PACKAGE,
    PROCESSING,
    TRAINING,
    TRANSFORM,
    check_arguments,
)
from .expressions import (
    UNRESOLVED,
    PropertyFileRef,
    StepFailure,
    UnsupportedFeatureError,
    check_condition_types,
    evaluate_conditions,
    to_text,
)
from .jobs import LocalJobs, StepJob, make_job_name
from .registry import APPROVAL_STATUSES
from .store import LocalObjectStore

__all__ = ["EXECUTORS", "SUPPORTED_STEP_TYPES", "FailStepError", "StepOutcome"]

IgnoreFn = Callable[[str, Any, str], None]


class FailStepError(StepFailure):
    """Raised by a Fail step; the message is the step's resolved ErrorMessage."""


@dataclass
class StepOutcome:
    properties: dict[str, Any]
    property_files: dict[str, PropertyFileRef] = field(default_factory=dict)
    outcome: bool | None = None


def _known(value: Any) -> bool:
    return value is not None and value is not UNRESOLVED


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


_JOB_NAME_KEYS = {
    "processing_job": "ProcessingJobName",
    "training_job": "TrainingJobName",
    "transform_job": "TransformJobName",
}


def _create_and_describe(job: StepJob, kind: str) -> dict[str, Any]:
    """Create the step's job (``kind``: processing_job...) under a pipeline-style name from
    the resolved arguments, and return its Describe* output: the step's properties."""
    jobs, name = LocalJobs(job), make_job_name(job.execution.execution_id, job.name)
    getattr(jobs, f"create_{kind}")(**{_JOB_NAME_KEYS[kind]: name, **job.args})
    return dict(getattr(jobs, f"describe_{kind}")(name))


# ============================================================================ Processing
class ProcessingExecutor:
    type_name = "Processing"

    def check(self, step: str, args: Mapping[str, Any], ignore: IgnoreFn) -> None:
        check_arguments(PROCESSING, step, args, ignore)

    def run(self, job: StepJob) -> StepOutcome:
        described = _create_and_describe(job, "processing_job")
        return StepOutcome(described, self._property_files(job, described))

    @staticmethod
    def _property_files(job: StepJob, described: Mapping[str, Any]) -> dict[str, PropertyFileRef]:
        """The step's PropertyFiles, read from the outputs the job uploaded."""
        found: dict[str, PropertyFileRef] = {}
        outputs = (described.get("ProcessingOutputConfig") or {}).get("Outputs") or []
        by_name = {
            out.get("OutputName") or str(i): to_text(out["S3Output"].get("S3Uri"))
            for i, out in enumerate(outputs)
        }
        for pf in job.definition.get("PropertyFiles") or []:
            name = pf.get("PropertyFileName")
            output = pf.get("OutputName")
            rel = to_text(pf.get("FilePath") or "")
            if output not in by_name:
                raise StepFailure(
                    f"Step '{job.name}': property file {name} reads output {output!r}, "
                    f"but the step has no such output (outputs: {', '.join(by_name) or 'none'})"
                )
            source = LocalObjectStore.join(by_name[output], rel)
            path = job.store.uri_to_path(source)
            if not path.is_file():
                raise StepFailure(
                    f"Step '{job.name}': property file {name} was not written: the script did "
                    f"not create {rel!r} in output {output!r} ({source})"
                )
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise StepFailure(
                    f"Step '{job.name}': property file {name} ({source}) is not valid JSON: {exc}"
                ) from exc
            found[name] = PropertyFileRef(
                step=job.name, name=name, source=source, data=data, local_path=str(path)
            )
        return found


# ============================================================================ Training
class TrainingExecutor:
    type_name = "Training"

    def check(self, step: str, args: Mapping[str, Any], ignore: IgnoreFn) -> None:
        check_arguments(TRAINING, step, args, ignore)
        hps = args.get("HyperParameters")
        if isinstance(hps, Mapping):
            for key, value in hps.items():
                if key.endswith("_enabled") and key.startswith("sagemaker_"):
                    decoded = safe_deserialize(value) if _known(value) else None
                    if decoded not in (None, False, "false", "False", 0):
                        raise UnsupportedFeatureError(
                            step, f"HyperParameters.{key}", value, "distributed training"
                        )

    def run(self, job: StepJob) -> StepOutcome:
        return StepOutcome(_create_and_describe(job, "training_job"))


# ============================================================================ Model
class ModelExecutor:
    type_name = "Model"

    def check(self, step: str, args: Mapping[str, Any], ignore: IgnoreFn) -> None:
        check_arguments(MODEL, step, args, ignore)
        if _known(args.get("Containers")) and len(_items(args.get("Containers"))) > 1:
            raise UnsupportedFeatureError(
                step, "Containers", f"{len(args['Containers'])} containers", "inference pipelines"
            )
        if not args.get("PrimaryContainer") and not args.get("Containers"):
            raise StepFailure(f"Step '{step}': the model needs a PrimaryContainer")

    def run(self, job: StepJob) -> StepOutcome:
        name = to_text(job.args.get("ModelName") or "") or make_job_name(
            job.execution.execution_id, job.name
        )
        jobs = LocalJobs(job)
        jobs.create_model(**{**job.args, "ModelName": name})
        model = jobs.describe_model(name)
        keep = ("ModelName", "ModelArn", "PrimaryContainer", "CreationTime")
        return StepOutcome({**job.args, **{key: model[key] for key in keep}})


# ============================================================================ Transform
class TransformExecutor:
    type_name = "Transform"

    def check(self, step: str, args: Mapping[str, Any], ignore: IgnoreFn) -> None:
        check_arguments(TRANSFORM, step, args, ignore)
        tin, tout = args.get("TransformInput"), args.get("TransformOutput")
        dp = args.get("DataProcessing")
        # Rules across members, beyond the table: joining the input is implemented for CSV lines.
        if isinstance(dp, Mapping) and dp.get("JoinSource") == "Input" and isinstance(tin, Mapping):
            accept = tout.get("Accept") if isinstance(tout, Mapping) else None
            for setting, value in (
                ("TransformInput.ContentType", tin.get("ContentType")),
                ("TransformOutput.Accept", accept),
            ):
                if _known(value) and to_text(value).split(";")[0].strip() != "text/csv":
                    raise UnsupportedFeatureError(
                        step,
                        "DataProcessing.JoinSource",
                        "Input",
                        f"joining is only implemented for CSV ({setting} is {value})",
                    )
            if tin.get("SplitType") not in ("Line", UNRESOLVED):
                raise UnsupportedFeatureError(
                    step,
                    "DataProcessing.JoinSource",
                    "Input",
                    "joining is only implemented with TransformInput.SplitType Line",
                )
        if _known(args.get("MaxPayloadInMB")):
            try:
                float(args["MaxPayloadInMB"])
            except (TypeError, ValueError):
                raise StepFailure(
                    f"Step '{step}': MaxPayloadInMB must be a number: {args['MaxPayloadInMB']!r}"
                ) from None

    def run(self, job: StepJob) -> StepOutcome:
        return StepOutcome(_create_and_describe(job, "transform_job"))


# ============================================================================ RegisterModel
# CreateModelPackage's limits on CustomerMetadataProperties (botocore's request shape):
# SageMaker refuses a request beyond them, so a local run refuses it too.
_METADATA_ENTRIES, _METADATA_KEY_CHARS, _METADATA_VALUE_CHARS = 50, 128, 256
_METADATA_PUNCTUATION = frozenset("_.:/=+-@")


def _metadata_text_ok(text: Any, limit: int) -> bool:
    """1..limit characters of letters, digits, spaces and _.:/=+-@ (\\p{L}\\p{N}\\p{Z})."""
    return (
        isinstance(text, str)
        and 1 <= len(text) <= limit
        and all(
            c.isalnum() or c in _METADATA_PUNCTUATION or unicodedata.category(c).startswith("Z")
            for c in text
        )
    )


def _check_customer_metadata(step: str, metadata: Any) -> None:
    if not _known(metadata) or not isinstance(metadata, Mapping):
        return
    rule = (
        "SageMaker's CreateModelPackage accepts at most 50 entries, keys of 1 to 128 and values "
        "of 1 to 256 letters, digits, spaces and _.:/=+-@ (no commas, quotes or brackets)"
    )
    if len(metadata) > _METADATA_ENTRIES:
        raise StepFailure(
            f"Step '{step}': CustomerMetadataProperties has {len(metadata)} entries; {rule}. "
            "Record fewer values (a long list belongs in a file whose S3 URI you record)."
        )
    for key, value in metadata.items():
        if not _metadata_text_ok(key, _METADATA_KEY_CHARS):
            raise StepFailure(
                f"Step '{step}': CustomerMetadataProperties key {key!r} is refused: {rule}."
            )
        if _known(value) and not _metadata_text_ok(value, _METADATA_VALUE_CHARS):
            shown = value if len(str(value)) <= 80 else f"{str(value)[:77]}..."
            raise StepFailure(
                f"Step '{step}': CustomerMetadataProperties {key} = {shown!r} is refused: "
                f"{rule}. Record a shorter or plainer value (a digest, a count, an S3 URI)."
            )


class RegisterModelExecutor:
    type_name = "RegisterModel"

    def check(self, step: str, args: Mapping[str, Any], ignore: IgnoreFn) -> None:
        check_arguments(MODEL_PACKAGE, step, args, ignore)
        _check_customer_metadata(step, args.get("CustomerMetadataProperties"))
        status = args.get("ModelApprovalStatus")
        if _known(status) and status not in APPROVAL_STATUSES:
            raise StepFailure(
                f"Step '{step}': ModelApprovalStatus {status!r} is not one of "
                f"{', '.join(APPROVAL_STATUSES)}"
            )

    def run(self, job: StepJob) -> StepOutcome:
        jobs = LocalJobs(job)
        arn = jobs.create_model_package(**job.args)["ModelPackageArn"]
        package = jobs.describe_model_package(arn)
        keep = (
            "ModelPackageGroupName",
            "ModelPackageArn",
            "ModelPackageVersion",
            "ModelApprovalStatus",
            "ModelPackageStatus",
            "CreationTime",
        )
        return StepOutcome({**job.args, **{key: package[key] for key in keep}})


# ============================================================================ Endpoints
class EndpointConfigExecutor:
    type_name = "EndpointConfig"

    def check(self, step: str, args: Mapping[str, Any], ignore: IgnoreFn) -> None:
        check_arguments(ENDPOINT_CONFIG, step, args, ignore)
        variants = args.get("ProductionVariants")
        if _known(variants) and len(_items(variants)) != 1:
            raise UnsupportedFeatureError(
                step,
                "ProductionVariants",
                f"{len(_items(variants))} variants",
                "exactly one production variant (several split the traffic)",
            )

    def run(self, job: StepJob) -> StepOutcome:
        jobs = LocalJobs(job)
        jobs.create_endpoint_config(**job.args)
        return StepOutcome(jobs.describe_endpoint_config(to_text(job.args["EndpointConfigName"])))


class EndpointExecutor:
    type_name = "Endpoint"

    def check(self, step: str, args: Mapping[str, Any], ignore: IgnoreFn) -> None:
        check_arguments(ENDPOINT, step, args, ignore)

    def run(self, job: StepJob) -> StepOutcome:
        jobs = LocalJobs(job)
        jobs.create_endpoint(**job.args)
        return StepOutcome(jobs.describe_endpoint(to_text(job.args["EndpointName"])))


# ============================================================================ Fail / Condition
class FailExecutor:
    type_name = "Fail"

    def check(self, step: str, args: Mapping[str, Any], ignore: IgnoreFn) -> None:
        check_arguments(FAIL, step, args, ignore)

    def run(self, job: StepJob) -> StepOutcome:
        message = to_text(job.args.get("ErrorMessage") or "")
        raise FailStepError(message)


class ConditionExecutor:
    type_name = "Condition"

    def check(self, step: str, args: Mapping[str, Any], ignore: IgnoreFn) -> None:
        check_arguments(CONDITION, step, args, ignore)
        check_condition_types(args.get("Conditions"), step)

    def run(self, job: StepJob) -> StepOutcome:
        outcome = evaluate_conditions(job.args.get("Conditions") or [])
        return StepOutcome(properties={"Outcome": "True" if outcome else "False"}, outcome=outcome)


EXECUTORS: dict[str, Any] = {
    "Processing": ProcessingExecutor(),
    "Training": TrainingExecutor(),
    "Model": ModelExecutor(),
    "Transform": TransformExecutor(),
    "RegisterModel": RegisterModelExecutor(),
    "EndpointConfig": EndpointConfigExecutor(),
    "Endpoint": EndpointExecutor(),
    "Fail": FailExecutor(),
    "Condition": ConditionExecutor(),
}
SUPPORTED_STEP_TYPES = tuple(EXECUTORS)


def cleanup_work_dir(job: StepJob) -> None:
    shutil.rmtree(job.work_dir, ignore_errors=True)
