"""The job layer: local stand-ins for SageMaker's create/describe job API.

A :class:`LocalJobs` offers ``create_processing_job(**request)`` and
``describe_processing_job(name)``, and likewise for training jobs, models, transform jobs,
model packages, endpoint configs and endpoints, as the SageMaker SDK's own local mode splits
it (a local client over local job entities). ``request`` is the botocore request
(``CreateProcessingJob``...; what each of its members gets locally is :mod:`.emulation`'s
table), a create runs the job to its end, and the describe result has the shape of
``Describe*``: the pipeline layer (:mod:`.steps`) reads the step's properties from it.

A job runs in the :class:`StepJob` of its step: the step's folder (logs, ``/opt/ml``), the
workspace, the run's region and account, the process tracker that lets a stop end it.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import secrets
import shutil
import string
import tarfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ._script_driver import safe_deserialize, safe_serialize
from .arns import Arns
from .emulation import HANDLED, MODEL_PACKAGE
from .endpoints import LiveEndpoints
from .expressions import (
    ExecutionVariables,
    Resolver,
    StepFailure,
    UnsupportedFeatureError,
    to_text,
)
from .image import ImageEnvironmentError, StepEnvironments
from .processes import ProcessTracker, base_env, last_lines, run_process
from .registry import APPROVAL_STATUSES, LocalModelRegistry
from .serving import ServingError, ServingSpec
from .store import LocalObjectStore, MissingObjectError
from .warmpool import WarmPools
from .workspace import Workspace

__all__ = ["LocalJobs", "StepJob", "make_job_name"]

WORKER_SCRIPT = Path(__file__).with_name("_transform_worker.py")
DRIVER_SCRIPT = Path(__file__).with_name("_script_driver.py")
DEFAULT_ENVIRONMENTS = StepEnvironments()


@dataclass
class StepJob:
    """Everything an executor needs to run one step."""

    name: str
    type: str
    definition: Mapping[str, Any]
    args: dict[str, Any]
    step_dir: Path
    work_dir: Path
    workspace: Workspace
    store: LocalObjectStore
    registry: LocalModelRegistry
    execution: ExecutionVariables
    arns: Arns
    resolver: Resolver
    cancel: threading.Event
    processes: ProcessTracker
    bin_dir: Path | None = None
    environments: StepEnvironments | None = None
    endpoints: LiveEndpoints | None = None  # the run's model servers and SageMaker Runtime
    python: str = ""  # the interpreter of the step's scripts, chosen by use_image()
    environment: dict[str, Any] | None = None  # which one and why, for the run record
    ignored: list[dict[str, Any]] = field(default_factory=list)
    logs: dict[str, str] = field(default_factory=dict)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    cache_hit: dict[str, Any] | None = None  # the run it reused (CacheConfig)
    warm: WarmPools | None = None  # forks a step's script from a warm Python, when it can
    process_starts: list[str] = field(default_factory=list)  # "warm pool" / "new process"

    def use_image(self, image_uri: Any) -> str:
        """Choose the step's Python from its image (built once and cached); return it."""
        envs = self.environments or DEFAULT_ENVIRONMENTS
        try:
            self.environment = dict(envs.for_image(to_text(image_uri or "")))
        except ImageEnvironmentError as exc:
            raise StepFailure(f"Step '{self.name}': {exc}") from None
        self.python = self.environment["python"]
        return self.python

    def record_output(self, name: str, uri: str) -> None:
        """An object (or prefix) the job wrote, for the step's record."""
        self.outputs.append(
            {"name": name, "s3_uri": uri, "local_path": str(self.store.uri_to_path(uri))}
        )

    def ignore(self, setting: str, value: Any, reason: str) -> None:
        self.ignored.append(
            {"step": self.name, "setting": setting, "value": value, "reason": reason}
        )


# ---------------------------------------------------------------------------- helpers
def _now() -> datetime:
    return datetime.now(UTC)


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_ALNUM = string.ascii_letters + string.digits


def make_job_name(execution_id: str, step_name: str) -> str:
    """A SageMaker-style generated job name: ``pipelines-<exec id>-<step>-<random>``."""
    clean = re.sub(r"[^A-Za-z0-9]+", "-", step_name).strip("-") or "step"
    suffix = "".join(secrets.choice(_ALNUM) for _ in range(10))
    head = f"pipelines-{execution_id}-{clean}"[: 63 - len(suffix) - 1].rstrip("-")
    return f"{head}-{suffix}"


def _arn(job: StepJob, kind: str, name: str) -> str:
    return job.arns.sagemaker(kind, name.lower())


def _container_path(root: Path, container_path: Any, step: str, setting: str) -> Path:
    text = to_text(container_path)
    if not text.startswith("/"):
        raise StepFailure(f"Step '{step}': {setting} must be an absolute path, got {text!r}")
    parts = [p for p in text.split("/") if p]
    if any(p == ".." for p in parts):
        raise StepFailure(f"Step '{step}': {setting} may not contain '..': {text!r}")
    return root.joinpath(*parts)


_OPT_ML = re.compile(r"(?<![\w.\-/])/opt/ml(?![\w.\-])")


def _map_opt_ml(text: str, root: Path) -> str:
    """Rewrite every ``/opt/ml...`` container path in ``text`` to live under ``root``."""
    target = (root / "opt" / "ml").as_posix()
    return _OPT_ML.sub(lambda _m: target, text)


_PYTHON = re.compile(r"^python(\d+(\.\d+)*)?$")


class _Origin(Protocol):
    """Who fetches from the object store (a step's job), named in the errors."""

    name: str
    store: LocalObjectStore


def _is_python(token: str) -> bool:
    return bool(_PYTHON.match(os.path.basename(token)))


def _safe_extract(tar_path: Path, dest: Path, what: str) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tar_path, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover - very old Python 3.11 patch releases
                root = dest.resolve()
                for member in tar.getmembers():
                    target = (dest / member.name).resolve()
                    if root not in target.parents and target != root:
                        raise StepFailure(f"{what}: unsafe path {member.name!r} in archive")
                    if member.issym() or member.islnk():
                        raise StepFailure(f"{what}: links are not allowed ({member.name!r})")
                tar.extractall(dest)  # noqa: S202 - members checked above
    except (tarfile.TarError, OSError) as exc:
        raise StepFailure(f"{what}: cannot extract {tar_path}: {exc}") from exc


