"""What a local execution would have cost on SageMaker: an estimate from the price table the
runner ships (``prices.json``: its date, region, sources and start-up assumptions).

Per step: on-demand price x instance count x (this machine's run time + the job kind's typical
start-up) / 3600. A cache hit, a step reused from another execution and a step that did not
run cost nothing; Model, RegisterModel, Condition and Fail steps run on no instance. An
endpoint bills per instance-hour while it is in service, which no execution's length says:
its hourly price is given apart. Storage, S3, data transfer and logs are not counted.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["CostEstimate", "StepCost", "estimate_cost", "instance_of", "price_table"]

# Step type -> the job kind of the price table's start-up, and where its instances are.
JOB_KINDS = {"Processing": "processing", "Training": "training", "Transform": "transform"}
_RESOURCES = {
    "Processing": ("ProcessingResources", "ClusterConfig"),
    "Training": ("ResourceConfig",),
    "Transform": ("TransformResources",),
}
NO_INSTANCE = {
    "Model": "CreateModel runs on no instance",
    "RegisterModel": "registering a model package runs on no instance",
    "Condition": "a condition is evaluated by the pipeline service",
    "Fail": "a Fail step runs on no instance",
    "Endpoint": "the endpoint bills per hour while in service (see its EndpointConfig)",
}


@cache
def price_table() -> dict[str, Any]:
    """The price table shipped with the runner (``prices.json``)."""
    text = resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


def instance_of(step_type: str, args: Mapping[str, Any]) -> dict[str, Any] | None:
    """The instances a step's resolved arguments ask for: ``{"InstanceType", "InstanceCount"}``
    for a job, ``{"ProductionVariants": [...]}`` for an EndpointConfig; None otherwise."""
    if step_type == "EndpointConfig":
        variants = [
            {"InstanceType": v.get("InstanceType"), "InstanceCount": v.get("InitialInstanceCount")}
            for v in args.get("ProductionVariants") or []
            if isinstance(v, Mapping) and v.get("InstanceType")
        ]
        return {"ProductionVariants": variants} if variants else None
    path = _RESOURCES.get(step_type)
    if path is None:
        return None
    node: Any = args
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping) or not isinstance(node.get("InstanceType"), str):
        return None
    count = node.get("InstanceCount")
    return {"InstanceType": node["InstanceType"], "InstanceCount": count if count else 1}


@dataclass
class StepCost:
    """One step's line of the estimate; ``usd`` is None when the table cannot price it."""

    name: str
    type: str
    usd: float | None = 0.0
    instance_type: str | None = None
    instance_count: int | None = None
    usd_per_hour: float | None = None
    run_seconds: float | None = None  # this machine's, not the instance's
    startup_seconds: float | None = None
    hourly_usd: float | None = None  # an endpoint's, while in service (EndpointConfig)
    note: str = ""

    @property
    def billed_seconds(self) -> float | None:
        if self.run_seconds is None or self.startup_seconds is None:
            return None
        return self.run_seconds + self.startup_seconds


@dataclass
class CostEstimate:
    """The estimate of one execution: a line per step, the total and the table it used."""

    region: str | None
    steps: list[StepCost] = field(default_factory=list)
    table: Mapping[str, Any] = field(default_factory=dict)

    @property
    def total_usd(self) -> float:
        """The priced steps' sum (see ``unpriced`` for the steps it leaves out)."""
        return sum(s.usd for s in self.steps if s.usd is not None)

    @property
    def unpriced(self) -> list[StepCost]:
        return [s for s in self.steps if s.usd is None]

    @property
    def hourly_usd(self) -> float:
        """What the endpoints this execution configured bill per hour while in service."""
        return sum(s.hourly_usd for s in self.steps if s.hourly_usd)

    @property
    def date(self) -> str:
        return str(self.table.get("date"))

    def summary(self) -> str:
        """One line: the total, what it leaves out, the table's date."""
        total = f"{'at least ' if self.unpriced else ''}{usd(self.total_usd)}"
        line = f"Estimated SageMaker cost of this execution: {total}"
        if self.unpriced:
            names = ", ".join(s.name for s in self.unpriced)
            line += f" ({names} not priced)"
        if self.hourly_usd:
            line += f", plus {usd(self.hourly_usd)} per hour while its endpoints are in service"
        return f"{line} (price table of {self.date}, {self.region}; see the report)"


