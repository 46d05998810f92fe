"""Endpoints of a workspace: their records, and the model servers that make them answer.

An Endpoint step leaves a record (``DescribeEndpoint``) and, beside it, what the endpoint
serves under its config (the unpacked model and ``serving.json``: the inference code, the
image, the environment, the model package version). While a run executes,
:class:`LiveEndpoints` keeps each endpoint's model server running and answers SageMaker
Runtime for them, so a later step (a smoke test) invokes the endpoint with boto3 exactly as
it would in the account; the servers stop when the run ends. Outside a run,
:func:`serving_spec` rebuilds the server of an endpoint from its records (``serve``,
``invoke``).
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from .image import StepEnvironments
from .serving import ModelServer, RuntimeAPI, ServingError, ServingSpec
from .workspace import Workspace

__all__ = [
    "EndpointNotFoundError",
    "LiveEndpoints",
    "read_endpoint",
    "serving_spec",
]

# The placeholder credentials a step gets to sign its requests to the local API with.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


class EndpointNotFoundError(LookupError):
    """No endpoint of that name in the workspace; the message lists those there are."""


class LiveEndpoints:
    """The running model servers of one execution, and SageMaker Runtime in front of them.

    :meth:`serve` starts an endpoint's server (stopping the one it replaces only once the
    new one answers ``/ping``); :meth:`aws_environment` is what a step's process needs to
    reach them with boto3; :meth:`close` stops everything.
    """

    def __init__(self, workspace: Workspace, *, region: str, account_id: str) -> None:
        self.workspace = workspace
        self.region = region
        self.account_id = account_id
        self._servers: dict[str, ModelServer] = {}
        self._lock = threading.Lock()
        self._api: RuntimeAPI | None = None

    def serve(self, name: str, spec: ServingSpec, config_name: str) -> ModelServer:
        """Start the server of endpoint `name` for `spec`; :class:`ServingError` if it does
        not come up (the previous server, if any, keeps serving)."""
        logs = self.workspace.endpoint_logs_dir(name) / config_name
        server = ModelServer(spec, log_dir=logs)
        server.start()
        with self._lock:
            previous, self._servers[name] = self._servers.get(name), server
        if previous is not None:
            previous.stop()
        return server

    def server(self, name: str) -> ModelServer | None:
        with self._lock:
            return self._servers.get(name)

    @property
    def api(self) -> RuntimeAPI:
        with self._lock:
            if self._api is None:
                self._api = RuntimeAPI(self.server, region=self.region, account_id=self.account_id)
                self._api.start()
            return self._api

    def aws_environment(self) -> dict[str, str]:
        """What a step's process needs for boto3 to reach these endpoints (and nothing of
        a real account: placeholder credentials)."""
        return {
            **LOCAL_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.api.url,
        }

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
            api, self._api = self._api, None
        for server in servers:
            server.stop()
        if api is not None:
            api.stop()


def read_endpoint(workspace: Workspace, name: str) -> dict[str, Any]:
    """The endpoint's record (``DescribeEndpoint``); :class:`EndpointNotFoundError` if none."""
    path = workspace.endpoint_record(name)
    if not path.is_file():
        there = sorted(p.stem for p in workspace.endpoints_dir.glob("*.json"))
        raise EndpointNotFoundError(
            f"Endpoint {name!r} does not exist in {workspace.root} "
            f"(endpoints there: {', '.join(there) or 'none'})"
        )
    return dict(json.loads(path.read_text(encoding="utf-8")))


def serving_spec(
    workspace: Workspace, name: str, environments: StepEnvironments | None = None
) -> ServingSpec:
    """The server of endpoint `name` as its current config serves it: the unpacked model,
    the inference code, the image's Python (built once and cached), the environment."""
    record = read_endpoint(workspace, name)
    if record.get("EndpointStatus") != "InService":
        raise ServingError(
            f"Endpoint {name!r} is {record.get('EndpointStatus')}: "
            f"{record.get('FailureReason') or 'it serves nothing'}"
        )
    serving = json.loads(
        (
            workspace.endpoint_serving_dir(name, record["EndpointConfigName"]) / "serving.json"
        ).read_text(encoding="utf-8")
    )
    envs = environments or StepEnvironments()
    python = envs.for_image(serving["image"])["python"]
    return ServingSpec(
        model_dir=Path(serving["model_dir"]),
        python=python,
        code_dir=Path(serving["code_dir"]) if serving.get("code_dir") else None,
        program=serving.get("program"),
        environment=serving.get("environment") or {},
    )
