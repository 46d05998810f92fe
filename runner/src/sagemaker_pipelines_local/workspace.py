"""The workspace folder (``.local/`` in a generated project): the one owner of its layout.

::

    <root>/
      s3/<bucket>/<key>               the object store (LocalObjectStore)
      models/<model name>.json        Model steps' records
      registry/<group>/<version>.json the model registry (LocalModelRegistry)
      endpoint-configs/<name>.json    EndpointConfig steps' records
      endpoints/<name>.json           each endpoint's record (DescribeEndpoint), as it serves
      endpoints/<name>/<config>/      what it serves under that config: model/, serving.json
      endpoints/<name>/logs/          the model server's logs
      cache/<pipeline>/<step>/<key>.json  step caching: a step's latest run per cache key
      runs/<execution id>/
        run.json                      the run record
        report.html                   the report
        bin/                          python links for shell entrypoints, while it runs
        steps/<step name>/            each step's logs, and work/ while it runs

Every other module asks a :class:`Workspace` for a path; none joins these names itself.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["Workspace"]


class Workspace:
    """Paths into one workspace folder; creating the object creates nothing on disk."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @classmethod
    def of(cls, where: Workspace | str | os.PathLike[str]) -> Workspace:
        """``where`` itself when it is a workspace, else the workspace at that folder."""
        return where if isinstance(where, Workspace) else cls(where)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    # ------------------------------------------------------------------ the object store
    @property
    def s3_root(self) -> Path:
        """The folder whose sub-folders are the buckets of the object store."""
        return self.root / "s3"

    # ------------------------------------------------------------------ models, registry
    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def model_record(self, model_name: str) -> Path:
        """The record a Model step wrote for ``model_name``."""
        return self.models_dir / f"{model_name}.json"

    @property
    def registry_root(self) -> Path:
        return self.root / "registry"

    def model_package_group_dir(self, group: str) -> Path:
        return self.registry_root / group

    def model_package(self, group: str, version: int) -> Path:
        return self.model_package_group_dir(group) / f"{int(version)}.json"

    # ------------------------------------------------------------------ step caching
    @property
    def step_cache_dir(self) -> Path:
        return self.root / "cache"

    def step_cache_entry(self, pipeline_name: str, step: str, key: str) -> Path:
        """The latest successful run of ``step`` of ``pipeline_name`` with cache key ``key``."""
        return self.step_cache_dir / pipeline_name / step / f"{key}.json"

    # ------------------------------------------------------------------ endpoints
    @property
    def endpoint_configs_dir(self) -> Path:
        return self.root / "endpoint-configs"

    def endpoint_config_record(self, name: str) -> Path:
        return self.endpoint_configs_dir / f"{name}.json"

    @property
    def endpoints_dir(self) -> Path:
        return self.root / "endpoints"

    def endpoint_record(self, name: str) -> Path:
        """``DescribeEndpoint`` of the endpoint ``name``: the config it serves, its status."""
        return self.endpoints_dir / f"{name}.json"

    def endpoint_serving_dir(self, name: str, config_name: str) -> Path:
        """What the endpoint serves under one config: ``model/`` and ``serving.json``."""
        return self.endpoints_dir / name / config_name

    def endpoint_logs_dir(self, name: str) -> Path:
        return self.endpoints_dir / name / "logs"

    def version_serving_dir(self, group: str, version: int) -> Path:
        """A registered version served on its own, without an endpoint (``serve``)."""
        return self.root / "serving" / group / str(int(version))

    # ------------------------------------------------------------------ runs
    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run_dir(self, execution_id: str) -> Path:
        return self.runs_dir / execution_id

    def run_record(self, execution_id: str) -> Path:
        return self.run_dir(execution_id) / "run.json"

    def run_report(self, execution_id: str) -> Path:
        return self.run_dir(execution_id) / "report.html"

    def run_report_error(self, execution_id: str) -> Path:
        """Why the report could not be written, when it could not."""
        return self.run_dir(execution_id) / "report-error.log"

    def run_bin_dir(self, execution_id: str) -> Path:
        return self.run_dir(execution_id) / "bin"

    def step_dir(self, execution_id: str, step_name: str) -> Path:
        """The step's folder: its logs (the job names them) and its work folder."""
        return self.run_dir(execution_id) / "steps" / step_name

    def step_work_dir(self, execution_id: str, step_name: str) -> Path:
        """Where the step's job runs (its ``/opt/ml``); removed when the step succeeds."""
        return self.step_dir(execution_id, step_name) / "work"

    def execution_ids(self) -> Iterator[str]:
        """The execution id of every folder under ``runs/`` (in no particular order)."""
        if not self.runs_dir.is_dir():
            return
        for path in self.runs_dir.iterdir():
            if path.is_dir():
                yield path.name
