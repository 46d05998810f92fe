"""Run a SageMaker Pipelines definition on this machine: no AWS account, no Docker.

The runner interprets the definition JSON that ``pipeline.definition()`` returns (SDK v2 or
v3): S3 is a folder of the workspace, each Processing, Training and Transform job runs the
step's script in a Python environment with the step image's library versions (built once
and cached, :class:`StepEnvironments`), in a temporary ``/opt/ml`` layout, with only the
environment a container gets, and the model
registry is a folder of JSON files. What it cannot reproduce faithfully is refused by name
with :class:`UnsupportedFeatureError` before any step runs.

The public API:

- :func:`run_pipeline` runs a definition and returns an :class:`ExecutionResult` (the run
  record, ``<workdir>/runs/<execution id>/run.json``, and ``report.html``); ``progress``
  receives a :class:`StepEvent` per step status change.
- :func:`resolve_parameters` reads the parameters' values from a definition (defaults, then
  overrides): where the pipeline reads its input, for one.
- :class:`LocalObjectStore` is the workspace's S3 (``<workdir>/s3/<bucket>/<key>``): put the
  objects the definition reads there; :class:`MissingObjectError` names a missing one.
- :class:`LocalModelRegistry` lists, reads and approves the model packages that RegisterModel
  steps wrote
  (``<workdir>/registry/<group>/``).
- :class:`Workspace` owns the layout of the workspace folder; the classes above take one
  (or the folder's path).
- :func:`recover_abandoned_runs` marks ``Stopped`` the records a killed runner left
  ``Executing`` (``run_pipeline`` calls it; call it where the workspace is opened).
- :func:`prune_workspace` removes old runs and the objects only they wrote, keeping the
  registry, what registered versions refer to and the newest runs.
- :mod:`sagemaker_pipelines_local.offline` (extra ``offline``) builds a ``Pipeline`` object's
  definition with no account and captures the SDK's uploads into the object store.
- :class:`ModelServer` serves one model as its inference container does (``/ping``,
  ``/invocations``, the model's handlers, the image's Python); :class:`RuntimeAPI` answers
  SageMaker Runtime's ``InvokeEndpoint`` for such servers, so boto3 reaches them through
  an endpoint override. Outside a run: :func:`read_endpoint` gives an endpoint's record (its
  config, its status), :func:`delete_endpoint` removes it, :func:`endpoint_model_package`
  names the version it serves, :func:`serving_spec` gives its server as its Endpoint step
  left it, and :func:`version_serving_spec` a registered version's server with no endpoint
  (:class:`EndpointNotFoundError` when there is no such endpoint).
- :func:`estimate_cost` estimates what a run record would have cost on SageMaker, from the
  price table the runner ships (:func:`price_table`: its date, region and sources).
- Warm pools (:mod:`.warmpool`): a step's ``python script.py`` forks from a server of the
  image's Python with its libraries imported, which stays up ``run_pipeline(warm_pool=...)``
  seconds after its last step; :func:`stop_warm_pools` stops them.
- :class:`DefinitionCache` keeps built definitions (and the SDK's uploads) by a key of what
  they were built from, so an unchanged pipeline is not built again.
"""

from .buildcache import CachedDefinition, DefinitionCache
from .cost import CostEstimate, estimate_cost, price_table
from .endpoints import (
    EndpointNotFoundError,
    delete_endpoint,
    endpoint_model_package,
    read_endpoint,
    serving_spec,
    version_serving_spec,
)
from .expressions import UnsupportedFeatureError
from .image import StepEnvironments
from .prune import PruneResult, WorkspaceBusyError, prune_workspace
from .registry import CorruptModelPackageError, LocalModelRegistry
from .runner import ExecutionResult, StepEvent, resolve_parameters, run_pipeline, steps_from
from .runs import recover_abandoned_runs
from .selective import latest_execution, selective_execution_config
from .serving import (
    InvocationResult,
    ModelServer,
    RuntimeAPI,
    ServingError,
    ServingSpec,
    request_model_server,
)
from .store import LocalObjectStore, MissingObjectError
from .warmpool import stop_warm_pools
from .workspace import Workspace

__all__ = [
    "CachedDefinition",
    "CorruptModelPackageError",
    "CostEstimate",
    "DefinitionCache",
    "EndpointNotFoundError",
    "ExecutionResult",
    "InvocationResult",
    "LocalModelRegistry",
    "LocalObjectStore",
    "MissingObjectError",
    "ModelServer",
    "PruneResult",
    "RuntimeAPI",
    "ServingError",
    "ServingSpec",
    "StepEnvironments",
    "StepEvent",
    "UnsupportedFeatureError",
    "Workspace",
    "WorkspaceBusyError",
    "delete_endpoint",
    "endpoint_model_package",
    "estimate_cost",
    "latest_execution",
    "price_table",
    "prune_workspace",
    "read_endpoint",
    "request_model_server",
    "recover_abandoned_runs",
    "resolve_parameters",
    "run_pipeline",
    "selective_execution_config",
    "serving_spec",
    "steps_from",
    "stop_warm_pools",
    "version_serving_spec",
]
