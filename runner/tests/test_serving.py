"""Local endpoints: a model served as its container serves it, reached through boto3."""

from __future__ import annotations

import json
import os
import textwrap

import boto3
import pytest
from botocore.exceptions import ClientError

from sagemaker_pipelines_local.serving import (
    ModelServer,
    RuntimeAPI,
    ServingError,
    ServingSpec,
)

INFERENCE = textwrap.dedent(
    """
    import json
    import os
    from pathlib import Path


    def model_fn(model_dir):
        weights = json.loads((Path(model_dir) / "model.json").read_text())["weights"]
        if weights == "broken":
            raise RuntimeError("the model file is damaged")
        return weights


    def input_fn(body, content_type):
        if content_type != "text/csv":
            raise ValueError(f"unsupported content type {content_type}")
        rows = [line.split(",") for line in body.splitlines() if line]
        return [[float(value) for value in row] for row in rows]  # ValueError on text


    def predict_fn(rows, weights):
        return [sum(w * x for w, x in zip(weights, row)) for row in rows]


    def output_fn(predictions, accept):
        if accept == "application/json":
            return json.dumps({"predictions": predictions, "env": sorted(os.environ)})
        return "\\n".join(f"{p:g}" for p in predictions) + "\\n", "text/csv"
    """
)


def model(tmp_path, weights):
    model_dir = tmp_path / "model"
    (model_dir / "code").mkdir(parents=True)
    (model_dir / "model.json").write_text(json.dumps({"weights": weights}))
    (model_dir / "code" / "inference.py").write_text(INFERENCE)
    return ServingSpec(
        model_dir=model_dir,
        code_dir=model_dir / "code",
        program="inference.py",
        environment={"SAGEMAKER_PROGRAM": "inference.py"},
    )


@pytest.fixture
def server(tmp_path):
    with ModelServer(model(tmp_path, [1.0, 10.0]), log_dir=tmp_path / "logs") as running:
        yield running


@pytest.fixture
def runtime(server):
    """boto3's sagemaker-runtime client, pointed at a local runtime serving `server`."""
    endpoints = {"demo-staging": server}
    with RuntimeAPI(endpoints.get, region="eu-west-1", account_id="123456789012") as api:
        yield boto3.client(
            "sagemaker-runtime",
            endpoint_url=api.url,
            region_name="eu-west-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - a placeholder
        )


def test_the_container_contract_ping_and_invocations(server):
    result = server.invoke(b"1,2\n3,4\n", "text/csv", "text/csv")
    assert (result.status, result.content_type) == (200, "text/csv")
    assert result.body == b"21\n43\n"


def test_boto3_invokes_a_local_endpoint(runtime):
    response = runtime.invoke_endpoint(
        EndpointName="demo-staging", Body=b"1,2\n", ContentType="text/csv", Accept="text/csv"
    )
    assert response["Body"].read() == b"21\n"
    assert response["ContentType"] == "text/csv"
    assert response["InvokedProductionVariant"] == "AllTraffic"


def test_without_accept_the_default_accept_is_json(runtime):
    response = runtime.invoke_endpoint(
        EndpointName="demo-staging", Body=b"1,2\n", ContentType="text/csv"
    )
    assert json.loads(response["Body"].read())["predictions"] == [21.0]


def test_a_malformed_row_is_a_model_error_with_the_message_in_the_log(runtime, server):
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName="demo-staging", Body=b"1,two\n", ContentType="text/csv"
        )
    error = raised.value.response
    assert error["Error"]["Code"] == "ModelError"
    assert error["OriginalStatusCode"] == 500
    assert "Received server error (500) from primary" in error["Error"]["Message"]
    assert "Internal Server Error" in error["OriginalMessage"]
    # As in the image: the reason is not in the answer, only in the container's log.
    assert "could not convert string to float: 'two'" not in error["OriginalMessage"]
    assert "could not convert string to float: 'two'" in server.stderr_log.read_text()


def test_an_unknown_endpoint_is_a_validation_error(runtime):
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(EndpointName="demo-prod", Body=b"1,2\n", ContentType="text/csv")
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "Endpoint demo-prod of account 123456789012 not found" in str(raised.value)


def test_a_body_over_6_mb_is_refused_as_the_service_refuses_it(runtime):
    with pytest.raises(ClientError) as raised:
        runtime.invoke_endpoint(
            EndpointName="demo-staging", Body=b"1,2\n" * (2 * 1024 * 1024), ContentType="text/csv"
        )
    assert raised.value.response["Error"]["Code"] == "ValidationError"
    assert "exceeds the maximum" in str(raised.value)


def test_the_server_gets_a_containers_environment_not_the_hosts(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "host-secret")
    monkeypatch.setenv("AWS_PROFILE", "production")
    with ModelServer(model(tmp_path, [1.0, 10.0]), log_dir=tmp_path / "logs") as server:
        result = server.invoke(b"1,2\n", "text/csv", "application/json")
    names = set(json.loads(result.body)["env"])
    assert {"SAGEMAKER_PROGRAM", "SM_MODEL_DIR", "PATH", "HOME"} <= names
    assert not {n for n in names if n.startswith("AWS_")}, names


def test_a_model_that_cannot_load_fails_the_start_naming_the_reason(tmp_path):
    server = ModelServer(model(tmp_path, "broken"), log_dir=tmp_path / "logs")
    with pytest.raises(ServingError) as raised:
        server.start()
    assert "exited with code 1 before it was ready" in str(raised.value)
    assert "the model file is damaged" in str(raised.value)
    assert str(server.stderr_log) in str(raised.value)


def test_stop_ends_the_server_process(tmp_path):
    server = ModelServer(model(tmp_path, [1.0]), log_dir=tmp_path / "logs")
    server.start()
    pid = server.pid
    assert pid is not None
    os.kill(pid, 0)  # running
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(ServingError, match="not running"):
        server.invoke(b"1\n")
