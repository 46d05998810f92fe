"""Self-contained HTML report of a local pipeline execution (inline CSS and SVG, no JS)."""

from __future__ import annotations

import csv
import html
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .cost import estimate_cost, usd
from .store import LocalObjectStore

__all__ = ["render_cost", "render_report", "write_report"]

METRIC_SECTIONS = (
    "multiclass_classification_metrics",
    "binary_classification_metrics",
    "regression_metrics",
)
STATUS_STYLE = {
    "Succeeded": ("#e8f5e9", "#2e7d32", "solid"),
    "Failed": ("#ffebee", "#c62828", "solid"),
    "Stopped": ("#fff3e0", "#ef6c00", "solid"),
    "NotRun": ("#f5f5f5", "#9e9e9e", "dashed"),
    "Executing": ("#e3f2fd", "#1565c0", "solid"),
    "Pending": ("#e3f2fd", "#1565c0", "dashed"),
}
MAX_POINTS = 5000

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 8px} h2{font-size:17px;margin:28px 0 8px}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#fafafa} td.num{text-align:right;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;color:#fff}
.Succeeded{background:#2e7d32}.Failed{background:#c62828}.Stopped{background:#ef6c00}
.NotRun{background:#9e9e9e}.Executing,.Pending{background:#1565c0}
.reason{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.muted{color:#666;font-size:12px} .dag{overflow-x:auto;border:1px solid #eee;padding:8px}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return "" if value is None else str(value)


# ---------------------------------------------------------------------------- DAG
def _layers(steps: list[Mapping[str, Any]]) -> dict[str, int]:
    names = {s["name"] for s in steps}
    parents: dict[str, set[str]] = {}
    for s in steps:
        ps = {d for d in s.get("depends_on") or [] if d in names}
        branch = s.get("branch")
        if branch and branch.get("condition") in names:
            ps.add(branch["condition"])
        parents[s["name"]] = ps
    layer: dict[str, int] = {}

    def depth(name: str, seen: frozenset[str]) -> int:
        if name in layer:
            return layer[name]
        if name in seen:
            return 0
        value = 1 + max((depth(p, seen | {name}) for p in parents[name]), default=-1)
        layer[name] = value
        return value

    for s in steps:
        depth(s["name"], frozenset())
    return layer


def render_dag(steps: list[Mapping[str, Any]]) -> str:
    """Inline SVG of the step graph; boxes coloured by status."""
    if not steps:
        return ""
    box_w, box_h, gap_x, gap_y, pad = 170, 48, 60, 22, 16
    layer = _layers(steps)
    columns: dict[int, list[str]] = {}
    for s in steps:
        columns.setdefault(layer[s["name"]], []).append(s["name"])
    pos: dict[str, tuple[float, float]] = {}
    for col, names in columns.items():
        for row, name in enumerate(names):
            pos[name] = (pad + col * (box_w + gap_x), pad + row * (box_h + gap_y))
    width = pad * 2 + (max(columns) + 1) * (box_w + gap_x) - gap_x
    height = pad * 2 + max(len(v) for v in columns.values()) * (box_h + gap_y) - gap_y
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="pipeline graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#777"/></marker></defs>',
    ]
    by_name = {s["name"]: s for s in steps}
    for s in steps:
        tx, ty = pos[s["name"]]
        sources: list[tuple[str, str | None]] = [
            (d, None) for d in s.get("depends_on") or [] if d in pos
        ]
        branch = s.get("branch")
        if branch and branch.get("condition") in pos:
            sources.append((branch["condition"], "if" if branch.get("outcome") else "else"))
        for src, label in sources:
            sx, sy = pos[src]
            x1, y1 = sx + box_w, sy + box_h / 2
            x2, y2 = tx, ty + box_h / 2
            mid = (x1 + x2) / 2
            dash = ' stroke-dasharray="5,4"' if label == "else" else ""
            parts.append(
                f'<path d="M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} '
                f'{x2:.1f},{y2:.1f}" fill="none" stroke="#777" stroke-width="1.4"{dash} '
                'marker-end="url(#arrow)"/>'
            )
            if label:
                parts.append(
                    f'<text x="{mid:.1f}" y="{(y1 + y2) / 2 - 4:.1f}" font-size="11" '
                    f'fill="#555" text-anchor="middle">{_e(label)}</text>'
                )
    for name, (x, y) in pos.items():
        s = by_name[name]
        status = s.get("status") or "Pending"
        fill, stroke, style = STATUS_STYLE.get(status, STATUS_STYLE["Pending"])
        dash = ' stroke-dasharray="6,4"' if style == "dashed" else ""
        label = name if len(name) <= 22 else name[:21] + "\u2026"
        duration = s.get("duration_seconds")
        sub = f"{s.get('type', '')} \u00b7 {status}"
        if isinstance(duration, (int, float)):
            sub += f" \u00b7 {duration:.1f}s"
        parts.append(
            f'<g class="step" data-status="{_e(status)}"><title>{_e(name)}: {_e(status)}</title>'
            f'<rect x="{x}" y="{y}" width="{box_w}" height="{box_h}" rx="7" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="2"{dash}/>'
            f'<text x="{x + box_w / 2}" y="{y + 20}" font-size="13" font-weight="600" '
            f'text-anchor="middle" fill="#222">{_e(label)}</text>'
            f'<text x="{x + box_w / 2}" y="{y + 37}" font-size="11" text-anchor="middle" '
            f'fill="{stroke}">{_e(sub)}</text></g>'
        )
    parts.append("</svg>")
    return "".join(parts)


# ---------------------------------------------------------------------------- metrics
def _metric_rows(section: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    rows = []
    for metric, entry in section.items():
        if isinstance(entry, Mapping) and "value" in entry:
            value = entry["value"]
            if isinstance(value, (int, float, str)) and not isinstance(value, bool):
                rows.append((metric, value, entry.get("standard_deviation")))
        elif isinstance(entry, (int, float)) and not isinstance(entry, bool):
            rows.append((metric, entry, None))
    return rows


def render_metrics_table(section: Mapping[str, Any]) -> str:
    rows = _metric_rows(section)
    if not rows:
        return ""
    out = [
        '<table class="metrics"><tr><th>metric</th><th>value</th><th>standard deviation</th></tr>'
    ]
    for metric, value, std in rows:
        out.append(
            f'<tr><td>{_e(metric)}</td><td class="num">{_e(_fmt(value))}</td>'
            f'<td class="num">{_e(_fmt(std))}</td></tr>'
        )
    out.append("</table>")
    return "".join(out)


def render_confusion_matrix(matrix: Mapping[str, Any]) -> str:
    """``{actual: {predicted: count}}`` as a table shaded by count."""
    actual = [str(a) for a in matrix]
    predicted: list[str] = []
    for row in matrix.values():
        if isinstance(row, Mapping):
            for p in row:
                if str(p) not in predicted:
                    predicted.append(str(p))
    labels = actual + [p for p in predicted if p not in actual]
    counts: dict[tuple[str, str], float] = {}
    for a, row in matrix.items():
        if isinstance(row, Mapping):
            for p, c in row.items():
                try:
                    counts[(str(a), str(p))] = float(c)
                except (TypeError, ValueError):
                    continue
    top = max(counts.values(), default=0) or 1
    out = [
        '<table class="confusion"><tr><th>actual \\ predicted</th>',
        *[f"<th>{_e(p)}</th>" for p in labels],
        "</tr>",
    ]
    for a in labels:
        if a not in actual:
            continue
        out.append(f"<tr><th>{_e(a)}</th>")
        for p in labels:
            c = counts.get((a, p), 0)
            alpha = c / top
            color = "#fff" if alpha > 0.55 else "#222"
            out.append(
                f'<td class="num" style="background:rgba(21,101,192,{alpha:.2f});color:{color}">'
                f"{_e(_fmt(int(c) if float(c).is_integer() else c))}</td>"
            )
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def _read_predictions(path: Path) -> list[tuple[float, float]]:
    points = []
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"actual", "predicted"} <= set(reader.fieldnames):
            return []
        for row in reader:
            try:
                a, p = float(row["actual"]), float(row["predicted"])
            except (TypeError, ValueError):
                continue
            if math.isfinite(a) and math.isfinite(p):
                points.append((a, p))
            if len(points) >= MAX_POINTS:
                break
    return points


def render_residual_plot(points: list[tuple[float, float]]) -> str:
    """SVG scatter of predicted (x) against residual = actual - predicted (y)."""
    if not points:
        return ""
    w, h, ml, mr, mt, mb = 520, 320, 60, 16, 16, 44
    xs = [p for _a, p in points]
    ys = [a - p for a, p in points]
    x0, x1 = min(xs), max(xs)
    ylim = max(abs(min(ys)), abs(max(ys))) or 1.0
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1

    def sx(x: float) -> float:
        return ml + (x - x0) / (x1 - x0) * (w - ml - mr)

    def sy(y: float) -> float:
        return mt + (ylim - y) / (2 * ylim) * (h - mt - mb)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" role="img" aria-label="residual plot">',
        f'<rect x="{ml}" y="{mt}" width="{w - ml - mr}" height="{h - mt - mb}" fill="#fcfcfc" '
        'stroke="#ccc"/>',
        f'<line x1="{ml}" x2="{w - mr}" y1="{sy(0):.1f}" y2="{sy(0):.1f}" stroke="#c62828" '
        'stroke-dasharray="4,3"/>',
    ]
    for x, y in zip(xs, ys, strict=True):
        parts.append(
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.6" fill="#1565c0" fill-opacity="0.6"/>'
        )
    for value, anchor, xpos in ((x0, "start", ml), (x1, "end", w - mr)):
        parts.append(
            f'<text x="{xpos}" y="{h - mb + 16}" font-size="11" text-anchor="{anchor}">'
            f"{_e(_fmt(float(value)))}</text>"
        )
    for value in (ylim, 0.0, -ylim):
        parts.append(
            f'<text x="{ml - 6}" y="{sy(value) + 4:.1f}" font-size="11" text-anchor="end">'
            f"{_e(_fmt(float(value)))}</text>"
        )
    parts.append(
        f'<text x="{(ml + w - mr) / 2}" y="{h - 8}" font-size="12" text-anchor="middle">'
        "predicted</text>"
        f'<text x="14" y="{(mt + h - mb) / 2}" font-size="12" text-anchor="middle" '
        f'transform="rotate(-90 14 {(mt + h - mb) / 2})">residual (actual \u2212 predicted)</text>'
        "</svg>"
    )
    return "".join(parts)


def _predictions_file(
    step: Mapping[str, Any], pf: Mapping[str, Any], store: LocalObjectStore | None
) -> Path | None:
    """``predictions.csv`` in the step output that holds the property file, if any."""
    source = pf.get("s3_uri") or ""
    candidates: list[Path] = []
    for out in step.get("outputs") or []:
        uri = out.get("s3_uri")
        if uri and source.startswith(uri.rstrip("/") + "/"):
            local = out.get("local_path")
            if local:
                candidates.append(Path(local))
            elif store is not None:
                candidates.append(store.uri_to_path(uri))
    if pf.get("local_path"):
        candidates.append(Path(pf["local_path"]).parent)
    for folder in candidates:
        direct = folder / "predictions.csv"
        if direct.is_file():
            return direct
        if folder.is_dir():
            for found in sorted(folder.rglob("predictions.csv")):
                return found
    return None


def render_champion_challenger(duel: Mapping[str, Any]) -> str:
    """The new model against the group's Approved version on the same rows (the
    ``champion_challenger`` section an evaluation report may carry): both scores, the
    margin, what the gate requires and whether the new model meets it."""
    version = duel.get("champion_version")
    champion = "none Approved" if version is None else f"version {version}"
    relation = "at most" if duel.get("lower_is_better") else "at least"
    passed = bool(duel.get("passed"))
    rows = [
        ("metric", duel.get("metric")),
        ("new model (challenger)", _fmt(duel.get("challenger"))),
        (f"champion ({champion})", _fmt(duel.get("champion"))),
        ("margin", _fmt(duel.get("margin"))),
        ("required", f"{relation} {_fmt(duel.get('required'))}"),
    ]
    verdict = "Succeeded" if passed else "Failed"
    body = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
    return (
        "<h4>champion and challenger</h4>"
        f'<p><span class="badge {verdict}">{"beats or matches" if passed else "worse than"} '
        f"the champion</span> {_e(duel.get('summary'))}</p>"
        f'<table class="metrics">{body}</table>'
    )


def render_evaluations(record: Mapping[str, Any], store: LocalObjectStore | None) -> str:
    out: list[str] = []
    for step in record.get("steps") or []:
        for name, pf in (step.get("property_files") or {}).items():
            value = pf.get("value")
            if not isinstance(value, Mapping):
                continue
            sections = [k for k in METRIC_SECTIONS if isinstance(value.get(k), Mapping)]
            if not sections:
                continue
            out.append(
                f"<h3>{_e(step['name'])} \u00b7 {_e(name)}</h3>"
                f'<p class="muted">{_e(pf.get("s3_uri"))}</p>'
            )
            for section in sections:
                data = value[section]
                out.append(f"<h4>{_e(section)}</h4>")
                out.append(render_metrics_table(data))
                matrix = data.get("confusion_matrix")
                if isinstance(matrix, Mapping) and matrix:
                    out.append("<h4>confusion matrix</h4>")
                    out.append(render_confusion_matrix(matrix))
                if section == "regression_metrics":
                    path = _predictions_file(step, pf, store)
                    if path is not None:
                        plot = render_residual_plot(_read_predictions(path))
                        if plot:
                            out.append(f"<h4>residuals</h4><p class='muted'>{_e(path)}</p>{plot}")
            duel = value.get("champion_challenger")
            if isinstance(duel, Mapping):
                out.append(render_champion_challenger(duel))
    if not out:
        return ""
    return "<h2>Model quality</h2>" + "".join(out)


# ---------------------------------------------------------------------------- provenance
def render_registered_versions(record: Mapping[str, Any]) -> str:
    """The model package versions the run registered, with what they record about where they
    came from: CustomerMetadataProperties, MetadataProperties and the model card's status."""
    out: list[str] = []
    for step in record.get("steps") or []:
        props = step.get("properties") or {}
        if step.get("type") != "RegisterModel" or "ModelPackageVersion" not in props:
            continue
        rows = [
            (key, value)
            for key, value in sorted((props.get("CustomerMetadataProperties") or {}).items())
        ]
        rows += [
            (f"MetadataProperties.{key}", value)
            for key, value in sorted((props.get("MetadataProperties") or {}).items())
        ]
        card = props.get("ModelCard") or {}
        if card:
            rows.append(("ModelCard.ModelCardStatus", card.get("ModelCardStatus")))
        out.append(
            f"<h3>{_e(step['name'])} \u00b7 version {_e(props['ModelPackageVersion'])} of "
            f"{_e(props.get('ModelPackageGroupName'))}</h3>"
            f'<p class="muted">{_e(props.get("ModelPackageArn"))}</p>'
            "<table><tr><th>recorded</th><th>value</th></tr>"
            + "".join(f"<tr><td>{_e(k)}</td><td>{_e(_fmt(v))}</td></tr>" for k, v in rows)
            + "</table>"
        )
    if not out:
        return ""
    return "<h2>Registered versions</h2>" + "".join(out)


# ---------------------------------------------------------------------------- cost
def render_cost(record: Mapping[str, Any], table: Mapping[str, Any] | None = None) -> str:
    """What the execution would have cost on SageMaker: a line per step, the total, and the
    price table's date, region, sources and assumptions (see :mod:`.cost`)."""
    estimate = estimate_cost(record, table)
    table = estimate.table
    out = [
        "<h2>What it would cost on SageMaker (estimate)</h2>",
        '<p class="muted">An estimate, not a bill: per step, the on-demand price of its '
        "instance type \u00d7 its instance count \u00d7 (its run time on this machine + the "
        "typical start-up SageMaker bills before the script runs) / 3600. The run time is this "
        "machine's, not the instance's: the same script may take longer or shorter there. "
        "Cache hits and steps reused from another execution are free; Model, RegisterModel, "
        "Condition and Fail steps run on no instance. Storage, S3, data transfer and logs are "
        "not counted. <code>start --wait</code> prints what the account reports per job.</p>",
        "<table><tr><th>step</th><th>type</th><th>instance</th><th>USD per hour</th>"
        "<th>seconds (run + start-up)</th><th>estimate</th><th>note</th></tr>",
    ]
    for line in estimate.steps:
        instance = (
            f"{line.instance_type} \u00d7 {line.instance_count}" if line.instance_type else ""
        )
        seconds = (
            f"{line.run_seconds:.1f} + {line.startup_seconds:.0f}"
            if line.billed_seconds is not None
            else ""
        )
        price = _fmt(line.usd_per_hour) if line.usd_per_hour is not None else ""
        cost = "not priced" if line.usd is None else usd(line.usd)
        note = line.note
        if line.hourly_usd:
            note = f"{usd(line.hourly_usd)} per hour while in service: {note}"
        out.append(
            f"<tr><td>{_e(line.name)}</td><td>{_e(line.type)}</td><td>{_e(instance)}</td>"
            f'<td class="num">{_e(price)}</td><td class="num">{_e(seconds)}</td>'
            f'<td class="num">{_e(cost)}</td><td>{_e(note)}</td></tr>'
        )
    total = ("at least " if estimate.unpriced else "") + usd(estimate.total_usd)
    out.append(
        f'<tr><th colspan="5">total</th><th class="num">{_e(total)}</th><th></th></tr></table>'
    )
    startup = table.get("startup_seconds") or {}
    sources = table.get("sources") or {}
    out.append(
        f"<p>Price table of {_e(table.get('date'))}, region {_e(estimate.region)}, on-demand "
        f"{_e(table.get('currency'))} per instance-hour; the prices are at "
        f'<a href="{_e(table.get("pricing_page"))}">{_e(table.get("pricing_page"))}</a>. '
        f"{_e(table.get('how_collected'))} {_e(table.get('assumption'))}</p>"
        "<h4>typical start-up</h4><ul>"
        + "".join(
            f"<li>{_e(kind)}: {_e(entry.get('seconds'))} s. {_e(entry.get('basis'))}</li>"
            for kind, entry in startup.items()
        )
        + "</ul><h4>sources</h4><ul>"
        + "".join(f"<li>{_e(key)}: {_e(text)}</li>" for key, text in sources.items())
        + "</ul>"
    )
    return "".join(out)


# ---------------------------------------------------------------------------- page
def render_report(record: Mapping[str, Any], store: LocalObjectStore | None = None) -> str:
    status = record.get("status") or ""
    steps = list(record.get("steps") or [])
    head = (
        f"<h1>{_e(record.get('pipeline_name'))} \u2014 execution "
        f"{_e(record.get('execution_id'))}</h1>"
        f'<p><span class="badge {_e(status)}">{_e(status)}</span> '
        f"started {_e(record.get('start_time'))}, ended {_e(record.get('end_time'))} "
        f"({_e(_fmt(record.get('duration_seconds')))} s)</p>"
    )
    if record.get("failure_reason"):
        head += (
            f'<p><b>Failure reason</b></p><div class="reason">{_e(record["failure_reason"])}</div>'
        )
    params = record.get("parameters") or {}
    ptable = "<h2>Parameters</h2><table><tr><th>name</th><th>value</th></tr>"
    overrides = record.get("parameter_overrides") or {}
    for name, value in params.items():
        mark = " <span class='muted'>(overridden)</span>" if name in overrides else ""
        ptable += f"<tr><td>{_e(name)}{mark}</td><td>{_e(_fmt(value))}</td></tr>"
    ptable += "</table>"
    dag = f'<h2>Pipeline graph</h2><div class="dag">{render_dag(steps)}</div>'
    rows = [
        "<h2>Steps</h2><table><tr><th>step</th><th>type</th><th>status</th><th>start</th>"
        "<th>duration (s)</th><th>failure / not-run reason</th><th>logs</th></tr>"
    ]
    for s in steps:
        st = s.get("status") or ""
        reason = s.get("failure_reason") or s.get("not_run_reason") or ""
        if s.get("cache_hit"):
            reason = f"cache hit ({s['cache_hit'].get('source_execution_id')}): its outputs reused"
        logs = "<br>".join(f"{_e(k)}: {_e(v)}" for k, v in (s.get("logs") or {}).items())
        started = (s.get("environment") or {}).get("processes") or []
        warm = (
            "<br><span class='muted'>forked from the warm pool</span>"
            if ("warm pool" in started)
            else ""
        )
        rows.append(
            f"<tr><td>{_e(s.get('name'))}</td><td>{_e(s.get('type'))}</td>"
            f'<td><span class="badge {_e(st)}">{_e(st)}</span></td>'
            f"<td>{_e(s.get('start_time'))}</td>"
            f'<td class="num">{_e(_fmt(s.get("duration_seconds")))}{warm}</td>'
            f'<td class="reason">{_e(reason)}</td><td class="muted">{logs}</td></tr>'
        )
    rows.append("</table>")
    ignored = record.get("ignored") or []
    ign = ""
    if ignored:
        ign = (
            "<h2>Settings ignored locally</h2><table><tr><th>step</th><th>setting</th>"
            "<th>value</th><th>why</th></tr>"
        )
        for item in ignored:
            ign += (
                f"<tr><td>{_e(item.get('step') or '(pipeline)')}</td><td>{_e(item.get('setting'))}"
                f"</td><td>{_e(_fmt(item.get('value')))}</td><td>{_e(item.get('reason'))}</td></tr>"
            )
        ign += "</table>"
    title = f"{record.get('pipeline_name')} {record.get('execution_id')} {status}"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        # What a person looks for first: the outcome, the graph, the model's quality.
        f"{head}{dag}{render_evaluations(record, store)}{render_registered_versions(record)}"
        f"{''.join(rows)}{render_cost(record)}{ptable}{ign}"
        '<p class="muted">Generated by the local pipeline runner.</p></body></html>\n'
    )


def write_report(
    record: Mapping[str, Any], path: Path, store: LocalObjectStore | None = None
) -> Path:
    """Write the report of ``record`` to ``path`` (the run's ``report.html``); return it."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(render_report(record, store), encoding="utf-8")
    tmp.replace(path)
    return path
