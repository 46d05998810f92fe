"""Command line: `python -m <package> COMMAND` (also installed as a console script)."""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import json
import logging
import multiprocessing
import os
import re
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from .config import PROJECT_ROOT, STAGES, Settings, package_version
from .offline import BUILD, DEPLOY
from .provenance import version_provenance

LOCAL_DIR = PROJECT_ROOT / ".local"

# The exit statuses every command keeps (docs: reference/cli.md).
EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad input from the command line; the message says what to do."""


def _require_runner(offline: bool = True) -> None:
    """The runner is a dev dependency: say how to get it instead of printing a traceback.
    Building the definition (`offline`) needs its offline extra, moto, as well."""
    needed = ("sagemaker_pipelines_local", "moto") if offline else ("sagemaker_pipelines_local",)
    if not all(_installed(module) for module in needed):
        raise UsageError(
            "The local runner (the package sagemaker-pipelines-local with its offline extra) is "
            "not installed in this environment: run `make install`, which installs the "
            "project's dev dependency group, then run this command again."
        )


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _parameters(pairs: list[str]) -> dict[str, str]:
    parameters: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise UsageError(f"-p expects Name=Value, got '{pair}' (e.g. -p MetricThreshold=0.9).")
        parameters[name.strip()] = value.strip()
    return parameters


def _refuse_a_looser_gate(settings: Settings, parameters: dict[str, str]) -> None:
    """MetricThreshold makes the quality gate stricter for one execution, never looser: the
    project's threshold is a floor (the definition's gate requires both)."""
    if "MetricThreshold" not in parameters or not settings.quality_gate:
        return
    text = parameters["MetricThreshold"]
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"-p MetricThreshold expects a number, got '{text}'.") from None
    floor = settings.metric_threshold
    if (value > floor) if settings.lower_is_better else (value < floor):
        relation = "above" if settings.lower_is_better else "below"
        raise UsageError(
            f"MetricThreshold={text} is {relation} the project's floor for {settings.metric}, "
            f"{floor:g}: a run may make the quality gate stricter, never looser (the gate "
            f"requires both, here and in the account). Lowering the floor is a code change: "
            f"metric_threshold in src/{settings.package_name}/config.py, reviewed as any other."
        )


def _quiet_sdk(verbose: bool) -> None:
    """The SDK logs every popped field at WARNING; keep the terminal for what matters."""
    level = logging.INFO if verbose else logging.ERROR
    for name in ("sagemaker", "botocore", "boto3", "sagemaker.config"):
        logging.getLogger(name).setLevel(level)
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore", module="sagemaker")


def cmd_definition(args: argparse.Namespace) -> int:
    _require_runner()
    settings = Settings.load()
    cached = None if args.rebuild else _cached_definition(settings, None, args.pipeline)
    if cached is None:
        from .offline import build_definition

        text = build_definition(settings, pipeline=args.pipeline)
    else:
        text = cached.definition
    definition = json.dumps(json.loads(text), indent=2)
    if args.output:
        Path(args.output).write_text(definition + "\n")
        print(f"Wrote {args.output}", file=sys.stderr)
    else:
        print(definition)
    return 0


def cmd_run_local(args: argparse.Namespace) -> int:
    settings = Settings.load()
    parameters = _parameters(args.parameter)
    _refuse_a_looser_gate(settings, parameters)
    workdir = _workdir(args)
    data = Path(args.data) if args.data else settings.sample_data
    if not data.is_file():
        raise UsageError(f"--data: '{data}' does not exist or is not a file; give a CSV file.")
    if "InputDataUri" in parameters and args.data:
        raise UsageError("Give either --data CSV or -p InputDataUri=..., not both.")

    _require_runner()
    from sagemaker_pipelines_local import (
        LocalObjectStore,
        resolve_parameters,
        run_pipeline,
        stop_warm_pools,
    )

    if args.warm_pool == 0:
        stop_warm_pools()  # every step starts a new Python: none stays up
    store = LocalObjectStore(workdir)
    definition = _local_definition(settings, workdir, args, BUILD)
    selective = _from_step_locally(settings, workdir, definition, args.from_step)
    # The data goes into the bucket the definition's InputDataUri default names, under a
    # key named by its content (the sample's is that default).
    default_uri = resolve_parameters(definition)["InputDataUri"]
    bucket = default_uri.removeprefix("s3://").split("/", 1)[0]
    input_uri = f"s3://{bucket}/{settings.input_key(data)}"
    store.put_file(data, input_uri)
    if input_uri != default_uri:
        parameters["InputDataUri"] = input_uri

    result = run_pipeline(
        definition,
        workdir=workdir,
        pipeline_name=settings.pipeline_name,
        region=settings.region,
        parameters=parameters,
        progress=_print_event,
        max_workers=settings.max_parallel_steps,
        selective_execution=selective,
        warm_pool=args.warm_pool,
    )
    return _report(result)


def _from_step_locally(
    settings: Settings, workdir: Path, definition: str, step: str | None
) -> dict | None:
    """`--from-step STEP`: a selective execution of STEP and every step after it, taking the
    results of the steps before it from the latest execution (None without the option)."""
    if step is None:
        return None
    from sagemaker_pipelines_local import latest_execution, selective_execution_config, steps_from

    try:
        selected = steps_from(definition, step)
    except ValueError as error:
        raise UsageError(f"--from-step: {error}.") from None
    source = latest_execution(workdir, settings.pipeline_name)
    if source is None:
        raise UsageError(
            f"--from-step: {settings.pipeline_name} has no execution in {workdir} to take the "
            "earlier steps' results from: run `run-local` once without it."
        )
    print(
        f"Running {', '.join(selected)}; the steps before {step} reuse the results of "
        f"execution {source['execution_id']} ({source.get('status')})."
    )
    return selective_execution_config(source["execution_arn"], selected)


def _report(result) -> int:
    """How an execution ended, and the exit status that says it."""
    print()
    print(f"Execution {result.execution_id}: {result.status}")
    if result.failure_reason:
        print(f"Reason: {result.failure_reason}")
    print(f"Run record: {result.record_path}")
    _print_cost_estimate(result)
    print(f"Report:     {result.report_path}")
    return {"Succeeded": EXIT_OK, "Stopped": EXIT_INTERRUPTED}.get(result.status, EXIT_FAILED)


def _print_cost_estimate(result) -> None:
    """One line: what the execution would have cost on SageMaker (an estimate from the
    runner's price table; the report has it step by step, with the table's sources)."""
    from sagemaker_pipelines_local import estimate_cost

    record = json.loads(Path(result.record_path).read_text(encoding="utf-8"))
    print(estimate_cost(record).summary())


def _local_definition(
    settings: Settings, workdir: Path, args: argparse.Namespace, pipeline: str
) -> str:
    """The pipeline's definition, from the build cache while nothing it is built from
    changed, else built in a child process; the SDK's uploads go into `workdir`."""
    name = settings.pipeline_name if pipeline == BUILD else settings.deploy_pipeline_name
    cached = None if args.rebuild else _cached_definition(settings, workdir, pipeline)
    if cached is not None:
        print(
            f"Using the cached definition of {name}: nothing it is built from changed "
            "(--rebuild to build it again)."
        )
        return cached.definition
    print(f"Building the pipeline definition of {name} (offline)...")
    return _build_definition_apart(settings, workdir, args.verbose, pipeline)