def _extract_from_store(job: _Origin, uri: str, dest: Path, what: str) -> None:
    try:
        path = job.store.uri_to_path(uri)
    except ValueError as exc:
        raise StepFailure(f"Step '{job.name}': {what}: {exc}") from exc
    if not path.is_file():
        raise MissingObjectError(uri, path)
    _safe_extract(path, dest, f"Step '{job.name}': {what} {uri}")


def package_model(model_dir: Path, tar_path: Path) -> None:
    """``model.tar.gz`` like SageMaker: gzip tar with members relative to the model dir."""
    # tarfile's default gzip level 9 costs ~12x the time of level 6 for a few % of size.
    with tarfile.open(tar_path, "w:gz", compresslevel=6) as tar:
        for path in sorted(model_dir.rglob("*")):
            tar.add(path, arcname=path.relative_to(model_dir).as_posix(), recursive=False)


def _download(job: _Origin, uri: Any, dest: Path, data_type: Any, setting: str) -> list[Path]:
    text = to_text(uri)
    try:
        return job.store.download(text, dest, to_text(data_type or "S3Prefix"))
    except MissingObjectError as exc:
        raise StepFailure(f"Step '{job.name}': input {setting} is missing: {exc}") from exc
    except ValueError as exc:
        raise StepFailure(f"Step '{job.name}': {setting}: {exc}") from exc


def inference_code(
    job: _Origin, cenv: Mapping[str, str], model_dir: Path, root: Path
) -> tuple[Path | None, str | None]:
    """Where the model's inference code is and which program serves it, from the container's
    SAGEMAKER_SUBMIT_DIRECTORY and SAGEMAKER_PROGRAM (code from S3 is fetched under `root`)."""
    program = cenv.get("SAGEMAKER_PROGRAM") or None
    submit = cenv.get("SAGEMAKER_SUBMIT_DIRECTORY") or "/opt/ml/model/code"
    if submit.startswith("s3://"):
        code_dir = root / "opt" / "ml" / "code"
        if submit.endswith((".tar.gz", ".tgz")):
            _extract_from_store(job, submit, code_dir, "SAGEMAKER_SUBMIT_DIRECTORY")
        else:
            _download(job, submit, code_dir, "S3Prefix", "SAGEMAKER_SUBMIT_DIRECTORY")
    elif submit.rstrip("/") == "/opt/ml/model" or submit.startswith("/opt/ml/model/"):
        rel = submit.rstrip("/")[len("/opt/ml/model") :].strip("/")
        code_dir = model_dir.joinpath(*[p for p in rel.split("/") if p])
    else:
        raise UnsupportedFeatureError(
            job.name,
            "SAGEMAKER_SUBMIT_DIRECTORY",
            submit,
            "expected /opt/ml/model/<dir> or the S3 URI of a source tar.gz",
        )
    if program:
        if not (code_dir / program).is_file():
            raise StepFailure(
                f"Step '{job.name}': SAGEMAKER_PROGRAM {program!r} was not found in "
                f"{submit} (looked in {code_dir}); the model archive must contain it"
            )
        return code_dir, program
    if (code_dir / "inference.py").is_file():
        return code_dir, "inference.py"
    return (code_dir if code_dir.is_dir() else None), None


# pip's false words for a flag given in the environment (PIP_NO_BUILD_ISOLATION=false
# turns build isolation off: pip reads the variable inverted).
_PIP_FALSE = ("0", "false", "f", "no", "n", "off")


def isolated_start(job: _Origin, cenv: Mapping[str, str], code_dir: Path | None) -> None:
    """Refuse what an isolated model container cannot do at start-up. The scikit-learn
    image installs the inference code with `pip install .` (requirements.txt included) before
    it serves; with no network pip finds no index: not for requirements, and not for the
    setuptools of an isolated build unless PIP_NO_BUILD_ISOLATION=false. Code on S3 cannot
    be downloaded either."""
    submit = cenv.get("SAGEMAKER_SUBMIT_DIRECTORY") or ""
    problem = ""
    if submit.startswith("s3://"):
        problem = f"SAGEMAKER_SUBMIT_DIRECTORY {submit} cannot be downloaded from S3"
    elif code_dir is None:
        return  # no inference code: nothing is installed
    elif (code_dir / "requirements.txt").is_file():
        problem = "pip cannot reach a package index to install its requirements.txt"
    elif cenv.get("PIP_NO_BUILD_ISOLATION", "").strip().lower() not in _PIP_FALSE:
        problem = (
            "pip installs the inference code in an isolated build that fetches setuptools "
            "from a package index it cannot reach; set PIP_NO_BUILD_ISOLATION=false in the "
            "model's Environment (pip then builds with the image's own setuptools)"
        )
    if problem:
        raise StepFailure(
            f"Step '{job.name}': the model has EnableNetworkIsolation, and its container "
            f"would not start on SageMaker: {problem}."
        )


def _true(value: Any) -> bool:
    """A boolean of a request: true, or its text once a parameter is resolved."""
    return value is True or str(value).lower() == "true"


def _channel_file(data_dir: Path, channels: list[str], path: Any) -> Path | None:
    """The local file of a container path inside a channel (/opt/ml/input/data/<channel>/...)."""
    prefix = "/opt/ml/input/data/"
    if not isinstance(path, str) or not path.startswith(prefix):
        return None
    channel, _, rest = path[len(prefix) :].partition("/")
    local = data_dir / channel / rest
    if channel not in channels or ".." in rest.split("/") or not local.is_file():
        return None
    return local


# ============================================================================ Processing


def _max_runtime(args: Mapping[str, Any]) -> float | None:
    stopping = args.get("StoppingCondition") or {}
    value = stopping.get("MaxRuntimeInSeconds") if isinstance(stopping, Mapping) else None
    if value in (None, ""):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise StepFailure(
            f"StoppingCondition.MaxRuntimeInSeconds must be a number: {value!r}"
        ) from None
    return seconds if seconds > 0 else None


def _v2_arg_value(value: Any) -> str:
    if isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    if value is None:
        return ""
    return str(value)


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _model_containers(args: Mapping[str, Any]) -> list[Any]:
    if args.get("PrimaryContainer"):
        return [args["PrimaryContainer"]]
    return _items(args.get("Containers"))


