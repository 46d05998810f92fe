"""Check a freshly deployed endpoint; put the previous config back if it fails.

Runs as the deploy pipeline's last step (in the scikit-learn container; locally, against
the runner's endpoint). It sends the rows the build pipeline held out (batch.csv) to the
endpoint through SageMaker Runtime, as any client would, and requires:

- every answer equals the batch transform's prediction for that row, made by the same
  model version when it was built (batch.csv.out);
- a malformed row (a field too many) is refused with an error, not answered.

If either fails, the endpoint goes back to the config it served before this deployment
(or, when there was none, the new endpoint is deleted), and the step fails: the execution
fails and the stage keeps what it had. smoke.json records what was checked.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

import boto3
from botocore.exceptions import ClientError

ROWS_PER_REQUEST = 100  # well under InvokeEndpoint's 6 MB for any tabular row


def fail(message: str) -> NoReturn:
    print(f"smoke_test: error: {message}", file=sys.stderr)
    raise SystemExit(1)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint-name", required=True)
    parser.add_argument("--previous-config", default="", help='"" when the endpoint is new')
    parser.add_argument("--rows-dir", default="/opt/ml/processing/input/rows")
    parser.add_argument("--expected-dir", default="/opt/ml/processing/input/expected")
    parser.add_argument("--output-dir", default="/opt/ml/processing/smoke")
    return parser.parse_args()


def read_lines(folder: Path, suffix: str) -> list[str]:
    files = sorted(p for p in folder.rglob(f"*{suffix}") if p.is_file())
    if not files:
        fail(f"no *{suffix} file in {folder}")
    return [line for path in files for line in path.read_text().splitlines() if line.strip()]


def check(runtime, endpoint: str, rows: list[str], expected: list[str]) -> list[str]:
    """What is wrong with the endpoint's answers; empty when nothing is."""
    problems = []
    if len(rows) != len(expected):
        return [f"{len(rows)} held-out rows but {len(expected)} batch predictions"]
    answers: list[str] = []
    for start in range(0, len(rows), ROWS_PER_REQUEST):
        body = "\n".join(rows[start : start + ROWS_PER_REQUEST]) + "\n"
        try:
            response = runtime.invoke_endpoint(
                EndpointName=endpoint, Body=body.encode(), ContentType="text/csv", Accept="text/csv"
            )
        except ClientError as error:
            return [f"rows {start + 1}-{start + ROWS_PER_REQUEST} were refused: {error}"]
        answers += [a for a in response["Body"].read().decode().splitlines() if a.strip()]
    if len(answers) != len(rows):
        return [f"{len(rows)} rows sent, {len(answers)} answers received"]
    differ = [i for i, (a, e) in enumerate(zip(answers, expected, strict=True)) if a != e]
    for i in differ[:5]:
        problems.append(f"row {i + 1}: the endpoint answered {answers[i]!r}, batch {expected[i]!r}")
    if differ:
        problems.append(f"{len(differ)} of {len(rows)} answers differ from the batch predictions")
    malformed = rows[0] + ",an extra field"
    try:
        runtime.invoke_endpoint(
            EndpointName=endpoint, Body=malformed.encode(), ContentType="text/csv"
        )
        problems.append("a malformed row (one field too many) was answered instead of refused")
    except ClientError as error:
        if error.response["Error"]["Code"] != "ModelError":
            problems.append(f"a malformed row got an unexpected error: {error}")
    return problems


def roll_back(sagemaker, endpoint: str, previous: str) -> str:
    if previous:
        sagemaker.update_endpoint(EndpointName=endpoint, EndpointConfigName=previous)
        sagemaker.get_waiter("endpoint_in_service").wait(EndpointName=endpoint)
        return f"{endpoint} serves {previous} again"
    sagemaker.delete_endpoint(EndpointName=endpoint)
    return f"{endpoint} was new, and is deleted"


def main() -> None:
    args = parse_args()
    rows = read_lines(Path(args.rows_dir), ".csv")
    expected = read_lines(Path(args.expected_dir), ".out")
    problems = check(boto3.client("sagemaker-runtime"), args.endpoint_name, rows, expected)
    report = {
        "endpoint": args.endpoint_name,
        "rows": len(rows),
        "passed": not problems,
        "problems": problems,
    }
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    if problems:
        report["rollback"] = roll_back(
            boto3.client("sagemaker"), args.endpoint_name, args.previous_config
        )
    (out / "smoke.json").write_text(json.dumps(report, indent=2))
    if problems:
        fail("; ".join(problems) + f". Rolled back: {report['rollback']}.")
    print(f"smoke_test: {len(rows)} rows answered as in batch; a malformed row was refused")


if __name__ == "__main__":
    main()