def _cached_definition(settings: Settings, workdir: Path | None, pipeline: str = BUILD):
    """The build cache's definition for this code and these settings, or None."""
    from .offline import cached_definition

    return cached_definition(settings, workdir, pipeline)


def cmd_deploy(args: argparse.Namespace) -> int:
    settings = Settings.load()
    if args.aws:
        return _deploy_in_account(settings, args.stage, args.version, args.wait)
    _require_runner()
    return _deploy_locally(settings, args.stage, args.version, args)


def _deploy_in_account(settings: Settings, stage: str, version: int | None, wait: bool) -> int:
    """Start the account's deploy pipeline; with `wait`, its outcome is the exit status."""
    from .aws import deploy

    result = deploy(settings, stage, version, wait=wait)
    print(f"Started {result['PipelineExecutionArn']}")
    if not wait:
        return EXIT_OK
    print(f"Finished: {result['status']}")
    for failure in result["failures"]:
        print(f"  {failure}")
    return EXIT_OK if result["status"] == "Succeeded" else EXIT_FAILED


def _deploy_locally(
    settings: Settings, stage: str, version: int | None, args: argparse.Namespace
) -> int:
    """Run the deploy pipeline on this machine: an Approved version onto the stage's
    local endpoint, then its smoke test."""
    from sagemaker_pipelines_local import LocalModelRegistry, run_pipeline

    workdir = _workdir(args)
    package = _deployable(LocalModelRegistry(workdir), settings, version, stage, workdir)
    definition = _local_definition(settings, workdir, args, DEPLOY)
    print(
        f"Deploying version {package['ModelPackageVersion']} to {stage} "
        f"(endpoint {settings.endpoint_name(stage)}, local)..."
    )
    result = run_pipeline(
        definition,
        workdir=workdir,
        pipeline_name=settings.deploy_pipeline_name,
        region=settings.region,
        parameters={"ModelPackageArn": package["ModelPackageArn"], "Stage": stage},
        progress=_print_event,
    )
    return _report(result)


def _deployable(
    registry, settings: Settings, version: int | None, stage: str, workdir: Path
) -> dict:
    """The version to deploy: by default the newest Approved for staging, and for prod the
    one staging serves (promotion). A version that is not Approved is refused."""
    group = settings.model_package_group_name
    if version is None and stage != STAGES[0]:
        served = _served_version(settings, workdir, STAGES[0])
        if served is None:
            raise UsageError(
                f"Nothing to promote to {stage}: the local {STAGES[0]} endpoint serves no "
                f"version. Deploy one there first (`deploy --stage {STAGES[0]}`), or give "
                "--version N."
            )
        version = served
    if version is None:
        package = registry.latest(group, "Approved")
        if package is None:
            raise UsageError(
                f"No Approved version in '{group}' (local registry): approve one with "
                "`models approve VERSION` (`models list` shows them)."
            )
        return package
    package = _registered(registry, group, version)
    status = package["ModelApprovalStatus"]
    if status != "Approved":
        raise UsageError(
            f"Version {version} is {status}: only an Approved version is deployed. Approve it "
            f"first: `models approve {version}`."
        )
    return package