def _validate_model_data(job: StepJob, container: Mapping[str, Any], where: str) -> None:
    if not container.get("Image"):
        raise StepFailure(f"Step '{job.name}': {where}.Image is required")
    url = container.get("ModelDataUrl")
    if not url:
        raise StepFailure(f"Step '{job.name}': {where}.ModelDataUrl is required")
    try:
        found = job.store.exists(to_text(url))
    except ValueError as exc:
        raise StepFailure(f"Step '{job.name}': {where}.ModelDataUrl: {exc}") from exc
    if not found:
        raise StepFailure(
            f"Step '{job.name}': {where}.ModelDataUrl {url} does not exist in the local "
            f"object store ({job.store.uri_to_path(to_text(url))})"
        )


# What a model package keeps of its request: the members the table handles (emulation.py).
_PACKAGE_MEMBERS = tuple(
    key for key, rule in MODEL_PACKAGE.items() if rule.kind == HANDLED and "." not in key
)


# ============================================================================ the jobs
class LocalJobs:
    """Create and describe the jobs of one step, on this machine, in its :class:`StepJob`."""

    def __init__(self, context: StepJob) -> None:
        self.context = context
        self._jobs: dict[tuple[str, str], dict[str, Any]] = {}

    def _created(self, arn_key: str, **description: Any) -> dict[str, str]:
        name_key = arn_key.removesuffix("Arn") + "Name"
        self._jobs[(name_key, to_text(description[name_key]))] = description
        return {arn_key: description[arn_key]}

    def _describe(self, name_key: str, name: str) -> dict[str, Any]:
        try:
            return dict(self._jobs[(name_key, name)])
        except KeyError:
            raise StepFailure(f"{name_key} {name!r} was not created by this step") from None

    # ------------------------------------------------------------------ processing
    def create_processing_job(self, **request: Any) -> dict[str, str]:
        """Run the processing job now; ``request`` is a ``CreateProcessingJob`` request."""
        job, a = self.context, request
        job_name = to_text(a["ProcessingJobName"])
        started = _now()
        root = job.work_dir
        app = a.get("AppSpecification") or {}
        entry = [to_text(x) for x in app.get("ContainerEntrypoint") or []]
        cargs = [to_text(x) for x in app.get("ContainerArguments") or []]

        config_dir = root / "opt" / "ml" / "config"
        config_dir.mkdir(parents=True, exist_ok=True)
        (config_dir / "processingjobconfig.json").write_text(
            json.dumps(a, indent=2, default=str),
            encoding="utf-8",
        )
        (config_dir / "resourceconfig.json").write_text(
            json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}), encoding="utf-8"
        )

        for i, inp in enumerate(a.get("ProcessingInputs") or []):
            s3 = inp["S3Input"]
            name = inp.get("InputName") or str(i)
            local = _container_path(root, s3.get("LocalPath"), job.name, f"input {name} LocalPath")
            _download(
                job, s3.get("S3Uri"), local, s3.get("S3DataType"), f"'{name}' ({s3.get('S3Uri')})"
            )

        outputs = []
        for i, out in enumerate((a.get("ProcessingOutputConfig") or {}).get("Outputs") or []):
            s3 = out["S3Output"]
            name = out.get("OutputName") or str(i)
            local = _container_path(root, s3.get("LocalPath"), job.name, f"output {name} LocalPath")
            local.mkdir(parents=True, exist_ok=True)
            outputs.append((name, to_text(s3.get("S3Uri")), local))

        python = job.use_image(app.get("ImageUri"))
        cmd = [python if _is_python(entry[0]) else entry[0]] + [
            _map_opt_ml(x, root) for x in entry[1:] + cargs
        ]
        isolated = _true((a.get("NetworkConfig") or {}).get("EnableNetworkIsolation"))
        env = base_env(job, a.get("Environment"), isolated=isolated)
        timeout = _max_runtime(a)
        rc = run_process(job, cmd, cwd=root, env=env, timeout=timeout)
        if rc != 0:
            tail = last_lines(Path(job.logs["stderr"]))
            raise StepFailure(
                f"Processing job {job_name} of step '{job.name}' failed: "
                f"{' '.join(entry)} exited with code {rc}. Last lines of stderr:\n{tail}"
            )

        for name, uri, local in outputs:
            job.store.upload_dir(local, uri)
            job.record_output(name, uri)

        ended = _now()
        return self._created(
            "ProcessingJobArn",
            **a,
            ProcessingJobArn=_arn(job, "processing-job", job_name),
            ProcessingJobStatus="Completed",
            ExitMessage="",
            ProcessingStartTime=_iso(started),
            ProcessingEndTime=_iso(ended),
        )

    def describe_processing_job(self, name: str) -> dict[str, Any]:
        """``DescribeProcessingJob`` of a job this object created."""
        return self._describe("ProcessingJobName", name)

    # ------------------------------------------------------------------ training
    def create_training_job(self, **request: Any) -> dict[str, str]:
        """Run the training job now; ``request`` is a ``CreateTrainingJob`` request."""
        job, a = self.context, request
        job_name = to_text(a["TrainingJobName"])
        started = _now()
        ml = job.work_dir / "opt" / "ml"
        input_dir, config_dir = ml / "input", ml / "input" / "config"
        data_dir, model_dir = ml / "input" / "data", ml / "model"
        output_dir = ml / "output"
        for d in (
            config_dir,
            data_dir,
            model_dir,
            output_dir / "data",
            output_dir / "intermediate",
        ):
            d.mkdir(parents=True, exist_ok=True)

        algo = a.get("AlgorithmSpecification") or {}
        default_mode = algo.get("TrainingInputMode") or "File"
        channels: list[str] = []
        input_config: dict[str, Any] = {}
        for ch in a.get("InputDataConfig") or []:
            name = to_text(ch.get("ChannelName"))
            s3 = (ch.get("DataSource") or {}).get("S3DataSource") or {}
            channels.append(name)
            _download(
                job, s3.get("S3Uri"), data_dir / name, s3.get("S3DataType"), f"channel '{name}'"
            )
            cfg: dict[str, Any] = {
                "TrainingInputMode": ch.get("InputMode") or default_mode,
                "S3DistributionType": s3.get("S3DataDistributionType") or "FullyReplicated",
                "RecordWrapperType": ch.get("RecordWrapperType") or "None",
            }
            if ch.get("ContentType"):
                cfg["ContentType"] = ch["ContentType"]
            input_config[name] = cfg

        raw_hps = {str(k): to_text(v) for k, v in (a.get("HyperParameters") or {}).items()}
        instance_type = to_text((a.get("ResourceConfig") or {}).get("InstanceType") or "local")
        resource_config = {
            "current_host": "algo-1",
            "current_instance_type": instance_type,
            "current_group_name": "homogeneousCluster",
            "hosts": ["algo-1"],
            "instance_groups": [
                {
                    "instance_group_name": "homogeneousCluster",
                    "instance_type": instance_type,
                    "hosts": ["algo-1"],
                }
            ],
            "network_interface_name": "eth0",
        }
        for fname, content in (
            ("hyperparameters.json", raw_hps),
            ("inputdataconfig.json", input_config),
            ("resourceconfig.json", resource_config),
        ):
            (config_dir / fname).write_text(json.dumps(content, indent=2), encoding="utf-8")

        layout = self._layout(job, ml, channels, raw_hps, algo)
        code_dir: Path = layout["code_dir"]
        script: Path = layout["script"]
        hps: dict[str, Any] = layout["hps"]
        cli_args: list[str] = layout["args"]

        sm_env: dict[str, Any] = {
            "SM_MODEL_DIR": model_dir,
            "SM_INPUT_DIR": input_dir,
            "SM_INPUT_DATA_DIR": data_dir,
            "SM_INPUT_CONFIG_DIR": config_dir,
            "SM_OUTPUT_DIR": output_dir,
            "SM_OUTPUT_DATA_DIR": output_dir / "data",
            "SM_OUTPUT_INTERMEDIATE_DIR": output_dir / "intermediate",
            "SM_OUTPUT_FAILURE": output_dir / "failure",
            "SM_CHANNELS": json.dumps(channels),
            "SM_HPS": json.dumps(hps),
            "SM_CURRENT_HOST": "algo-1",
            "SM_CURRENT_INSTANCE_TYPE": instance_type,
            "SM_HOSTS": json.dumps(["algo-1"]),
            "SM_HOST_COUNT": "1",
            "SM_CURRENT_HOST_RANK": "0",
            "SM_NETWORK_INTERFACE_NAME": "eth0",
            "SM_MASTER_ADDR": "algo-1",
            "SM_MASTER_PORT": "7777",
            "SM_NUM_CPUS": str(multiprocessing.cpu_count()),
            "SM_NUM_GPUS": "0",
            "SM_NUM_NEURONS": "0",
            "SM_LOG_LEVEL": "20",
            "SM_RESOURCE_CONFIG": json.dumps(resource_config),
            "SM_INPUT_DATA_CONFIG": json.dumps(input_config),
            "SM_USER_ARGS": json.dumps(cli_args),
            "SM_USER_ENTRY_POINT": script.name,
            "SM_MODULE_NAME": script.stem,
            "SM_MODULE_DIR": layout.get("module_dir") or code_dir,
            "SM_SOURCE_DIR": code_dir,
            "SM_ENTRY_SCRIPT": script.name,
            "SM_FRAMEWORK_PARAMS": "{}",
            "TRAINING_JOB_NAME": job_name,
            "TRAINING_JOB_ARN": _arn(job, "training-job", job_name),
        }
        for name in channels:
            sm_env[f"SM_CHANNEL_{name.upper()}"] = data_dir / name
        for key, value in hps.items():
            sm_env[f"SM_HP_{key.replace('-', '_').upper()}"] = safe_serialize(value)
        sm_env["SM_TRAINING_ENV"] = json.dumps(
            {
                "channel_input_dirs": {n: str(data_dir / n) for n in channels},
                "current_host": "algo-1",
                "current_instance_type": instance_type,
                "hosts": ["algo-1"],
                "master_addr": "algo-1",
                "master_port": 7777,
                "hyperparameters": hps,
                "input_data_config": input_config,
                "input_config_dir": str(config_dir),
                "input_data_dir": str(data_dir),
                "input_dir": str(input_dir),
                "job_name": job_name,
                "log_level": 20,
                "model_dir": str(model_dir),
                "module_name": script.stem,
                "network_interface_name": "eth0",
                "num_cpus": multiprocessing.cpu_count(),
                "num_gpus": 0,
                "num_neurons": 0,
                "output_data_dir": str(output_dir / "data"),
                "output_dir": str(output_dir),
                "resource_config": resource_config,
                "user_entry_point": script.name,
            }
        )
        python = job.use_image(algo.get("TrainingImage"))
        sm_vars = {k: str(v) for k, v in sm_env.items()}
        if layout.get("driver"):
            # SDK v3: sm_train.sh runs environment.py, which writes every SM_* variable to
            # sm_training.env as export KEY='value' (no escaping), sources it, then the basic
            # script driver runs the entry script. A ' in a value breaks the source: exit 2.
            env_file = input_dir / "sm_training.env"
            env_file.write_text(
                "".join(f"export {k}='{v}'\n" for k, v in sm_vars.items() if k.startswith("SM_")),
                encoding="utf-8",
            )
            env = base_env(
                job,
                a.get("Environment"),
                {k: v for k, v in sm_vars.items() if not k.startswith("SM_")},
                isolated=_true(a.get("EnableNetworkIsolation")),
            )
            cmd = [
                "/bin/sh",
                "-c",
                'set -e; . "$0"; exec "$@"',
                str(env_file),
                python,
                str(DRIVER_SCRIPT),
            ]
        else:
            env = base_env(
                job, a.get("Environment"), sm_vars, isolated=_true(a.get("EnableNetworkIsolation"))
            )
            if script.suffix == ".sh":
                cmd = ["/bin/sh", str(script), *cli_args]
            else:
                cmd = [python, str(script), *cli_args]
        rc = run_process(job, cmd, cwd=code_dir, env=env, timeout=_max_runtime(a))
        if rc != 0 and layout.get("driver"):
            quoted = [k for k, v in sm_vars.items() if k.startswith("SM_HP_") and "'" in v]
            if quoted:
                raise StepFailure(
                    f"Training job {job_name} of step '{job.name}' failed with exit code {rc}: "
                    "/opt/ml/input/sm_training.env could not be sourced because the value of "
                    f"{', '.join(quoted)} contains a single quote ('), which SDK v3's driver "
                    "writes unescaped into export KEY='value'; the job fails the same way on "
                    "SageMaker. Remove the quote from the hyperparameter's value. "
                    f"Last lines of stderr:\n{last_lines(Path(job.logs['stderr']))}"
                )
        if rc != 0:
            failure = ""
            failure_file = output_dir / "failure"
            if failure_file.is_file():
                failure = failure_file.read_text(encoding="utf-8", errors="replace").strip()
            tail = last_lines(Path(job.logs["stderr"]))
            reason = (
                f"Training job {job_name} of step '{job.name}' failed: {script.name} exited "
                f"with code {rc}."
            )
            if failure:
                reason += f" /opt/ml/output/failure: {failure[-2000:]}"
            raise StepFailure(f"{reason} Last lines of stderr:\n{tail}")

        out_path = to_text((a.get("OutputDataConfig") or {}).get("S3OutputPath") or "")
        if not out_path:
            raise StepFailure(f"Step '{job.name}': OutputDataConfig.S3OutputPath is required")
        # SageMaker uploads <S3OutputPath>/<job name>/output/model.tar.gz (and output.tar.gz).
        output_uri = LocalObjectStore.join(out_path, job_name, "output")
        model_uri = self._upload_archive(model_dir, output_uri, "model.tar.gz", "model")
        if any((output_dir / "data").iterdir()):
            self._upload_archive(output_dir / "data", output_uri, "output.tar.gz", "output-data")
        ended = _now()
        return self._created(
            "TrainingJobArn",
            **{
                **a,
                "TrainingJobArn": _arn(job, "training-job", job_name),
                "TrainingJobStatus": "Completed",
                "SecondaryStatus": "Completed",
                "HyperParameters": raw_hps,
                "ModelArtifacts": {"S3ModelArtifacts": model_uri},
                "TrainingStartTime": _iso(started),
                "TrainingEndTime": _iso(ended),
                "TrainingTimeInSeconds": int(round((ended - started).total_seconds())),
                "FinalMetricDataList": self._metrics(
                    job, algo.get("MetricDefinitions") or [], ended
                ),
            },
        )

    def describe_training_job(self, name: str) -> dict[str, Any]:
        """``DescribeTrainingJob`` of a job this object created."""
        return self._describe("TrainingJobName", name)

    def _upload_archive(self, folder: Path, output_uri: str, file_name: str, name: str) -> str:
        """Upload ``folder`` as the archive ``<output_uri>/<file_name>``; return its URI."""
        job = self.context
        tar_path = job.work_dir / file_name
        package_model(folder, tar_path)
        uri = job.store.put_file(tar_path, LocalObjectStore.join(output_uri, file_name))
        job.record_output(name, uri)
        return uri

    def _layout(
        self,
        job: StepJob,
        ml: Path,
        channels: list[str],
        raw_hps: dict[str, str],
        algo: Mapping[str, Any],
    ) -> dict[str, Any]:
        data_dir = ml / "input" / "data"
        if "sm_drivers" in channels:
            # SDK v3 ModelTrainer: sm_train.sh reads sm_drivers/sourcecode.json and runs the
            # entry script from the "code" channel with the hyperparameters as CLI args.
            sc_path = data_dir / "sm_drivers" / "sourcecode.json"
            if not sc_path.is_file():
                raise StepFailure(
                    f"Step '{job.name}': the sm_drivers channel has no sourcecode.json"
                )
            source = json.loads(sc_path.read_text(encoding="utf-8")) or {}
            if source.get("command") not in (None, ""):
                raise UnsupportedFeatureError(job.name, "SourceCode.command", source["command"])
            if source.get("requirements"):
                job.ignore(
                    "SourceCode.requirements",
                    source["requirements"],
                    "not installed locally: the image's Python environment must provide them",
                )
            dist_path = data_dir / "sm_drivers" / "distributed.json"
            if dist_path.is_file():
                dist = json.loads(dist_path.read_text(encoding="utf-8") or "{}")
                if dist:
                    raise UnsupportedFeatureError(
                        job.name, "distributed", dist, "distributed training"
                    )
            entry = source.get("entry_script")
            if not entry:
                raise UnsupportedFeatureError(
                    job.name, "SourceCode.entry_script", entry, "a training script is required"
                )
            code_dir = data_dir / "code"
            script = code_dir / entry
            if not script.is_file():
                raise StepFailure(
                    f"Step '{job.name}': entry script {entry!r} is not in the code channel"
                )
            hps = {k: safe_deserialize(v) for k, v in raw_hps.items()}
            args: list[str] = []
            for key, value in hps.items():
                args += [f"--{key}", safe_serialize(value)]
            for key in ("ContainerEntrypoint", "ContainerArguments"):
                if algo.get(key):
                    job.ignore(
                        f"AlgorithmSpecification.{key}",
                        algo[key],
                        "sm_train.sh is emulated: sm_training.env is written and sourced with "
                        "/bin/sh, then the entry script runs as the basic script driver runs it",
                    )
            return {
                "code_dir": code_dir,
                "script": script,
                "hps": hps,
                "args": args,
                "driver": True,
            }

        if "sagemaker_program" in raw_hps:
            # SDK v2 framework estimators: the toolkit downloads sagemaker_submit_directory
            # (sourcedir.tar.gz) to /opt/ml/code and runs sagemaker_program.
            if algo.get("ContainerEntrypoint"):
                raise UnsupportedFeatureError(
                    job.name,
                    "AlgorithmSpecification.ContainerEntrypoint",
                    algo["ContainerEntrypoint"],
                    "a custom entrypoint together with sagemaker_program",
                )
            program = to_text(safe_deserialize(raw_hps["sagemaker_program"]))
            submit = safe_deserialize(raw_hps.get("sagemaker_submit_directory", ""))
            code_dir = ml / "code"
            code_dir.mkdir(parents=True, exist_ok=True)
            channel_file = _channel_file(data_dir, channels, submit)
            if isinstance(submit, str) and submit.startswith("s3://"):
                if submit.endswith((".tar.gz", ".tgz")):
                    _extract_from_store(job, submit, code_dir, "sagemaker_submit_directory")
                else:
                    _download(job, submit, code_dir, "S3Prefix", "sagemaker_submit_directory")
            elif channel_file is not None:
                # Network isolation: the SDK sends sourcedir.tar.gz as the "code" channel.
                _safe_extract(channel_file, code_dir, "sagemaker_submit_directory")
            else:
                raise UnsupportedFeatureError(
                    job.name,
                    "HyperParameters.sagemaker_submit_directory",
                    submit,
                    "expected the S3 URI of a sourcedir.tar.gz, or its path in a channel",
                )
            script = code_dir / program
            if not script.is_file():
                raise StepFailure(
                    f"Step '{job.name}': sagemaker_program {program!r} is not in {submit}"
                )
            hps = {
                k: safe_deserialize(v) for k, v in raw_hps.items() if not k.startswith("sagemaker_")
            }
            args = []
            for key in sorted(hps):
                args += [f"--{key}" if len(key) > 1 else f"-{key}", _v2_arg_value(hps[key])]
            return {
                "code_dir": code_dir,
                "script": script,
                "hps": hps,
                "args": args,
                "module_dir": submit,
            }

        raise UnsupportedFeatureError(
            job.name,
            "AlgorithmSpecification.TrainingImage",
            algo.get("TrainingImage"),
            "no training script found (neither an sm_drivers/sourcecode.json channel nor a "
            "sagemaker_program hyperparameter); built-in algorithms and custom images "
            "cannot run locally",
        )

    @staticmethod
    def _metrics(job: StepJob, definitions: list[Any], when: datetime) -> list[dict[str, Any]]:
        if not definitions:
            return []
        text = ""
        for key in ("stdout", "stderr"):
            path = job.logs.get(key)
            if path and Path(path).is_file():
                text += Path(path).read_text(encoding="utf-8", errors="replace") + "\n"
        metrics = []
        for md in definitions:
            name, regex = md.get("Name"), md.get("Regex")
            if not name or not regex:
                continue
            try:
                matches = re.findall(regex, text)
            except re.error as exc:
                job.ignore(f"MetricDefinitions[{name}]", regex, f"invalid regex: {exc}")
                continue
            for match in reversed(matches):
                value = match[0] if isinstance(match, tuple) else match
                try:
                    metrics.append(
                        {"MetricName": name, "Value": float(value), "Timestamp": _iso(when)}
                    )
                    break
                except ValueError:
                    continue
        return metrics

    # ------------------------------------------------------------------ models
    def create_model(self, **request: Any) -> dict[str, str]:
        """Record the model in the workspace; ``request`` is a ``CreateModel`` request."""
        job, a = self.context, request
        containers = _model_containers(a)
        if not containers:
            raise StepFailure(f"Step '{job.name}': the model needs a PrimaryContainer")
        container = containers[0]
        if container.get("ModelPackageName"):
            container = self._package_container(container)
        _validate_model_data(job, container, "PrimaryContainer")
        name = to_text(a["ModelName"])
        created = _iso(_now())
        record = {
            "ModelName": name,
            "ModelArn": _arn(job, "model", name),
            "PrimaryContainer": container,
            "ExecutionRoleArn": a.get("ExecutionRoleArn"),
            "EnableNetworkIsolation": _true(a.get("EnableNetworkIsolation")),
            "CreationTime": created,
            "PipelineExecutionId": job.execution.execution_id,
            "PipelineName": job.execution.pipeline_name,
            "StepName": job.name,
        }
        path = job.workspace.model_record(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        job.outputs.append({"name": "model", "s3_uri": None, "local_path": str(path)})
        return {"ModelArn": record["ModelArn"]}

    def _package_container(self, container: Mapping[str, Any]) -> dict[str, Any]:
        """A container given as a model package version: the version's own container, as
        SageMaker takes it (image, model data, environment), with the container's own
        Environment on top."""
        job = self.context
        name = to_text(container["ModelPackageName"])
        try:
            package = self.describe_model_package(name)
        except (ValueError, KeyError) as exc:
            raise StepFailure(
                f"Step '{job.name}': model package {name!r} was not found in the local "
                f"registry ({exc}); give the ARN of a registered version"
            ) from exc
        versions = (package.get("InferenceSpecification") or {}).get("Containers") or []
        if not versions:
            raise StepFailure(
                f"Step '{job.name}': model package {name!r} has no inference container"
            )
        own = versions[0]
        environment = {**(own.get("Environment") or {}), **(container.get("Environment") or {})}
        return {
            "Image": own.get("Image"),
            "ModelDataUrl": own.get("ModelDataUrl"),
            "Environment": environment,
            "ModelPackageName": name,
        }

    def describe_model(self, name: str) -> dict[str, Any]:
        """``DescribeModel``: the record a Model step of this workspace wrote."""
        path = self.context.workspace.model_record(name or "-")
        return self._record(path, name, "model", "a Model step")

    def _record(self, path: Path, name: str, what: str, maker: str) -> dict[str, Any]:
        if not name or not path.is_file():
            raise StepFailure(
                f"Step '{self.context.name}': {what} {name!r} was not found in "
                f"{path.parent}; {maker} must create it first"
            )
        return dict(json.loads(path.read_text(encoding="utf-8")))

    # ------------------------------------------------------------------ transform
    def create_transform_job(self, **request: Any) -> dict[str, str]:
        """Run the batch transform now; ``request`` is a ``CreateTransformJob`` request."""
        job, a = self.context, request
        job_name = to_text(a["TransformJobName"])
        started = _now()
        root = job.work_dir
        model_name = to_text(a.get("ModelName") or "")
        model = self.describe_model(model_name)
        container = model.get("PrimaryContainer") or {}
        model_dir = root / "opt" / "ml" / "model"
        _extract_from_store(job, to_text(container.get("ModelDataUrl")), model_dir, "model data")
        cenv = {str(k): to_text(v) for k, v in (container.get("Environment") or {}).items()}
        code_dir, program = inference_code(job, cenv, model_dir, root)
        isolated = bool(model.get("EnableNetworkIsolation"))
        if isolated:
            isolated_start(job, cenv, code_dir)

        tin = a.get("TransformInput") or {}
        tout = a.get("TransformOutput") or {}
        dp = a.get("DataProcessing") or {}
        s3 = (tin.get("DataSource") or {}).get("S3DataSource") or {}
        input_uri = to_text(s3.get("S3Uri"))
        input_dir, output_dir = root / "input", root / "output"
        files = _download(job, input_uri, input_dir, s3.get("S3DataType"), f"input {input_uri}")
        output_dir.mkdir(parents=True, exist_ok=True)
        split = to_text(tin.get("SplitType") or "None")
        strategy = to_text(a.get("BatchStrategy") or "SingleRecord")
        if not a.get("BatchStrategy"):
            job.ignore("BatchStrategy", None, "not set: SingleRecord is used")
        assemble = to_text(tout.get("AssembleWith") or "None")
        max_mb = float(a.get("MaxPayloadInMB") if a.get("MaxPayloadInMB") is not None else 6)
        ctype = to_text(tin.get("ContentType") or "")
        accept = to_text(tout.get("Accept") or ctype)
        spec = {
            "model_dir": str(model_dir),
            "code_dir": str(code_dir) if code_dir else None,
            "program": program,
            "input_dir": str(input_dir),
            "output_dir": str(output_dir),
            "files": sorted(p.relative_to(input_dir).as_posix() for p in files),
            "content_type": ctype,
            "accept": accept,
            "split_type": split,
            "batch_strategy": strategy,
            "max_payload_bytes": int(max_mb * 1024 * 1024) if max_mb > 0 else 0,
            "assemble_with": assemble,
            "join_source": to_text(dp.get("JoinSource") or "None"),
            "result_path": str(root / "worker-result.json"),
        }
        spec_path = root / "worker-spec.json"
        spec_path.write_text(json.dumps(spec, indent=2), encoding="utf-8")
        python = job.use_image(container.get("Image"))
        env = base_env(
            job,
            cenv,
            a.get("Environment"),
            {
                "SAGEMAKER_BATCH": "true",
                "SAGEMAKER_MAX_PAYLOAD_IN_MB": f"{max_mb:g}",
                "SAGEMAKER_BATCH_STRATEGY": "MULTI_RECORD"
                if strategy == "MultiRecord"
                else "SINGLE_RECORD",
                "SM_MODEL_DIR": str(model_dir),
            },
            isolated=isolated,
        )
        rc = run_process(
            job,
            [python, str(WORKER_SCRIPT), str(spec_path)],
            cwd=code_dir or root,
            env=env,
        )
        if rc != 0:
            tail = last_lines(Path(job.logs["stderr"]))
            raise StepFailure(
                f"Transform job {job_name} of step '{job.name}' failed: the inference code "
                f"raised an error (worker exit code {rc}). Last lines of stderr:\n{tail}"
            )
        results = json.loads(Path(spec["result_path"]).read_text(encoding="utf-8"))
        if split == "Line" and assemble == "Line":
            for res in results["files"]:
                if res["output_lines"] != res["records"]:
                    raise StepFailure(
                        f"Transform job {job_name} of step '{job.name}': {res['file']} has "
                        f"{res['records']} input records but the model produced "
                        f"{res['output_lines']} output lines; with AssembleWith Line there must "
                        "be one output line per input record"
                    )
        out_uri = to_text(tout.get("S3OutputPath") or "")
        if not out_uri:
            raise StepFailure(f"Step '{job.name}': TransformOutput.S3OutputPath is required")
        for res in results["files"]:
            rel = res["output"]
            job.store.put_file(output_dir / rel, LocalObjectStore.join(out_uri, rel))
        job.record_output("output", out_uri)
        ended = _now()
        return self._created(
            "TransformJobArn",
            **{
                **a,
                "TransformJobArn": _arn(job, "transform-job", job_name),
                "TransformJobStatus": "Completed",
                "ModelName": model_name,
                "TransformOutput": {**tout, "S3OutputPath": out_uri},
                "TransformStartTime": _iso(started),
                "TransformEndTime": _iso(ended),
            },
        )

    def describe_transform_job(self, name: str) -> dict[str, Any]:
        """``DescribeTransformJob`` of a job this object created."""
        return self._describe("TransformJobName", name)

    # ------------------------------------------------------------------ endpoints
    def create_endpoint_config(self, **request: Any) -> dict[str, str]:
        """Record the config; ``request`` is a ``CreateEndpointConfig`` request."""
        job, a = self.context, request
        name = to_text(a["EndpointConfigName"])
        path = job.workspace.endpoint_config_record(name)
        if path.is_file():
            raise StepFailure(
                f"Step '{job.name}': endpoint config {name!r} already exists; SageMaker "
                "refuses to create a config twice (give each config a name of its own)"
            )
        variants = [dict(v) for v in a.get("ProductionVariants") or []]
        for variant in variants:
            self.describe_model(to_text(variant.get("ModelName") or ""))  # it must exist
        record = {
            "EndpointConfigName": name,
            "EndpointConfigArn": _arn(job, "endpoint-config", name),
            "ProductionVariants": variants,
            "CreationTime": _iso(_now()),
            "PipelineExecutionId": job.execution.execution_id,
            "StepName": job.name,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        job.outputs.append({"name": "endpoint-config", "s3_uri": None, "local_path": str(path)})
        return {"EndpointConfigArn": record["EndpointConfigArn"]}

    def describe_endpoint_config(self, name: str) -> dict[str, Any]:
        """``DescribeEndpointConfig``: the record an EndpointConfig step wrote."""
        path = self.context.workspace.endpoint_config_record(name or "-")
        return self._record(path, name, "endpoint config", "an EndpointConfig step")

    def create_endpoint(self, **request: Any) -> dict[str, str]:
        """Create the endpoint, or update it when it exists (as a pipeline's Endpoint step
        does): its model server must answer ``/ping`` before the endpoint serves the new
        config. If it does not, an existing endpoint keeps its previous config and a new one
        is left ``Failed``, as SageMaker leaves them; the step fails either way."""
        job, a = self.context, request
        name = to_text(a["EndpointName"])
        config_name = to_text(a["EndpointConfigName"])
        config = self.describe_endpoint_config(config_name)
        variant = config["ProductionVariants"][0]
        model = self.describe_model(to_text(variant.get("ModelName") or ""))
        container = model.get("PrimaryContainer") or {}
        serving_dir = job.workspace.endpoint_serving_dir(name, config_name)
        model_dir = serving_dir / "model"
        if serving_dir.exists():
            shutil.rmtree(serving_dir)
        _extract_from_store(job, to_text(container.get("ModelDataUrl")), model_dir, "model data")
        cenv = {str(k): to_text(v) for k, v in (container.get("Environment") or {}).items()}
        code_dir, program = inference_code(job, cenv, model_dir, serving_dir)
        if model.get("EnableNetworkIsolation"):
            isolated_start(job, cenv, code_dir)
        python = job.use_image(container.get("Image"))
        serving = {
            "image": to_text(container.get("Image")),
            "model_dir": str(model_dir),
            "code_dir": str(code_dir) if code_dir else None,
            "program": program,
            "environment": cenv,
            "model_name": model["ModelName"],
            "model_package": container.get("ModelPackageName"),
            "variant": to_text(variant.get("VariantName")),
        }
        (serving_dir / "serving.json").write_text(json.dumps(serving, indent=2), encoding="utf-8")
        path = job.workspace.endpoint_record(name)
        previous = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
        now = _iso(_now())
        record = {
            "EndpointName": name,
            "EndpointArn": _arn(job, "endpoint", name),
            "EndpointConfigName": config_name,
            "ProductionVariants": [
                {
                    "VariantName": serving["variant"],
                    "DeployedImages": [
                        {"SpecifiedImage": serving["image"], "ResolvedImage": serving["image"]}
                    ],
                    "CurrentWeight": 1.0,
                    "DesiredWeight": 1.0,
                    "CurrentInstanceCount": 1,
                    "DesiredInstanceCount": 1,
                }
            ],
            "EndpointStatus": "InService",
            "CreationTime": (previous or {}).get("CreationTime") or now,
            "LastModifiedTime": now,
        }
        spec = ServingSpec(
            model_dir=model_dir,
            python=python,
            code_dir=code_dir,
            program=program,
            environment=cenv,
        )
        try:
            if job.endpoints is not None:
                job.endpoints.serve(name, spec, config_name)
        except ServingError as exc:
            path.parent.mkdir(parents=True, exist_ok=True)
            if previous is not None and previous.get("EndpointStatus") == "InService":
                raise StepFailure(
                    f"Step '{job.name}': endpoint {name} could not be updated to config "
                    f"{config_name}: {exc}\nIt still serves {previous['EndpointConfigName']}."
                ) from exc
            failed = {**record, "EndpointStatus": "Failed", "FailureReason": str(exc)[:1024]}
            path.write_text(json.dumps(failed, indent=2), encoding="utf-8")
            raise StepFailure(
                f"Step '{job.name}': endpoint {name} could not be created: {exc}"
            ) from exc
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2), encoding="utf-8")
        job.outputs.append({"name": "endpoint", "s3_uri": None, "local_path": str(path)})
        return {"EndpointArn": record["EndpointArn"]}

    def describe_endpoint(self, name: str) -> dict[str, Any]:
        """``DescribeEndpoint``: the endpoint's record."""
        path = self.context.workspace.endpoint_record(name or "-")
        if not name or not path.is_file():
            raise StepFailure(f"Step '{self.context.name}': endpoint {name!r} was not found")
        return dict(json.loads(path.read_text(encoding="utf-8")))

    # ------------------------------------------------------------------ model packages
    def create_model_package(self, **request: Any) -> dict[str, str]:
        """Register the next version of the group; ``request`` is a ``CreateModelPackage``."""
        job, a = self.context, request
        group = to_text(a.get("ModelPackageGroupName"))
        status = to_text(a.get("ModelApprovalStatus") or "PendingManualApproval")
        if status not in APPROVAL_STATUSES:
            raise StepFailure(
                f"Step '{job.name}': ModelApprovalStatus {status!r} is not one of "
                f"{', '.join(APPROVAL_STATUSES)}"
            )
        spec = a.get("InferenceSpecification") or {}
        for i, ct in enumerate(spec.get("Containers") or []):
            _validate_model_data(job, ct, f"InferenceSpecification.Containers[{i}]")
        package = {k: a[k] for k in _PACKAGE_MEMBERS if k in a and k != "ModelPackageGroupName"}
        package["ModelApprovalStatus"] = status
        for key in ("ModelMetrics", "DriftCheckBaselines"):
            if key in package:
                package[key] = self._with_content(job, package[key], key)
        package["PipelineExecutionId"] = job.execution.execution_id
        package["PipelineExecutionArn"] = job.execution.execution_arn
        package["PipelineName"] = job.execution.pipeline_name
        package["StepName"] = job.name
        try:
            record = job.registry.register(
                group, package, region=job.arns.region, account_id=job.arns.account_id
            )
        except ValueError as exc:
            raise StepFailure(f"Step '{job.name}': {exc}") from exc
        path = job.registry.package_path(group, record["ModelPackageVersion"])
        job.outputs.append({"name": "model-package", "s3_uri": None, "local_path": str(path)})
        return {"ModelPackageArn": record["ModelPackageArn"]}

    def describe_model_package(self, name: str) -> dict[str, Any]:
        """``DescribeModelPackage`` by ARN or ``<group>/<version>``: the registry's record."""
        group, _, version = name.rpartition("model-package/")[2].partition("/")
        return self.context.registry.get(group, int(version))

    def _with_content(self, job: StepJob, value: Any, where: str) -> Any:
        """Copy of a ModelMetrics-like tree with each metrics file's content attached."""
        if isinstance(value, Mapping):
            out = {k: self._with_content(job, v, f"{where}.{k}") for k, v in value.items()}
            uri = value.get("S3Uri")
            if isinstance(uri, str) and uri:
                try:
                    raw = job.store.read_bytes(uri)
                except MissingObjectError as exc:
                    raise StepFailure(f"Step '{job.name}': {where}: {exc}") from exc
                except ValueError as exc:
                    raise StepFailure(f"Step '{job.name}': {where}.S3Uri: {exc}") from exc
                ctype = to_text(value.get("ContentType") or "")
                text = raw.decode("utf-8", errors="replace")
                if "json" in ctype or uri.endswith(".json"):
                    try:
                        out["Content"] = json.loads(text)
                    except json.JSONDecodeError as exc:
                        raise StepFailure(
                            f"Step '{job.name}': {where} ({uri}) is not valid JSON: {exc}"
                        ) from exc
                else:
                    out["Content"] = text
            return out
        if isinstance(value, list):
            return [self._with_content(job, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value
