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
import os
import shutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .image import StepEnvironments
from .registry import LocalModelRegistry
from .serving import APIError, ModelServer, RuntimeAPI, ServingError, ServingSpec
from .store import LocalObjectStore
from .workspace import Workspace

__all__ = [
    "EndpointNotFoundError",
    "LiveEndpoints",
    "delete_endpoint",
    "endpoint_model_package",
    "read_endpoint",
    "serving_spec",
    "version_serving_spec",
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

    def __init__(
        self,
        workspace: Workspace,
        *,
        region: str,
        account_id: str,
        environments: StepEnvironments | None = None,
    ) -> None:
        self.workspace = workspace
        self.environments = environments
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
                self._api = RuntimeAPI(
                    self.server,
                    region=self.region,
                    account_id=self.account_id,
                    control=self.control,
                    objects=self._object_file,
                )
                self._api.start()
            return self._api

    def aws_environment(self) -> dict[str, str]:
        """What a step's process needs for boto3 to reach these endpoints, the workspace's
        registry and its objects (and nothing of a real account: placeholder credentials)."""
        return {
            **LOCAL_CREDENTIALS,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": self.api.url,
            "AWS_ENDPOINT_URL_SAGEMAKER": self.api.url,
            "AWS_ENDPOINT_URL_S3": self.api.url,
        }

    def _object_file(self, bucket: str, key: str) -> Path | None:
        """The file of s3://bucket/key in the workspace's object store (reads, as a step's
        role reads the pipeline's bucket: a model version's data, say)."""
        try:
            return LocalObjectStore(self.workspace).uri_to_path(f"s3://{bucket}/{key}")
        except ValueError:
            return None

    # ------------------------------------------------------------------ SageMaker's API
    def control(self, operation: str, request: dict[str, Any]) -> dict[str, Any]:
        """The part of SageMaker's API a deploy script needs, over this workspace: reading
        model packages and endpoints, switching an endpoint back to a config it served
        before (a rollback), deleting an endpoint."""
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            known = ", ".join(sorted(n[4:] for n in dir(self) if n.startswith("_op_")))
            raise APIError(
                "UnknownOperationException",
                f"SageMaker.{operation} is not emulated by the local runner (it answers {known})",
            )
        return dict(handler(request))

    def _package(self, arn: str) -> dict[str, Any]:
        group, _, version = str(arn).rpartition("model-package/")[2].partition("/")
        try:
            return LocalModelRegistry(self.workspace).get(group, int(version))
        except (KeyError, ValueError):
            raise APIError("ValidationException", f"Model Package {arn} does not exist.") from None

    def _op_DescribeModelPackage(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return self._package(request.get("ModelPackageName", ""))

    def _op_ListModelPackages(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        group = request.get("ModelPackageGroupName") or ""
        packages = LocalModelRegistry(self.workspace).list_packages(group) if group else []
        status = request.get("ModelApprovalStatus")
        if status:
            packages = [p for p in packages if p.get("ModelApprovalStatus") == status]
        packages.sort(key=lambda p: (p.get("CreationTime") or "", p.get("ModelPackageVersion")))
        if request.get("SortOrder", "Ascending") == "Descending":
            packages.reverse()
        limit = int(request.get("MaxResults") or 100)
        keep = (
            "ModelPackageGroupName",
            "ModelPackageVersion",
            "ModelPackageArn",
            "CreationTime",
            "ModelPackageStatus",
            "ModelApprovalStatus",
        )
        return {
            "ModelPackageSummaryList": [{k: p[k] for k in keep if k in p} for p in packages[:limit]]
        }

    def _op_DescribeEndpoint(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        return self._endpoint(request.get("EndpointName", ""))

    def _endpoint(self, name: str) -> dict[str, Any]:
        try:
            return read_endpoint(self.workspace, name)
        except EndpointNotFoundError:
            raise APIError("ValidationException", f'Could not find endpoint "{name}".') from None

    def _op_UpdateEndpoint(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        name = request.get("EndpointName", "")
        config = request.get("EndpointConfigName", "")
        record = self._endpoint(name)
        if not (self.workspace.endpoint_serving_dir(name, config) / "serving.json").is_file():
            raise APIError(
                "ValidationException",
                f"The local runner switches endpoint {name} only to a config an Endpoint step "
                f"deployed to it before; {config} was not (deploy it with an Endpoint step).",
            )
        try:
            self.serve(name, _spec_of(self.workspace, name, config, self.environments), config)
        except (ServingError, OSError) as exc:
            raise APIError("ValidationException", f"Endpoint {name}: {exc}") from None
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        updated = {**record, "EndpointConfigName": config, "EndpointStatus": "InService"}
        updated["LastModifiedTime"] = now
        updated.pop("FailureReason", None)
        self.workspace.endpoint_record(name).write_text(json.dumps(updated, indent=2))
        return {"EndpointArn": record["EndpointArn"]}

    def _op_DeleteEndpoint(self, request: dict[str, Any]) -> dict[str, Any]:  # noqa: N802
        name = request.get("EndpointName", "")
        self._endpoint(name)
        with self._lock:
            server = self._servers.pop(name, None)
        if server is not None:
            server.stop()
        delete_endpoint(self.workspace, name)
        return {}

    def close(self) -> None:
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
            api, self._api = self._api, None
        for server in servers:
            server.stop()
        if api is not None:
            api.stop()


def read_endpoint(workspace: Workspace | str | os.PathLike[str], name: str) -> dict[str, Any]:
    """The endpoint's record (``DescribeEndpoint``); :class:`EndpointNotFoundError` if none."""
    workspace = Workspace.of(workspace)
    path = workspace.endpoint_record(name)
    if not path.is_file():
        there = sorted(p.stem for p in workspace.endpoints_dir.glob("*.json"))
        raise EndpointNotFoundError(
            f"Endpoint {name!r} does not exist in {workspace.root} "
            f"(endpoints there: {', '.join(there) or 'none'})"
        )
    return dict(json.loads(path.read_text(encoding="utf-8")))


def delete_endpoint(workspace: Workspace | str | os.PathLike[str], name: str) -> None:
    """``DeleteEndpoint``: the endpoint's record goes; its configs stay, as in SageMaker.
    :class:`EndpointNotFoundError` if there is no such endpoint."""
    workspace = Workspace.of(workspace)
    read_endpoint(workspace, name)
    workspace.endpoint_record(name).unlink()


def endpoint_model_package(workspace: Workspace | str | os.PathLike[str], name: str) -> str | None:
    """The model package version (ARN) the endpoint's current config serves, if it was
    created from one; :class:`EndpointNotFoundError` if there is no such endpoint."""
    workspace = Workspace.of(workspace)
    record = read_endpoint(workspace, name)
    path = workspace.endpoint_serving_dir(name, record["EndpointConfigName"]) / "serving.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8")).get("model_package") or None


def serving_spec(
    workspace: Workspace | str | os.PathLike[str],
    name: str,
    environments: StepEnvironments | None = None,
) -> ServingSpec:
    """The server of endpoint `name` as its current config serves it: the unpacked model,
    the inference code, the image's Python (built once and cached), the environment."""
    workspace = Workspace.of(workspace)
    record = read_endpoint(workspace, name)
    if record.get("EndpointStatus") != "InService":
        raise ServingError(
            f"Endpoint {name!r} is {record.get('EndpointStatus')}: "
            f"{record.get('FailureReason') or 'it serves nothing'}"
        )
    return _spec_of(workspace, name, record["EndpointConfigName"], environments)


def _spec_of(
    workspace: Workspace, name: str, config: str, environments: StepEnvironments | None
) -> ServingSpec:
    path = workspace.endpoint_serving_dir(name, config) / "serving.json"
    serving = json.loads(path.read_text(encoding="utf-8"))
    envs = environments or StepEnvironments()
    python = envs.for_image(serving["image"])["python"]
    return ServingSpec(
        model_dir=Path(serving["model_dir"]),
        python=python,
        code_dir=Path(serving["code_dir"]) if serving.get("code_dir") else None,
        program=serving.get("program"),
        environment=serving.get("environment") or {},
    )


@dataclass(frozen=True)
class _Serve:
    name: str  # named in the errors, as a step is
    store: LocalObjectStore


def version_serving_spec(
    workspace: Workspace | str | os.PathLike[str],
    package: Mapping[str, Any],
    environments: StepEnvironments | None = None,
) -> ServingSpec:
    """The server of a registered version on its own, without an endpoint: its container
    (image, model data, environment) unpacked afresh under the workspace's serving folder
    for that version, as an Endpoint step would unpack it."""
    from .expressions import StepFailure
    from .jobs import _extract_from_store, inference_code

    workspace = Workspace.of(workspace)
    group = str(package["ModelPackageGroupName"])
    version = int(package["ModelPackageVersion"])
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or []
    if not containers:
        raise ServingError(f"Version {version} of {group!r} has no inference container")
    container = containers[0]
    environment = {str(k): str(v) for k, v in (container.get("Environment") or {}).items()}
    root = workspace.version_serving_dir(group, version)
    if root.exists():
        shutil.rmtree(root)
    model_dir = root / "model"
    origin = _Serve(f"version {version}", LocalObjectStore(workspace))
    try:
        _extract_from_store(origin, str(container.get("ModelDataUrl")), model_dir, "model data")
        code_dir, program = inference_code(origin, environment, model_dir, root)
    except (StepFailure, FileNotFoundError) as exc:
        raise ServingError(f"Version {version} of {group!r} cannot be served: {exc}") from exc
    envs = environments or StepEnvironments()
    return ServingSpec(
        model_dir=model_dir,
        python=envs.for_image(str(container.get("Image") or ""))["python"],
        code_dir=code_dir,
        program=program,
        environment=environment,
    )