def _registered(registry, group: str, version: int) -> dict:
    """A version of the local registry, or a usage error that says what there is."""
    from sagemaker_pipelines_local import CorruptModelPackageError

    try:
        return registry.get(group, version)
    except KeyError:
        raise UsageError(
            f"Version {version} is not in '{group}' (local registry): `models list` shows "
            "the versions there are."
        ) from None
    except CorruptModelPackageError as error:
        raise UsageError(str(error)) from None


def cmd_models_approve(args: argparse.Namespace) -> int:
    return _set_approval(args, "Approved")


def cmd_models_reject(args: argparse.Namespace) -> int:
    return _set_approval(args, "Rejected")


def _set_approval(args: argparse.Namespace, status: str) -> int:
    """Approve or reject a version; an approval deploys it to staging (locally by this
    command, in the account by the EventBridge rule of the project's stack)."""
    if args.aws:
        from .aws import set_approval

        settings = Settings.load()
        set_approval(settings, args.version, status)
        print(f"Version {args.version} of '{settings.model_package_group_name}' is {status} "
              f"({settings.region}).")  # fmt: skip
        if status == "Approved":
            print(
                "The project's EventBridge rule now starts pipeline "
                f"'{settings.deploy_pipeline_name}' for {STAGES[0]}; follow it in SageMaker "
                f"Studio, or run `deploy --stage {STAGES[0]} --aws --version {args.version} "
                "--wait` where the stack is not deployed."
            )
        return EXIT_OK
    no_deploy = getattr(args, "no_deploy", False)
    _require_runner(offline=status == "Approved" and not no_deploy)
    from sagemaker_pipelines_local import LocalModelRegistry

    settings = Settings.load()
    group = settings.model_package_group_name
    registry = LocalModelRegistry(_workdir(args))
    _registered(registry, group, args.version)
    registry.update_approval_status(group, args.version, status)
    print(f"Version {args.version} of '{group}' is {status} (local registry).")
    if status != "Approved" or no_deploy:
        return EXIT_OK
    return _deploy_locally(settings, STAGES[0], args.version, args)


def _served_version(settings: Settings, workdir: Path, stage: str) -> int | None:
    """The version the stage's local endpoint serves, or None when it has none."""
    from sagemaker_pipelines_local import EndpointNotFoundError, endpoint_model_package

    try:
        arn = endpoint_model_package(workdir, settings.endpoint_name(stage))
    except EndpointNotFoundError:
        return None
    return package_version(arn) if arn else None


def _stages_serving(settings: Settings, workdir: Path | None) -> dict[int, list[str]]:
    """version -> the stages whose endpoint serves it (local endpoints, or the account's)."""
    serving: dict[int, list[str]] = {}
    for stage in STAGES:
        if workdir is None:
            from .aws import serving_package_arn

            arn = serving_package_arn(settings, stage)
            version = package_version(arn) if arn else None
        else:
            version = _served_version(settings, workdir, stage)
        if version is not None:
            serving.setdefault(version, []).append(stage)
    return serving


def _model_server(
    settings: Settings, workdir: Path, stage: str | None, version: int | None, port: int = 0
):
    """A local model server (not started) for a stage's endpoint or a registered version,
    with a log folder of its own; and what it serves, in words."""
    import tempfile

    from sagemaker_pipelines_local import (
        EndpointNotFoundError,
        LocalModelRegistry,
        ModelServer,
        ServingError,
        Workspace,
        serving_spec,
        version_serving_spec,
    )

    workspace = Workspace(workdir)
    try:
        if version is not None:
            registry = LocalModelRegistry(workspace)
            package = _registered(registry, settings.model_package_group_name, version)
            spec = version_serving_spec(workspace, package)
            logs = workspace.version_serving_dir(settings.model_package_group_name, version)
            what = f"version {version} ({package['ModelApprovalStatus']})"
        else:
            name = settings.endpoint_name(stage)
            spec = serving_spec(workspace, name)
            logs = workspace.endpoint_logs_dir(name)
            served = _served_version(settings, workdir, stage)
            what = f"{stage} (endpoint {name}, version {served})"
    except EndpointNotFoundError:
        raise UsageError(
            f"There is no local {stage} endpoint: deploy a version there first (`models "
            f"approve VERSION` deploys to {STAGES[0]}; `deploy --stage {stage}`), or give "
            "--version N to use a registered version directly."
        ) from None
    except ServingError as error:
        raise UsageError(str(error)) from None
    logs.mkdir(parents=True, exist_ok=True)
    log_dir = Path(tempfile.mkdtemp(prefix="cli-", dir=logs))
    return ModelServer(spec, log_dir=log_dir, port=port), what


