"""What an execution would have cost on SageMaker: the estimate and its price table."""

from __future__ import annotations

import pytest

from sagemaker_pipelines_local import estimate_cost, price_table
from sagemaker_pipelines_local.report import render_cost, render_report
from test_runner import read_run
from test_stepcache import CACHED, pipeline, run

# Round figures, so the expected costs can be worked out by hand.
TABLE = {
    "date": "2026-01-02",
    "currency": "USD",
    "pricing_page": "https://aws.amazon.com/sagemaker/ai/pricing/",
    "regions": {"us-east-1": {"ml.m5.large": {"usd_per_hour": 0.36, "sources": ["s"]}}},
    "sources": {"s": "a source"},
    "startup_seconds": {
        "processing": {"seconds": 120, "basis": "p"},
        "training": {"seconds": 60, "basis": "t"},
        "transform": {"seconds": 120, "basis": "b"},
    },
}


def job(name, stype, seconds, instance_type="ml.m5.large", count=1, **extra):
    return {
        "name": name,
        "type": stype,
        "status": "Succeeded",
        "duration_seconds": seconds,
        "instance": {"InstanceType": instance_type, "InstanceCount": count},
        **extra,
    }


def record(*steps, region="us-east-1"):
    return {"region": region, "steps": list(steps)}


def test_a_job_costs_its_price_times_its_instances_times_run_plus_start_up():
    estimate = estimate_cost(
        record(job("Preprocess", "Processing", 60, count=2), job("Train", "Training", 30)), TABLE
    )
    pre, train = estimate.steps
    assert pre.usd == pytest.approx(0.36 * 2 * (60 + 120) / 3600)  # $0.036
    assert (pre.run_seconds, pre.startup_seconds, pre.instance_count) == (60, 120, 2)
    assert train.usd == pytest.approx(0.36 * (30 + 60) / 3600)  # $0.009
    assert estimate.total_usd == pytest.approx(0.045)
    assert estimate.summary() == (
        "Estimated SageMaker cost of this execution: $0.0450 "
        "(price table of 2026-01-02, us-east-1; see the report)"
    )


def test_cache_hits_reused_and_unrun_steps_and_steps_on_no_instance_cost_nothing():
    estimate = estimate_cost(
        record(
            job("Preprocess", "Processing", 50, cache_hit={"source_execution_id": "abc"}),
            job(
                "Train",
                "Training",
                0,
                selective_execution_result={"SourcePipelineExecutionArn": "arn:x"},
            ),
            {**job("BatchTransform", "Transform", None), "status": "NotRun"},
            job("Evaluate", "Processing", 10),
            {"name": "CreateModel", "type": "Model", "status": "Succeeded"},
            {"name": "RegisterModel", "type": "RegisterModel", "status": "Succeeded"},
            {"name": "QualityGate", "type": "Condition", "status": "Succeeded"},
            {"name": "Fail", "type": "Fail", "status": "NotRun"},
        ),
        TABLE,
    )
    by_name = {line.name: line for line in estimate.steps}
    assert by_name["Preprocess"].usd == 0
    assert "cache hit (execution abc)" in by_name["Preprocess"].note
    assert by_name["Train"].usd == 0 and "reused from execution arn:x" in by_name["Train"].note
    assert by_name["BatchTransform"].usd == 0 and by_name["BatchTransform"].note == "not run"
    for name in ("CreateModel", "RegisterModel", "QualityGate", "Fail"):
        assert by_name[name].usd == 0 and by_name[name].note
    assert estimate.total_usd == pytest.approx(by_name["Evaluate"].usd) == 0.36 * 130 / 3600


def test_an_instance_type_the_table_lacks_is_named_not_priced():
    estimate = estimate_cost(
        record(job("Preprocess", "Processing", 60), job("Train", "Training", 60, "ml.p9.huge")),
        TABLE,
    )
    train = estimate.steps[1]
    assert train.usd is None
    assert train.note == (
        "no price for ml.p9.huge in us-east-1 in the price table (dated 2026-01-02)"
    )
    assert [s.name for s in estimate.unpriced] == ["Train"]
    assert estimate.total_usd == pytest.approx(0.018)
    assert "at least $0.0180 (Train not priced)" in estimate.summary()
    # A region the table has no prices for prices nothing.
    elsewhere = estimate_cost(record(job("Preprocess", "Processing", 60), region="ap-south-1"))
    assert elsewhere.steps[0].usd is None and "in ap-south-1" in elsewhere.steps[0].note


def test_an_endpoint_is_priced_per_hour_apart_from_the_execution():
    config = {
        "name": "EndpointConfig",
        "type": "EndpointConfig",
        "status": "Succeeded",
        "instance": {"ProductionVariants": [{"InstanceType": "ml.m5.large", "InstanceCount": 2}]},
    }
    estimate = estimate_cost(record(config), TABLE)
    assert estimate.total_usd == 0
    assert estimate.hourly_usd == pytest.approx(0.72)
    assert "plus $0.7200 per hour while its endpoints are in service" in estimate.summary()


def test_the_shipped_table_has_its_date_sources_and_start_up_assumptions():
    table = price_table()
    assert table["date"] and table["pricing_page"].startswith("https://aws.amazon.com/")
    for region, prices in table["regions"].items():
        for instance_type, entry in prices.items():
            assert entry["usd_per_hour"] > 0, (region, instance_type)
            assert entry["sources"] and set(entry["sources"]) <= set(table["sources"])
    for kind in ("processing", "training", "transform"):
        assert table["startup_seconds"][kind]["seconds"] > 0
        assert table["startup_seconds"][kind]["basis"]
    # The generated project's default instance type in its default region.
    assert table["regions"]["us-east-1"]["ml.m5.large"]["usd_per_hour"] == 0.115


def test_the_report_has_a_cost_section_with_the_table_it_used():
    rec = record(job("Preprocess", "Processing", 60), job("Train", "Training", 60, "ml.p9.huge"))
    html = render_cost(rec, TABLE)
    assert "What it would cost on SageMaker (estimate)" in html
    assert "An estimate, not a bill" in html and "this machine" in html
    assert "no price for ml.p9.huge" in html and "at least $0.0180" in html
    assert "Price table of 2026-01-02, region us-east-1" in html
    assert "https://aws.amazon.com/sagemaker/ai/pricing/" in html and "a source" in html
    full = render_report({**rec, "pipeline_name": "demo", "status": "Succeeded"})
    assert "What it would cost on SageMaker (estimate)" in full


def test_a_run_records_its_instances_and_its_report_prices_them(store, workdir, tmp_path):
    first = run(workdir, pipeline(store, tmp_path, cache=CACHED))
    second = run(workdir, pipeline(store, tmp_path, cache=CACHED))
    produce = read_run(first)["steps"][0]
    assert produce["instance"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1}
    [ran, _] = estimate_cost(read_run(first)).steps
    assert ran.usd == pytest.approx(0.115 * (produce["duration_seconds"] + 120) / 3600)
    [hit, consume] = estimate_cost(read_run(second)).steps
    assert hit.usd == 0 and "cache hit" in hit.note and consume.usd > 0
    html = second.report_path.read_text()
    assert "What it would cost on SageMaker (estimate)" in html
    assert f"cache hit (execution {first.execution_id}): no job runs, not billed" in html
