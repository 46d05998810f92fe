"""The SageMaker Pipeline, built with the SageMaker Python SDK v3.

This is the only module that knows the SageMaker SDK. `get_pipeline()` returns the same
Pipeline for the account (`upsert`) and for this machine (`definition`, `run-local`).

    Preprocess -> Train -> Evaluate -> QualityGate -> CreateModel -> BatchTransform -> RegisterModel
                                                   \\-> Fail (metric below MetricThreshold)

Workflow API: https://sagemaker.readthedocs.io/en/stable/amazon_sagemaker_model_building_pipeline.html
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .config import HYPERPARAMETERS, Settings

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"

# Container paths, passed explicitly so a script never depends on its defaults.
PROCESSING = "/opt/ml/processing"
INPUT_DATA_DIR = f"{PROCESSING}/input/data"  # the SDK puts the code in .../input/code


def prepare_environment(region: str) -> None:
    """SDK v3 needs a region before its workflow modules are imported."""
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    # ModelTrainer would call IAM to check the role; the service checks it at run time anyway.
    os.environ.setdefault("SAGEMAKER_VALIDATE_ROLE", "false")


def pipeline_session(settings: Settings, boto_session: Any = None) -> Any:
    """A PipelineSession: SDK calls record step arguments instead of starting jobs."""
    prepare_environment(settings.region)
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    boto_session = boto_session or boto3.Session(region_name=settings.region)
    return PipelineSession(boto_session=boto_session, default_bucket=settings.bucket)


def get_pipeline(settings: Settings, session: Any, role_arn: str) -> Any:
    """Build the Pipeline. Uploads the scripts to S3 through `session` when defined."""
    prepare_environment(settings.region)
    from sagemaker.core import image_uris
    from sagemaker.core.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.core.processing import ScriptProcessor
    from sagemaker.core.shapes import (
        ProcessingInput,
        ProcessingOutput,
        ProcessingS3Input,
        ProcessingS3Output,
    )
    from sagemaker.core.training.configs import Compute, InputData, OutputDataConfig, SourceCode
    from sagemaker.core.transformer import Transformer
    from sagemaker.core.workflow.conditions import (
        ConditionGreaterThanOrEqualTo,
        ConditionLessThanOrEqualTo,
    )
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import (
        ParameterFloat,
        ParameterInteger,
        ParameterString,
    )
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.model_step import ModelStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep, TrainingStep, TransformStep
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.train.model_trainer import ModelTrainer

    _inherit_sdk_log_level()
    bucket = session.default_bucket()
    prefix = settings.project_slug

    # --- Pipeline parameters: everything a run may change without a new definition.
    input_data = ParameterString(
        "InputDataUri",
        default_value=f"s3://{bucket}/{prefix}/input/{settings.sample_data.name}",
    )
    processing_instance_type = ParameterString(
        "ProcessingInstanceType", default_value=settings.processing_instance_type
    )
    processing_instance_count = ParameterInteger("ProcessingInstanceCount", default_value=1)
    training_instance_type = ParameterString(
        "TrainingInstanceType", default_value=settings.training_instance_type
    )
    transform_instance_type = ParameterString(
        "TransformInstanceType", default_value=settings.transform_instance_type
    )
    approval_status = ParameterString("ModelApprovalStatus", default_value="PendingManualApproval")
    threshold = ParameterFloat("MetricThreshold", default_value=settings.metric_threshold)
    hyperparameters = {
        name: ParameterInteger(name, default_value=settings.hyperparameters[name])
        for name in HYPERPARAMETERS
    }

    def s3_path(*parts: Any) -> Any:
        """s3://bucket/prefix/<execution id>/<parts>: every execution keeps its own outputs."""
        return Join(
            on="/",
            values=[f"s3://{bucket}", prefix, ExecutionVariables.PIPELINE_EXECUTION_ID, *parts],
        )

    # The framework version fixes the image; instance types stay run-time parameters.
    image_uri = image_uris.retrieve(
        framework="sklearn",
        region=settings.region,
        version=settings.framework_version,
        py_version="py3",
        instance_type=settings.processing_instance_type,
    )
    common = ["--target-column", settings.target_column, "--problem-type", settings.problem_type]

    # --- Preprocess: split the CSV into train / test / batch (test without the target).
    preprocessor = ScriptProcessor(
        role=role_arn,
        image_uri=image_uri,
        command=["python3"],
        instance_type=processing_instance_type,
        instance_count=processing_instance_count,
        base_job_name=f"{prefix}-preprocess",
        sagemaker_session=session,
    )
    splits = ("train", "test", "batch")
    step_preprocess = ProcessingStep(
        name="Preprocess",
        step_args=preprocessor.run(
            code=str(SCRIPTS_DIR / "preprocess.py"),
            inputs=[
                _processing_input(
                    ProcessingInput, ProcessingS3Input, "input", input_data, INPUT_DATA_DIR
                )
            ],
            outputs=[
                _processing_output(
                    ProcessingOutput, ProcessingS3Output, name, s3_path("preprocess", name)
                )
                for name in splits
            ],
            arguments=[
                "--input-dir", INPUT_DATA_DIR,
                "--output-dir", f"{PROCESSING}/output",
                *common,
                "--test-size", str(settings.test_size),
                "--random-state", str(settings.random_state),
            ],
        ),
    )  # fmt: skip

    def split_uri(name: str) -> Any:
        return step_preprocess.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    # --- Train: the sklearn Pipeline (feature handling + random forest) -> model.tar.gz.
    # Hyperparameters must be strings in the API: Join turns the integer parameters into text.
    trainer = ModelTrainer(
        training_image=image_uri,
        role=role_arn,
        base_job_name=f"{prefix}-train",
        sagemaker_session=session,
        source_code=SourceCode(source_dir=str(SCRIPTS_DIR), entry_script="train.py"),
        compute=Compute(instance_type=training_instance_type, instance_count=1),
        hyperparameters={
            "target-column": settings.target_column,
            "problem-type": settings.problem_type,
            "random-state": str(settings.random_state),
            **{
                argument: Join(on="", values=[hyperparameters[name]])
                for name, (argument, _) in HYPERPARAMETERS.items()
            },
        },
        output_data_config=OutputDataConfig(s3_output_path=s3_path("model")),
    )
    step_train = TrainingStep(
        name="Train",
        step_args=trainer.train(
            input_data_config=[InputData(channel_name="train", data_source=split_uri("train"))]
        ),
    )
    model_data = step_train.properties.ModelArtifacts.S3ModelArtifacts

    # --- Evaluate: metrics on the test split, in SageMaker's model quality format.
    evaluation_report = PropertyFile(
        name="EvaluationReport", output_name="evaluation", path="evaluation.json"
    )
    evaluator = ScriptProcessor(
        role=role_arn,
        image_uri=image_uri,
        command=["python3"],
        instance_type=processing_instance_type,
        instance_count=1,
        base_job_name=f"{prefix}-evaluate",
        sagemaker_session=session,
    )
    step_evaluate = ProcessingStep(
        name="Evaluate",
        step_args=evaluator.run(
            code=str(SCRIPTS_DIR / "evaluate.py"),
            inputs=[
                _processing_input(ProcessingInput, ProcessingS3Input, "model", model_data),
                _processing_input(ProcessingInput, ProcessingS3Input, "test", split_uri("test")),
            ],
            outputs=[
                _processing_output(
                    ProcessingOutput, ProcessingS3Output, "evaluation", s3_path("evaluation")
                )
            ],
            arguments=[
                "--model-dir", f"{PROCESSING}/model",
                "--test-dir", f"{PROCESSING}/test",
                "--output-dir", f"{PROCESSING}/evaluation",
                *common,
            ],
        ),
        property_files=[evaluation_report],
    )  # fmt: skip
    evaluation_uri = step_evaluate.properties.ProcessingOutputConfig.Outputs[
        "evaluation"
    ].S3Output.S3Uri

    # --- CreateModel, BatchTransform, RegisterModel. The serving code travels inside
    # model.tar.gz (code/inference.py), so the SDK adds no repack step outside the gate.
    serving_env = {
        "SAGEMAKER_PROGRAM": "inference.py",
        "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    }

    def model_builder() -> Any:
        return ModelBuilder(
            image_uri=image_uri,
            s3_model_data_url=model_data,
            role_arn=role_arn,
            sagemaker_session=session,
            env_vars=dict(serving_env),
            # Its default (DEBUG) would override the level the application chose.
            log_level=logging.getLogger("sagemaker").getEffectiveLevel(),
        )

    step_create_model = ModelStep(name="CreateModel", step_args=model_builder().build())
    transformer = Transformer(
        model_name=step_create_model.properties.ModelName,
        instance_count=1,
        instance_type=transform_instance_type,
        strategy="MultiRecord",
        assemble_with="Line",
        accept="text/csv",
        output_path=s3_path("transform"),
        base_transform_job_name=f"{prefix}-transform",
        sagemaker_session=session,
    )
    step_transform = TransformStep(
        name="BatchTransform",
        step_args=transformer.transform(
            data=split_uri("batch"), content_type="text/csv", split_type="Line"
        ),
    )
    model_metrics = ModelMetrics(
        model_statistics=MetricsSource(
            s3_uri=Join(on="/", values=[evaluation_uri, "evaluation.json"]),
            content_type="application/json",
        )
    )
    step_register = ModelStep(
        name="RegisterModel",
        step_args=model_builder().register(
            model_package_group_name=settings.model_package_group_name,
            content_types=["text/csv", "application/json"],
            response_types=["text/csv", "application/json"],
            inference_instances=list(settings.inference_instance_types),
            transform_instances=[settings.transform_instance_type],
            approval_status=approval_status,
            model_metrics=model_metrics,
        ),
        depends_on=[step_transform],
    )
    release_steps = [step_create_model, step_transform, step_register]

    parameters = [
        input_data,
        processing_instance_type,
        processing_instance_count,
        training_instance_type,
        transform_instance_type,
        approval_status,
        *hyperparameters.values(),
    ]
    steps: list[Any] = [step_preprocess, step_train, step_evaluate]
    if settings.quality_gate:
        parameters.append(threshold)
        observed = JsonGet(
            step_name=step_evaluate.name,
            property_file=evaluation_report,
            json_path=settings.metric_json_path,
        )
        compare = (
            ConditionLessThanOrEqualTo
            if settings.lower_is_better
            else (ConditionGreaterThanOrEqualTo)
        )
        relation = "at most" if settings.lower_is_better else "at least"
        step_fail = FailStep(
            name="Fail",
            error_message=Join(
                on=" ",
                values=[
                    f"Quality gate failed: {settings.metric} is",
                    observed,
                    f"but MetricThreshold requires {relation}",
                    threshold,
                ],
            ),
        )
        steps.append(
            ConditionStep(
                name="QualityGate",
                conditions=[compare(left=observed, right=threshold)],
                if_steps=release_steps,
                else_steps=[step_fail],
            )
        )
    else:
        steps.extend(release_steps)

    return Pipeline(
        name=settings.pipeline_name,
        parameters=parameters,
        steps=steps,
        sagemaker_session=session,
    )


def _inherit_sdk_log_level() -> None:
    """SDK v3 gives some of its loggers their own DEBUG level; let them follow "sagemaker"."""
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith("sagemaker.") and isinstance(logger, logging.Logger):
            logger.setLevel(logging.NOTSET)


def _processing_input(
    input_cls: Any, s3_cls: Any, name: str, source: Any, local_path: str | None = None
) -> Any:
    return input_cls(
        input_name=name,
        s3_input=s3_cls(
            s3_uri=source,
            local_path=local_path or f"{PROCESSING}/{name}",
            s3_data_type="S3Prefix",
            s3_input_mode="File",
        ),
    )


def _processing_output(output_cls: Any, s3_cls: Any, name: str, destination: Any) -> Any:
    local = f"{PROCESSING}/evaluation" if name == "evaluation" else f"{PROCESSING}/output/{name}"
    return output_cls(
        output_name=name,
        s3_output=s3_cls(s3_uri=destination, local_path=local, s3_upload_mode="EndOfJob"),
    )