def cmd_serve(args: argparse.Namespace) -> int:
    _require_runner(offline=False)
    from sagemaker_pipelines_local import ServingError, read_endpoint

    settings, workdir = Settings.load(), _workdir(args)
    stage = None if args.version is not None else args.stage
    server, what = _model_server(settings, workdir, stage, args.version, args.port)
    try:
        server.start()
    except ServingError as error:
        raise UsageError(f"could not serve {what}: {error}") from None
    record = None
    try:
        if stage is not None:  # `invoke` sends its requests here while this serves
            config = read_endpoint(workdir, settings.endpoint_name(stage))["EndpointConfigName"]
            record = _serve_record(settings, workdir, stage)
            running = {"pid": os.getpid(), "port": server.port, "config": config,
                       "log": str(server.stderr_log)}  # fmt: skip
            record.with_suffix(".tmp").write_text(json.dumps(running))
            record.with_suffix(".tmp").replace(record)
        print(f"Serving {what} at {server.url} (Ctrl-C stops it).", flush=True)
        print(f"  curl {server.url}/ping")
        print(
            f"  curl -H 'Content-Type: text/csv' --data-binary @rows.csv {server.url}/invocations"
        )
        print(f"Log: {server.stderr_log}", flush=True)
        threading.Event().wait()  # until a signal (Ctrl-C, SIGTERM) ends the command
    except KeyboardInterrupt:
        print("Stopped.")
        return EXIT_OK
    finally:
        if record is not None:
            record.unlink(missing_ok=True)
        server.stop()
    return EXIT_OK


def _serve_record(settings: Settings, workdir: Path, stage: str) -> Path:
    """Where a running `serve` of a stage's endpoint says where it listens."""
    from sagemaker_pipelines_local import Workspace

    return Workspace(workdir).endpoint_logs_dir(settings.endpoint_name(stage)) / "serve.json"


def _running_serve(settings: Settings, workdir: Path, stage: str) -> dict | None:
    """The `serve` of this stage that is running and serves the endpoint's current config,
    if there is one (a stale record, a dead process or an older config: None)."""
    from sagemaker_pipelines_local import EndpointNotFoundError, read_endpoint

    try:
        running = json.loads(_serve_record(settings, workdir, stage).read_text())
        os.kill(int(running["pid"]), 0)
        current = read_endpoint(workdir, settings.endpoint_name(stage))["EndpointConfigName"]
    except (OSError, ValueError, KeyError, TypeError, EndpointNotFoundError):
        return None
    if running.get("config") != current:
        return None
    from sagemaker_pipelines_local import request_model_server

    try:
        pinged = request_model_server(int(running["port"]), "GET", "/ping", timeout=2)
    except (OSError, ValueError, http.client.HTTPException):
        return None
    return running if pinged.status == 200 else None


def cmd_undeploy(args: argparse.Namespace) -> int:
    settings = Settings.load()
    name = settings.endpoint_name(args.stage)
    if args.aws:
        from .aws import delete_endpoint

        delete_endpoint(settings, args.stage)
        print(f"Deleting endpoint {name} ({settings.region}); its configs and models stay.")
        return EXIT_OK
    _require_runner(offline=False)
    from sagemaker_pipelines_local import EndpointNotFoundError, delete_endpoint

    try:
        delete_endpoint(_workdir(args), name)
    except EndpointNotFoundError as error:
        raise UsageError(str(error)) from None
    print(f"Deleted the local endpoint {name}; the registry's versions are unchanged.")
    return EXIT_OK


CONTENT_TYPES = {".csv": "text/csv", ".json": "application/json"}
MAX_REQUEST_BYTES = 6 * 1024 * 1024  # SageMaker Runtime's limit on an InvokeEndpoint body


def cmd_invoke(args: argparse.Namespace) -> int:
    path = Path(args.file)
    content_type = CONTENT_TYPES.get(path.suffix.lower())
    if content_type is None:
        raise UsageError(f"{path}: send a .csv (one row per line) or a .json file.")
    if not path.is_file():
        raise UsageError(f"{path} does not exist or is not a file.")
    body = path.read_bytes()
    if len(body) > MAX_REQUEST_BYTES:
        raise UsageError(
            f"{path} is {len(body):,} bytes; an endpoint takes at most {MAX_REQUEST_BYTES:,} "
            "per request (SageMaker Runtime's limit): send it in parts, or use batch transform."
        )
    settings = Settings.load()
    if args.aws:
        from .aws import invoke_endpoint

        sys.stdout.write(invoke_endpoint(settings, args.stage, body, content_type).decode())
        return EXIT_OK
    _require_runner(offline=False)
    workdir = _workdir(args)
    running = _running_serve(settings, workdir, args.stage)
    if running is not None:
        from sagemaker_pipelines_local import request_model_server

        headers = {"Content-Type": content_type, "Accept": "text/csv"}
        answered = request_model_server(running["port"], "POST", "/invocations", body, headers)
        status, answer, log = answered.status, answered.body, Path(running["log"])
        print(f"(answered by the running `serve`, process {running['pid']})", file=sys.stderr)
    else:
        status, answer, log = _invoke_once(settings, workdir, args.stage, body, content_type)
    if status != 200:
        raise UsageError(
            f"the {args.stage} endpoint answered {status}: {_model_complaint(log)} "
            f"(the model's log: {log})"
        )
    sys.stdout.write(answer.decode())
    return EXIT_OK


