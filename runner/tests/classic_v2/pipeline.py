"""A pipeline someone else wrote: SDK v2's classic API, in the style of AWS's abalone example.

Nothing here knows the local runner. The steps: a processor (SKLearnProcessor), an estimator
(SKLearn), an evaluation with a ScriptProcessor and a property file, a condition, a model
with a source dir (ModelStep), a transformer (TransformStep) and a registration
(RegisterModel), else a FailStep.

The scripts take every path as an argument: scripts that read `/opt/ml/processing/...` as
their own defaults are not supported yet.
"""

from __future__ import annotations

from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "scripts"
FRAMEWORK = "1.2-1"
BASE = "/opt/ml/processing"


def get_pipeline(session, role: str, region: str):
    from sagemaker import image_uris
    from sagemaker.inputs import TrainingInput, TransformInput
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor
    from sagemaker.sklearn.estimator import SKLearn
    from sagemaker.sklearn.model import SKLearnModel
    from sagemaker.sklearn.processing import SKLearnProcessor
    from sagemaker.transformer import Transformer
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionLessThanOrEqualTo
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.step_collections import RegisterModel
    from sagemaker.workflow.steps import ProcessingStep, TrainingStep, TransformStep

    bucket = session.default_bucket()
    input_data = ParameterString("InputDataUrl", default_value=f"s3://{bucket}/abalone/data.csv")
    approval_status = ParameterString("ModelApprovalStatus", default_value="PendingManualApproval")
    mse_threshold = ParameterFloat("MseThreshold", default_value=30.0)
    image = image_uris.retrieve("sklearn", region, version=FRAMEWORK, py_version="py3")

    processor = SKLearnProcessor(
        framework_version=FRAMEWORK,
        role=role,
        instance_type="ml.m5.xlarge",
        instance_count=1,
        base_job_name="abalone-preprocess",
        sagemaker_session=session,
    )
    step_process = ProcessingStep(
        name="PreprocessAbaloneData",
        step_args=processor.run(
            code=str(SCRIPTS / "preprocess.py"),
            inputs=[ProcessingInput(source=input_data, destination=f"{BASE}/input")],
            outputs=[
                ProcessingOutput(output_name=name, source=f"{BASE}/{name}")
                for name in ("train", "test", "batch")
            ],
            arguments=["--input-dir", f"{BASE}/input", "--output-dir", BASE],
        ),
    )
    outputs = step_process.properties.ProcessingOutputConfig.Outputs

    estimator = SKLearn(
        entry_point="train.py",
        source_dir=str(SCRIPTS),
        framework_version=FRAMEWORK,
        py_version="py3",
        role=role,
        instance_type="ml.m5.xlarge",
        instance_count=1,
        output_path=f"s3://{bucket}/abalone/models",
        hyperparameters={"smoothing": 2},
        sagemaker_session=session,
    )
    step_train = TrainingStep(
        name="TrainAbaloneModel",
        step_args=estimator.fit(
            {"train": TrainingInput(outputs["train"].S3Output.S3Uri, content_type="text/csv")}
        ),
    )
    model_data = step_train.properties.ModelArtifacts.S3ModelArtifacts

    evaluation = PropertyFile(
        name="EvaluationReport", output_name="evaluation", path="evaluation.json"
    )
    evaluator = ScriptProcessor(
        image_uri=image,
        command=["python3"],
        instance_type="ml.m5.xlarge",
        instance_count=1,
        base_job_name="abalone-eval",
        role=role,
        sagemaker_session=session,
    )
    step_eval = ProcessingStep(
        name="EvaluateAbaloneModel",
        step_args=evaluator.run(
            code=str(SCRIPTS / "evaluate.py"),
            inputs=[
                ProcessingInput(source=model_data, destination=f"{BASE}/model"),
                ProcessingInput(source=outputs["test"].S3Output.S3Uri, destination=f"{BASE}/test"),
            ],
            outputs=[ProcessingOutput(output_name="evaluation", source=f"{BASE}/evaluation")],
            arguments=[
                "--model-dir",
                f"{BASE}/model",
                "--test-dir",
                f"{BASE}/test",
                "--output-dir",
                f"{BASE}/evaluation",
            ],
        ),
        property_files=[evaluation],
    )
    report_uri = Join(
        on="/",
        values=[
            step_eval.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri,
            "evaluation.json",
        ],
    )
    metrics = ModelMetrics(
        model_statistics=MetricsSource(s3_uri=report_uri, content_type="application/json")
    )

    model = SKLearnModel(
        model_data=model_data,
        entry_point="inference.py",
        source_dir=str(SCRIPTS),
        framework_version=FRAMEWORK,
        py_version="py3",
        role=role,
        sagemaker_session=session,
    )
    step_create = ModelStep(
        name="CreateAbaloneModel", step_args=model.create(instance_type="ml.m5.large")
    )
    transformer = Transformer(
        model_name=step_create.properties.ModelName,
        instance_type="ml.m5.xlarge",
        instance_count=1,
        accept="text/csv",
        assemble_with="Line",
        output_path=f"s3://{bucket}/abalone/transform",
        sagemaker_session=session,
    )
    step_transform = TransformStep(
        name="AbaloneTransform",
        transformer=transformer,
        inputs=TransformInput(
            data=outputs["batch"].S3Output.S3Uri, content_type="text/csv", split_type="Line"
        ),
    )
    step_register = RegisterModel(
        name="RegisterAbaloneModel",
        estimator=estimator,
        model_data=model_data,
        content_types=["text/csv"],
        response_types=["text/csv"],
        inference_instances=["ml.t2.medium"],
        transform_instances=["ml.m5.xlarge"],
        model_package_group_name="AbaloneModelPackageGroup",
        approval_status=approval_status,
        model_metrics=metrics,
    )
    step_fail = FailStep(
        name="AbaloneMseTooHigh",
        error_message=Join(on=" ", values=["MSE above the threshold", mse_threshold]),
    )
    step_cond = ConditionStep(
        name="CheckMseAbaloneEvaluation",
        conditions=[
            ConditionLessThanOrEqualTo(
                left=JsonGet(
                    step_name=step_eval.name,
                    property_file=evaluation,
                    json_path="regression_metrics.mse.value",
                ),
                right=mse_threshold,
            )
        ],
        if_steps=[step_create, step_transform, step_register],
        else_steps=[step_fail],
    )
    return Pipeline(
        name="AbalonePipeline",
        parameters=[input_data, approval_status, mse_threshold],
        steps=[step_process, step_train, step_eval, step_cond],
        sagemaker_session=session,
    )