def usd(value: float) -> str:
    """Dollars: four decimals under a dollar (a small job costs fractions of a cent)."""
    return f"${value:.4f}" if abs(value) < 1 else f"${value:,.2f}"


def _price(table: Mapping[str, Any], region: str | None, instance_type: str) -> float | None:
    entry = (table.get("regions", {}).get(region or "") or {}).get(instance_type)
    return float(entry["usd_per_hour"]) if entry else None


def _no_price(table: Mapping[str, Any], region: str | None, instance_type: str) -> str:
    return (
        f"no price for {instance_type} in {region} in the price table (dated {table.get('date')})"
    )


def _step_cost(step: Mapping[str, Any], region: str | None, table: Mapping[str, Any]) -> StepCost:
    name, stype = str(step.get("name")), str(step.get("type"))
    line = StepCost(name=name, type=stype)
    status = step.get("status")
    if stype == "EndpointConfig":
        variants = (step.get("instance") or {}).get("ProductionVariants") or []
        if status != "Succeeded" or not variants:
            line.note = "no endpoint configured"
            return line
        hourly, missing = 0.0, []
        for v in variants:
            price = _price(table, region, v["InstanceType"])
            if price is None:
                missing.append(v["InstanceType"])
            else:
                hourly += price * int(v.get("InstanceCount") or 1)
        line.hourly_usd = hourly or None
        line.note = "its endpoint bills per instance-hour while in service, not per execution"
        if missing:
            line.note += "; " + "; ".join(_no_price(table, region, t) for t in missing)
        return line
    if stype not in JOB_KINDS:
        line.note = NO_INSTANCE.get(stype, f"{stype} steps are not estimated")
        return line
    if step.get("cache_hit"):
        source = step["cache_hit"].get("source_execution_id")
        line.note = f"cache hit (execution {source}): no job runs, not billed"
        return line
    if step.get("selective_execution_result"):
        source = step["selective_execution_result"].get("SourcePipelineExecutionArn")
        line.note = f"reused from execution {source}: no job runs, not billed"
        return line
    if status not in ("Succeeded", "Failed", "Stopped") or step.get("duration_seconds") is None:
        line.note = "not run"
        return line
    instance = step.get("instance") or {}
    if not instance.get("InstanceType"):
        line.usd, line.note = None, "its instance type is not in the run record"
        return line
    line.instance_type = instance["InstanceType"]
    line.instance_count = int(instance.get("InstanceCount") or 1)
    line.run_seconds = float(step["duration_seconds"])
    line.startup_seconds = float(table["startup_seconds"][JOB_KINDS[stype]]["seconds"])
    line.usd_per_hour = _price(table, region, line.instance_type)
    if line.usd_per_hour is None:
        line.usd, line.note = None, _no_price(table, region, line.instance_type)
        return line
    line.usd = line.usd_per_hour * line.instance_count * (line.billed_seconds or 0) / 3600
    if status != "Succeeded":
        line.note = f"{status}: billed until it ended"
    return line


def estimate_cost(
    record: Mapping[str, Any], table: Mapping[str, Any] | None = None
) -> CostEstimate:
    """The estimate of the run record ``record`` (``run.json``'s content) with ``table``
    (default: the shipped :func:`price_table`)."""
    table = price_table() if table is None else table
    region = record.get("region")
    steps = [_step_cost(s, region, table) for s in record.get("steps") or []]
    return CostEstimate(region=region, steps=steps, table=table)