def _invoke_once(
    settings: Settings, workdir: Path, stage: str, body: bytes, content_type: str
) -> tuple[int, bytes, Path]:
    """Serve the stage's endpoint for one request; its log is kept only if it refused."""
    import shutil

    from sagemaker_pipelines_local import ServingError

    server, what = _model_server(settings, workdir, stage, None)
    try:
        server.start()
        answer = server.invoke(body, content_type=content_type, accept="text/csv")
    except ServingError as error:
        raise UsageError(f"could not serve {what}: {error}") from None
    finally:
        server.stop()
    if answer.status == 200:
        shutil.rmtree(server.log_dir, ignore_errors=True)
    return answer.status, answer.body, server.stderr_log


def _model_complaint(log: Path) -> str:
    """The exception the model's handlers raised, from its server's log (a container answers
    an error with a generic page; the reason is only in its log)."""
    lines = log.read_text(errors="replace").splitlines() if log.is_file() else []
    raised = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    return raised[-1] if raised else "the model refused the request"


def _build_definition_apart(
    settings: Settings, workdir: Path, verbose: bool, pipeline: str = BUILD
) -> str:
    """The definition, built in a child process that exits once it is built.

    Once imported, the SageMaker SDK (with moto) holds ~280 MiB that no module unload gives
    back; built here, it would sit beside every step for the whole run.
    """
    spawn = multiprocessing.get_context("spawn")  # a fresh interpreter, not a fork of this one
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as child:
        return child.submit(_build_definition, settings, workdir, verbose, pipeline).result()


def _build_definition(settings: Settings, workdir: Path, verbose: bool, pipeline: str) -> str:
    _quiet_sdk(verbose)
    from .offline import build_definition

    return build_definition(settings, workdir=workdir, pipeline=pipeline)


def _workdir(args: argparse.Namespace) -> Path:
    return Path(args.workdir).resolve() if getattr(args, "workdir", None) else LOCAL_DIR


def _print_event(event) -> None:
    marks = {"Executing": "..", "Succeeded": "ok", "Failed": "!!", "Stopped": "--"}
    mark = marks.get(event.status, "  ")
    timing = "" if event.status == "Executing" else f" ({event.elapsed:.1f}s)"
    line = f"[{mark}] {event.name:<28} {event.step_type:<14} {event.status}{timing}"
    if event.message and event.status != "Executing":
        line += f"\n     {event.message}"
    print(line, flush=True)


def cmd_upsert(args: argparse.Namespace) -> int:
    from .aws import upsert

    for result in upsert(Settings.load(), role_arn=args.role_arn):
        if result["sample"]:
            print(f"Uploaded the sample data to {result['sample']}")
        print(f"Pipeline {result['action']}: {result['PipelineArn']}")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    from .aws import start

    settings, parameters = Settings.load(), _parameters(args.parameter)
    _refuse_a_looser_gate(settings, parameters)
    result = start(settings, parameters, wait=args.wait, from_step=args.from_step)
    if result.get("selected"):
        print(
            f"Selective execution of {', '.join(result['selected'])}, reusing the earlier steps "
            f"of {result['source']}"
        )
    print(f"Started {result['PipelineExecutionArn']}")
    if args.wait:
        print(f"Finished: {result['status']}")
        for failure in result["failures"]:
            print(f"  {failure}")
        _print_billed(settings, result["PipelineExecutionArn"])
        return EXIT_OK if result["status"] == "Succeeded" else EXIT_FAILED
    return EXIT_OK


def _print_billed(settings: Settings, arn: str) -> None:
    """Each job's billed time as the account reports it (after `start --wait`)."""
    from .aws import AwsError, billed_jobs

    try:
        jobs = billed_jobs(settings, arn)
    except AwsError as error:
        print(f"Billed time: not read ({error})", file=sys.stderr)
        return
    print("Billed time per job, as the account reports it:")
    for job in jobs:
        if "not_billed" in job:
            print(f"  {job['step']}: {job['not_billed']}: not billed")
            continue
        what = f"{job['kind'].removesuffix('Job').lower()} job {job['job']}"
        if job["seconds"] is None:
            print(f"  {job['step']}: no billed time reported yet ({what})")
            continue
        instances = f"{job['instance_count']} x {job['instance_type']}"
        if job["basis"] == "BillableTimeInSeconds":
            print(
                f"  {job['step']}: {job['seconds']} s billed per instance, {instances} "
                f"({what}, BillableTimeInSeconds)"
            )
        else:
            print(
                f"  {job['step']}: {job['seconds']} s from {job['basis']}, {instances} "
                f"({what}: the API reports no billable time for this kind of job)"
            )


