"""Local runner: executes the SageMaker pipeline definition JSON on this machine.

No AWS and no Docker: S3 is a folder (``<workdir>/s3``), each job runs the step's script
with this Python interpreter in a temporary ``/opt/ml`` layout, and the model registry is
a folder of JSON files. Anything the runner cannot reproduce faithfully is refused with
:class:`UnsupportedFeatureError` rather than skipped.
"""

from .expressions import UnsupportedFeatureError
from .registry import LocalModelRegistry
from .runner import ExecutionResult, StepEvent, run_pipeline
from .store import LocalObjectStore, MissingObjectError

__all__ = [
    "ExecutionResult",
    "LocalModelRegistry",
    "LocalObjectStore",
    "MissingObjectError",
    "StepEvent",
    "UnsupportedFeatureError",
    "run_pipeline",
]