def cmd_models_list(args: argparse.Namespace) -> int:
    settings = Settings.load()
    if args.aws:
        from .aws import list_model_packages

        packages = [
            {
                "version": p.get("ModelPackageVersion"),
                "status": p.get("ModelApprovalStatus"),
                "created": str(p.get("CreationTime")),
                "arn": p.get("ModelPackageArn"),
                "metrics": {},
            }
            for p in list_model_packages(settings)
        ]
    else:
        _require_runner(offline=False)
        from sagemaker_pipelines_local import LocalModelRegistry, recover_abandoned_runs

        recover_abandoned_runs(_workdir(args))
        registry = LocalModelRegistry(_workdir(args))
        packages = [
            {
                "version": p["ModelPackageVersion"],
                "status": p["ModelApprovalStatus"],
                "created": p.get("CreationTime"),
                "arn": p["ModelPackageArn"],
                "metrics": _headline_metrics(p, settings),
            }
            for p in registry.list_packages(settings.model_package_group_name)
        ]
        # A corrupt version is named on stderr; the others are listed all the same.
        for problem in registry.corrupt_packages(settings.model_package_group_name):
            print(f"warning: {problem}", file=sys.stderr)
    serving = _stages_serving(settings, None if args.aws else _workdir(args)) if packages else {}
    for package in packages:
        package["stages"] = serving.get(package["version"], [])
    if args.json:
        print(json.dumps(packages, indent=2, default=str))
        return 0
    where = "account" if args.aws else "local registry"
    if not packages:
        print(f"No model packages in group '{settings.model_package_group_name}' ({where}).")
        return 0
    print(f"Model package group '{settings.model_package_group_name}' ({where}):")
    print(f"{'version':>7}  {'status':<22} {settings.metric:>10}  {'serving':<13} created")
    for p in packages:
        value = p["metrics"].get(settings.metric)
        shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
        stages = ",".join(p["stages"]) or "-"
        print(f"{p['version']:>7}  {p['status']:<22} {shown:>10}  {stages:<13} {p['created']}")
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    """One version, as the registry describes it: where it came from, how it scored, where
    it serves."""
    settings = Settings.load()
    if args.aws:
        from .aws import model_package

        package = model_package(settings, args.version)
    else:
        _require_runner(offline=False)
        from sagemaker_pipelines_local import LocalModelRegistry

        registry = LocalModelRegistry(_workdir(args))
        package = _registered(registry, settings.model_package_group_name, args.version)
    workdir = None if args.aws else _workdir(args)
    stages = _stages_serving(settings, workdir).get(args.version, [])
    provenance = version_provenance(package, _fingerprint(package, workdir, settings))
    if args.json:
        shown = {**package, "Stages": stages, "Provenance": provenance}
        print(json.dumps(shown, indent=2, default=str))
        return EXIT_OK
    where = settings.region if args.aws else "local registry"
    container = (package.get("InferenceSpecification", {}).get("Containers") or [{}])[0]
    print(f"Version {args.version} of '{settings.model_package_group_name}' ({where})")
    rows = [
        ("status", package.get("ModelApprovalStatus")),
        ("created", package.get("CreationTime")),
        ("serving", ", ".join(stages) or "-"),
        ("arn", package.get("ModelPackageArn")),
        ("image", container.get("Image")),
        ("model data", container.get("ModelDataUrl")),
    ]
    metrics = _headline_metrics(package, settings) if not args.aws else {}
    rows += [(f"metric {name}", f"{value:.4f}") for name, value in sorted(metrics.items())]
    _print_rows(rows)
    for title, section in _provenance_sections(provenance):
        print(title)
        _print_rows(section)
    return EXIT_OK


def _print_rows(rows: list[tuple[str, object]]) -> None:
    width = max((len(name) for name, _ in rows), default=0)
    for name, value in rows:
        print(f"  {name:<{width}}  {value if value not in (None, '') else '-'}")


def _provenance_sections(provenance: dict) -> list[tuple[str, list[tuple[str, object]]]]:
    """A version's provenance as titled rows, for people."""
    code, execution, data = provenance["code"], provenance["execution"], provenance["data"]
    hyperparameters = ", ".join(f"{k}={v}" for k, v in sorted(execution["hyperparameters"].items()))
    dirty = {"true": " (uncommitted changes)", "false": " (clean)"}.get(code["git_dirty"], "")
    columns = data.get("columns")  # only when the fingerprint could be read
    sections = [
        ("Made by", [
            ("execution", execution["pipeline_execution_id"]),
            ("hyperparameters", hyperparameters),
            ("generated by", execution["generated_by"]),
        ]),
        ("From the code", [
            ("git commit", f"{code['git_commit'] or '-'}{dirty}"),
            ("template version", code["template_version"]),
            ("definition hash", code["definition_hash"]),
        ]),
        ("Trained on", [
            ("data sha256", data["sha256"]),
            ("rows", data["rows"]),
            ("columns", data["column_count"]),
            ("schema sha256", data["schema_sha256"]),
            ("fingerprint", data["fingerprint_uri"]),
            *[
                (f"column {c['name']}", c["type"] + (", the target" if c.get("target") else ""))
                for c in columns or []
            ],
        ]),
        ("Model card", [("status", provenance["model_card_status"])]),
    ]  # fmt: skip
    if provenance["other_metadata"]:
        sections.append(("Other metadata", sorted(provenance["other_metadata"].items())))
    return sections


def _fingerprint(package: dict, workdir: Path | None, settings: Settings) -> dict | None:
    """The input fingerprint a version names (its columns and their types), from the local
    object store, or without `workdir` from the account's bucket; None when it cannot be
    read (the URI is shown)."""
    uri = (package.get("CustomerMetadataProperties") or {}).get("InputFingerprint")
    if not uri:
        return None
    if workdir is None:
        from .aws import read_json_object

        return read_json_object(settings, uri)
    from sagemaker_pipelines_local import LocalObjectStore

    try:
        return json.loads(LocalObjectStore(workdir).read_bytes(uri))
    except (OSError, ValueError):
        return None


def cmd_prune(args: argparse.Namespace) -> int:
    _require_runner(offline=False)
    from sagemaker_pipelines_local import WorkspaceBusyError, prune_workspace

    workdir = _workdir(args)
    try:
        result = prune_workspace(
            workdir, keep=args.keep, older_than_days=args.older_than, dry_run=args.dry_run
        )
    except WorkspaceBusyError as error:
        raise UsageError(str(error)) from None
    verb = "Would remove" if result.dry_run else "Removed"
    runs = ", ".join(result.removed_runs) or "none"
    print(f"{verb} {len(result.removed_runs)} run(s) ({runs}) and {result.removed_objects} "
          f"object(s) of the local object store: {_megabytes(result.bytes_freed)} "
          f"{'would be ' if result.dry_run else ''}freed.")  # fmt: skip
    print(f"Kept {len(result.kept_runs)} run(s), the registry ({workdir / 'registry'}) and "
          "every object a registered model version refers to.")  # fmt: skip
    return EXIT_OK


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB"


def _headline_metrics(package: dict, settings: Settings) -> dict[str, float]:
    """Metric values of a local package, read from the evaluation.json it was registered with."""
    statistics = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}) or {}
    content = statistics.get("Content") or {}
    section = content.get(settings.metric_section, {})
    return {
        name: value["value"]
        for name, value in section.items()
        if isinstance(value, dict) and isinstance(value.get("value"), (int, float))
    }


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected 1 or more, got 0")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _keep_alive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got '{text}'") from None
    if not 0 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"expected 0 to 3600 seconds, got {value:g}")
    return value


def _add_parameter_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "-p", "--parameter", action="append", default=[], metavar="Name=Value", help=help_text
    )


def _add_workdir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", metavar="DIR", help="local state folder (default: .local/)")


def _add_from_step_option(parser: argparse.ArgumentParser, source: str) -> None:
    parser.add_argument(
        "--from-step",
        metavar="STEP",
        help=f"run STEP and every step after it; the steps before it reuse the results of {source}",
    )


def _add_rebuild_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="build the definition even if the build cache has this code's (it is then renewed)",
    )


def build_parser() -> argparse.ArgumentParser:
    settings = Settings()
    parser = argparse.ArgumentParser(
        prog=f"python -m {settings.package_name}",
        description=f"{settings.project_name}: the SageMaker Pipeline {settings.pipeline_name}.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="show the SDK's logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("definition", help="print the pipeline definition JSON (offline)")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    p.add_argument(
        "--pipeline",
        choices=(BUILD, DEPLOY),
        default=BUILD,
        help="the build pipeline (default) or the deploy pipeline",
    )
    _add_rebuild_option(p)
    p.set_defaults(func=cmd_definition)

    p = commands.add_parser("run-local", help="run the pipeline definition on this machine")
    _add_parameter_option(p, "override a pipeline parameter (repeatable)")
    p.add_argument("--data", metavar="CSV", help="input CSV (default: the sample data)")
    _add_from_step_option(p, "the latest local execution")
    p.add_argument(
        "--warm-pool",
        type=_keep_alive,
        metavar="SECONDS",
        help="keep each image's Python, its libraries imported, up SECONDS after its last step "
        "so the next steps start at once (default: $SAGEMAKER_PIPELINES_LOCAL_WARM_POOL or "
        "600); 0: every step starts a new Python, and the warm pools that are up stop",
    )
    _add_workdir_option(p)
    _add_rebuild_option(p)
    p.set_defaults(func=cmd_run_local)

    p = commands.add_parser("upsert", help="create or update the pipeline in the AWS account")
    p.add_argument("--role-arn", metavar="ARN", help="execution role (default: SAGEMAKER_ROLE_ARN)")
    p.set_defaults(func=cmd_upsert)

    p = commands.add_parser("start", help="start an execution in the AWS account")
    _add_parameter_option(p, "pipeline parameter for this execution (repeatable)")
    p.add_argument("--wait", action="store_true", help="block until the execution ends")
    _add_from_step_option(p, "the pipeline's latest execution in the account")
    p.set_defaults(func=cmd_start)

    p = commands.add_parser("models", help="model packages in the model registry")
    models = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    m = models.add_parser("list", help="list the versions of the model package group")
    m.add_argument("--json", action="store_true", help="machine-readable output")
    m.add_argument("--aws", action="store_true", help="the account's registry, not the local one")
    _add_workdir_option(m)
    m.set_defaults(func=cmd_models_list)
    m = models.add_parser("show", help="one version: its status, metrics, origin and stages")
    m.add_argument("version", type=_positive_int, metavar="VERSION")
    m.add_argument("--json", action="store_true", help="the registry's whole record")
    m.add_argument("--aws", action="store_true", help="the account's registry, not the local one")
    _add_workdir_option(m)
    m.set_defaults(func=cmd_models_show)
    for action, func, text in (
        ("approve", cmd_models_approve, "approve a version, then deploy it to staging"),
        ("reject", cmd_models_reject, "reject a version (it is never deployed)"),
    ):
        m = models.add_parser(action, help=text)
        m.add_argument("version", type=_positive_int, metavar="VERSION")
        m.add_argument(
            "--aws",
            action="store_true",
            help="the account's registry (its EventBridge rule deploys an approval to staging)",
        )
        _add_workdir_option(m)
        if action == "approve":
            m.add_argument("--no-deploy", action="store_true", help="approve only (local)")
            _add_rebuild_option(m)
        m.set_defaults(func=func)

    p = commands.add_parser(
        "deploy",
        help="deploy an Approved version to a stage's endpoint, then smoke-test it",
        description="Run the deploy pipeline (on this machine, or with --aws in the account): "
        "the version's model on the stage's endpoint, then the held-out rows sent to it and "
        "compared with the version's batch predictions; if they differ, the endpoint goes "
        "back to what it served before and the execution fails (exit 1).",
    )
    p.add_argument("--stage", choices=STAGES, required=True)
    p.add_argument(
        "--version",
        type=_positive_int,
        metavar="N",
        help=f"the version to deploy (default: for {STAGES[0]} the newest Approved, for "
        f"{STAGES[1]} the version {STAGES[0]} serves)",
    )
    p.add_argument("--aws", action="store_true", help="start the account's deploy pipeline")
    p.add_argument("--wait", action="store_true", help="with --aws: block until it ends")
    _add_workdir_option(p)
    _add_rebuild_option(p)
    p.set_defaults(func=cmd_deploy)

    p = commands.add_parser(
        "undeploy",
        help="delete a stage's endpoint (its configs and the registry's versions stay)",
    )
    p.add_argument("--stage", choices=STAGES, required=True)
    p.add_argument("--aws", action="store_true", help="the account's endpoint")
    _add_workdir_option(p)
    p.set_defaults(func=cmd_undeploy)

    p = commands.add_parser(
        "serve",
        help="serve a stage's local endpoint, or a registered version, in the foreground",
        description="Start the model server of a stage's local endpoint (or of a registered "
        "version) on 127.0.0.1 and keep it until Ctrl-C: GET /ping, POST /invocations, as "
        "the serving container answers them.",
    )
    which = p.add_mutually_exclusive_group()
    which.add_argument("--stage", choices=STAGES, default=STAGES[0], help="default: %(default)s")
    which.add_argument("--version", type=_positive_int, metavar="N", help="a registered version")
    p.add_argument(
        "--port", type=_non_negative_int, default=8080, metavar="PORT", help="0: any free port"
    )
    _add_workdir_option(p)
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser(
        "invoke",
        help="send a CSV or JSON file to a stage's endpoint and print its predictions",
        description="Send FILE (.csv: one row per line, no header; .json) to the stage's "
        "endpoint and print the answer: locally through the running `serve` of that stage, "
        "else a model server started for the request; with --aws, the account's endpoint.",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--stage", choices=STAGES, default=STAGES[0], help="default: %(default)s")
    p.add_argument("--aws", action="store_true", help="the account's endpoint")
    _add_workdir_option(p)
    p.set_defaults(func=cmd_invoke)

    p = commands.add_parser(
        "prune",
        help="remove old local runs and the objects only they wrote (never the registry)",
        description="Remove runs from the local state folder, keeping the newest --keep runs, "
        "the run of every registered model version and every object a registered version "
        "refers to. Refused while a run is executing.",
    )
    p.add_argument(
        "--keep",
        type=_non_negative_int,
        default=5,
        metavar="N",
        help="keep the newest N runs (default: 5)",
    )
    p.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        help="remove only runs started more than DAYS days ago",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say what would be removed, remove nothing"
    )
    _add_workdir_option(p)
    p.set_defaults(func=cmd_prune)
    return parser  # fmt: skip


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM (a CI cancel, `kill`) end a command as Ctrl-C does: exit 130.

    Also SIGINT sent to a background job, which the shell started with SIGINT ignored.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set signal handlers
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    if previous[signal.SIGINT] == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if previous[signal.SIGTERM] == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_sdk(args.verbose)
    from .aws import AwsError, explain, is_aws_error

    try:
        with _signals_interrupt():
            return args.func(args)
    except (UsageError, AwsError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:
        if not is_aws_error(error):
            raise
        print(f"error: {explain(error, args.command)}", file=sys.stderr)
        return EXIT_ERROR
