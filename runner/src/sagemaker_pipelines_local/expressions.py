"""Resolution of the pipeline definition's expression language, and condition evaluation.

The definition JSON uses a handful of constructs that SageMaker evaluates at run time:

* ``{"Get": "Parameters.X"}``, ``{"Get": "Execution.PipelineExecutionId"}`` ...
* ``{"Get": "Steps.<Name>.<property path>"}`` against the step's Describe*-shaped properties
* ``{"Get": "Steps.<Name>.PropertyFiles.<FileName>"}`` (the argument of ``Std:JsonGet``)
* ``{"Std:Join": {"On": sep, "Values": [...]}}``
* ``{"Std:JsonGet": {"PropertyFile": ..., "Path": "a.b[0]"}}`` and its ``S3Uri`` form
* conditions: Equals, GreaterThan(OrEqualTo), LessThan(OrEqualTo), In, Not, Or
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "UNRESOLVED",
    "ExecutionVariables",
    "ExpressionError",
    "PropertyFileRef",
    "Resolver",
    "StepFailure",
    "UnsupportedFeatureError",
    "evaluate_conditions",
    "json_get",
    "lookup_property",
    "parse_path",
    "step_references",
    "to_text",
]


# ---------------------------------------------------------------------------- errors
class UnsupportedFeatureError(Exception):
    """The definition uses something the local runner does not implement."""

    def __init__(self, step: str | None, setting: str, value: Any = None, detail: str = "") -> None:
        self.step = step
        self.setting = setting
        self.value = value
        where = f"Step '{step}'" if step else "The pipeline definition"
        shown = value if isinstance(value, str) else json.dumps(value, default=str)
        msg = (
            f"{where}: {setting} = {shown} is not supported: the local runner does not implement it"
        )
        if detail:
            msg += f" ({detail})"
        msg += ". Run the pipeline on SageMaker, or change the setting to run it locally."
        super().__init__(msg)


class StepFailure(Exception):
    """A step failed for the reason given as the message."""


class ExpressionError(StepFailure):
    """An expression in the definition could not be evaluated."""


# ---------------------------------------------------------------------------- values
class _Unresolved:
    """Stand-in for a value only known at run time (used by the static pre-flight checks)."""

    _instance: _Unresolved | None = None

    def __new__(cls) -> _Unresolved:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<resolved at run time>"


UNRESOLVED = _Unresolved()


@dataclass
class PropertyFileRef:
    """A property file read after its step ran: the parsed JSON and where it came from."""

    step: str
    name: str
    source: str
    data: Any = None
    local_path: str | None = None

    def to_record(self) -> dict[str, Any]:
        """As run.json (and a step cache entry) keeps it under the step's property files."""
        return {"s3_uri": self.source, "local_path": self.local_path, "value": self.data}

    @classmethod
    def from_record(cls, step: str, name: str, record: Mapping[str, Any]) -> PropertyFileRef:
        """The property file `name` of `step` as a run record kept it (see `to_record`)."""
        return cls(
            step=step,
            name=name,
            source=record.get("s3_uri") or "",
            data=record.get("value"),
            local_path=record.get("local_path"),
        )


@dataclass
class ExecutionVariables:
    pipeline_name: str
    execution_id: str
    execution_arn: str
    start_time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def get(self, name: str) -> Any:
        if name == "PipelineExecutionId":
            return self.execution_id
        if name == "PipelineName":
            return self.pipeline_name
        if name == "PipelineExecutionArn":
            return self.execution_arn
        if name == "StartDateTime":
            return _iso(self.start_time)
        if name == "CurrentDateTime":
            return _iso(datetime.now(UTC))
        raise ExpressionError(
            f"Unknown execution variable Execution.{name} (known: PipelineExecutionId, "
            "PipelineName, PipelineExecutionArn, StartDateTime, CurrentDateTime)"
        )


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_text(value: Any) -> str:
    """String form of a value inside ``Std:Join`` (and anywhere a string is required)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(value, default=str)


# ---------------------------------------------------------------------------- paths
_TOKEN = re.compile(
    r"""\[\s*(?P<index>-?\d+)\s*\]
      |\[\s*'(?P<sq>[^']*)'\s*\]
      |\[\s*"(?P<dq>[^"]*)"\s*\]
      |\.?(?P<name>[^.\[\]]+)""",
    re.VERBOSE,
)


def parse_path(path: str) -> list[str | int]:
    """``a.b[0]['c d'].e`` -> ``['a', 'b', 0, 'c d', 'e']`` (ints are list indexes)."""
    if not isinstance(path, str) or not path.strip():
        raise ExpressionError(f"Empty or invalid path {path!r}")
    text = path.strip()
    if text.startswith("$"):
        text = text[1:].lstrip(".")
    tokens: list[str | int] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"Cannot parse path {path!r} at position {pos}")
        if m.group("index") is not None:
            tokens.append(int(m.group("index")))
        elif m.group("sq") is not None:
            tokens.append(_Key(m.group("sq")))
        elif m.group("dq") is not None:
            tokens.append(_Key(m.group("dq")))
        else:
            tokens.append(m.group("name"))
        pos = m.end()
    return tokens


class _Key(str):
    """A bracketed ``['name']`` selector (may select from a list by its name field)."""


_MISSING = object()


def _select_named(items: list[Any], name: str) -> Any:
    """Pick the element of a Describe* list whose ``...Name`` field equals ``name``."""
    for item in items:
        if isinstance(item, Mapping):
            for key, val in item.items():
                if key.endswith("Name") and val == name:
                    return item
    return _MISSING


def _walk(data: Any, tokens: list[str | int], named_lists: bool) -> tuple[Any, int]:
    """Follow ``tokens``; returns (value, number of tokens consumed before a miss)."""
    cur = data
    for i, tok in enumerate(tokens):
        if isinstance(tok, int):
            if isinstance(cur, list) and -len(cur) <= tok < len(cur):
                cur = cur[tok]
                continue
            return _MISSING, i
        if isinstance(cur, Mapping):
            if tok in cur:
                cur = cur[tok]
                continue
            return _MISSING, i
        if isinstance(cur, list) and named_lists and isinstance(tok, _Key):
            found = _select_named(cur, str(tok))
            if found is _MISSING:
                return _MISSING, i
            cur = found
            continue
        return _MISSING, i
    return cur, len(tokens)


def _render(tokens: list[str | int], upto: int) -> str:
    out = ""
    for tok in tokens[:upto]:
        if isinstance(tok, int):
            out += f"[{tok}]"
        elif isinstance(tok, _Key):
            out += f"['{tok}']"
        else:
            out += ("." if out else "") + tok
    return out


def lookup_property(properties: Mapping[str, Any], path: str, step: str) -> Any:
    """Resolve a ``Steps.<step>.<path>`` property reference against a Describe* dict."""
    tokens = parse_path(path)
    value, depth = _walk(properties, tokens, named_lists=True)
    if value is _MISSING:
        found = _render(tokens, depth) or "(top level)"
        raise ExpressionError(
            f"Property Steps.{step}.{path} does not exist: step '{step}' has no "
            f"{_render(tokens, depth + 1)!r} (resolved as far as {found!r})"
        )
    return value


def json_get(data: Any, path: str, source: str) -> Any:
    """Value at ``path`` in the JSON document ``data`` read from ``source``."""
    tokens = parse_path(path)
    value, depth = _walk(data, tokens, named_lists=False)
    if value is _MISSING:
        raise ExpressionError(
            f"JsonGet path {path!r} does not exist in {source} (no {_render(tokens, depth + 1)!r})"
        )
    return value


# ---------------------------------------------------------------------------- references
def step_references(value: Any) -> set[str]:
    """Names of the steps whose properties or property files ``value`` reads."""
    found: set[str] = set()

    def visit(v: Any) -> None:
        if isinstance(v, Mapping):
            get = v.get("Get") if len(v) == 1 else None
            if isinstance(get, str) and get.startswith("Steps."):
                name = get[len("Steps.") :].split(".", 1)[0]
                name = re.split(r"[\[]", name, maxsplit=1)[0]
                if name:
                    found.add(name)
                return
            for item in v.values():
                visit(item)
        elif isinstance(v, list):
            for item in v:
                visit(item)

    visit(value)
    return found


# ---------------------------------------------------------------------------- resolver
class Resolver:
    """Evaluates expressions against parameters, execution variables and finished steps.

    With ``partial=True`` (the pre-flight check before anything runs) references to steps
    resolve to :data:`UNRESOLVED` instead of failing, as do functions that use them.
    """

    def __init__(
        self,
        *,
        parameters: Mapping[str, Any],
        execution: ExecutionVariables,
        step_properties: Mapping[str, Mapping[str, Any]] | None = None,
        property_files: Mapping[tuple[str, str], PropertyFileRef] | None = None,
        read_s3_json: Callable[[str], Any] | None = None,
        partial: bool = False,
    ) -> None:
        self.parameters = parameters
        self.execution = execution
        self.step_properties = step_properties or {}
        self.property_files = property_files or {}
        self.read_s3_json = read_s3_json
        self.partial = partial

    # -- public -----------------------------------------------------------------
    def resolve(self, value: Any) -> Any:
        """Return ``value`` with every expression replaced by its value (recursively)."""
        if isinstance(value, Mapping):
            if len(value) == 1:
                ((key, arg),) = value.items()
                if key == "Get":
                    return self._get(arg)
                if key == "Std:Join":
                    return self._join(arg)
                if key == "Std:JsonGet":
                    return self._json_get(arg)
                if isinstance(key, str) and key.startswith("Std:"):
                    raise UnsupportedFeatureError(None, "function", key)
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        return value

    def evaluate_conditions(self, conditions: list[Any]) -> bool:
        resolved = self.resolve(conditions)
        return evaluate_conditions(resolved)

    # -- Get --------------------------------------------------------------------
    def _get(self, ref: Any) -> Any:
        if not isinstance(ref, str):
            raise ExpressionError(f"Get expects a string reference, got {ref!r}")
        root, _, rest = ref.partition(".")
        if root == "Parameters":
            if rest not in self.parameters:
                raise ExpressionError(
                    f"{ref} refers to an undefined pipeline parameter {rest!r} "
                    f"(defined: {', '.join(sorted(self.parameters)) or 'none'})"
                )
            return self.parameters[rest]
        if root == "Execution":
            return self.execution.get(rest)
        if root == "Steps":
            if self.partial:
                return UNRESOLVED
            step, _, path = rest.partition(".")
            if path.startswith("PropertyFiles."):
                fname = path[len("PropertyFiles.") :]
                pf = self.property_files.get((step, fname))
                if pf is None:
                    if step not in self.step_properties:
                        raise ExpressionError(f"{ref}: step '{step}' has not run")
                    raise ExpressionError(
                        f"{ref}: step '{step}' declares no property file named {fname!r}"
                    )
                return pf
            if step not in self.step_properties:
                raise ExpressionError(f"{ref}: step '{step}' has not run (or did not succeed)")
            if not path:
                raise ExpressionError(f"{ref}: a property path is required after the step name")
            return lookup_property(self.step_properties[step], path, step)
        raise UnsupportedFeatureError(None, "Get reference", ref, "unknown reference root")

    # -- Std:Join ---------------------------------------------------------------
    def _join(self, arg: Any) -> Any:
        if not isinstance(arg, Mapping):
            raise ExpressionError(f"Std:Join expects an object, got {arg!r}")
        on = self.resolve(arg.get("On", ""))
        values = self.resolve(arg.get("Values", []))
        if on is UNRESOLVED or (isinstance(values, list) and UNRESOLVED in values):
            return UNRESOLVED
        if not isinstance(values, list):
            raise ExpressionError(f"Std:Join Values must be a list, got {values!r}")
        return to_text(on).join(to_text(v) for v in values)

    # -- Std:JsonGet ------------------------------------------------------------
    def _json_get(self, arg: Any) -> Any:
        if not isinstance(arg, Mapping):
            raise ExpressionError(f"Std:JsonGet expects an object, got {arg!r}")
        path = self.resolve(arg.get("Path"))
        if "PropertyFile" in arg:
            pf = self.resolve(arg["PropertyFile"])
            if pf is UNRESOLVED or path is UNRESOLVED:
                return UNRESOLVED
            if isinstance(pf, str):
                raise UnsupportedFeatureError(
                    None,
                    "Std:JsonGet.PropertyFile",
                    pf,
                    "expected a Get of Steps.<step>.PropertyFiles",
                )
            if not isinstance(pf, PropertyFileRef):
                raise ExpressionError(f"Std:JsonGet PropertyFile did not resolve to a file: {pf!r}")
            return json_get(
                pf.data, to_text(path), f"property file {pf.name} ({pf.source}) of step '{pf.step}'"
            )
        if "S3Uri" in arg:
            uri = self.resolve(arg["S3Uri"])
            if self.partial or uri is UNRESOLVED or path is UNRESOLVED:
                return UNRESOLVED
            if self.read_s3_json is None:
                raise ExpressionError("Std:JsonGet with S3Uri needs an object store")
            data = self.read_s3_json(to_text(uri))
            return json_get(data, to_text(path), f"JSON file {uri}")
        raise ExpressionError(f"Std:JsonGet needs PropertyFile or S3Uri: {dict(arg)!r}")


# ---------------------------------------------------------------------------- conditions
_NUMBER = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str) and _NUMBER.match(v):
        return float(v)
    return None


def _pair(left: Any, right: Any) -> tuple[Any, Any]:
    """Numbers compare as numbers (numeric strings too, when the other side is a number)."""
    ln, rn = _as_number(left), _as_number(right)
    if ln is not None and rn is not None:
        if isinstance(left, (int, float)) or isinstance(right, (int, float)):
            return ln, rn
        if isinstance(left, str) and isinstance(right, str):
            return ln, rn
    return left, right


def _equals(left: Any, right: Any) -> bool:
    a, b = _pair(left, right)
    if isinstance(a, bool) or isinstance(b, bool):
        sa = to_text(a).lower() if isinstance(a, (bool, str)) else a
        sb = to_text(b).lower() if isinstance(b, (bool, str)) else b
        return sa == sb
    return a == b


def _order(kind: str, left: Any, right: Any) -> bool:
    a, b = _pair(left, right)
    if not (
        (isinstance(a, float) and isinstance(b, float))
        or (isinstance(a, str) and isinstance(b, str))
    ):
        raise ExpressionError(
            f"Condition {kind} cannot compare {left!r} with {right!r} "
            "(need two numbers or two strings)"
        )
    if kind == "GreaterThan":
        return a > b
    if kind == "GreaterThanOrEqualTo":
        return a >= b
    if kind == "LessThan":
        return a < b
    return a <= b


def evaluate_condition(cond: Mapping[str, Any]) -> bool:
    """Evaluate one already-resolved condition."""
    if not isinstance(cond, Mapping):
        raise ExpressionError(f"A condition must be an object, got {cond!r}")
    kind = cond.get("Type")
    if kind == "Equals":
        return _equals(cond.get("LeftValue"), cond.get("RightValue"))
    if kind in ("GreaterThan", "GreaterThanOrEqualTo", "LessThan", "LessThanOrEqualTo"):
        return _order(kind, cond.get("LeftValue"), cond.get("RightValue"))
    if kind == "In":
        values = cond.get("Values")
        if not isinstance(values, list):
            raise ExpressionError(f"Condition In needs a list of Values, got {values!r}")
        return any(_equals(cond.get("QueryValue"), v) for v in values)
    if kind == "Not":
        return not evaluate_condition(cond.get("Expression"))
    if kind == "Or":
        subs = cond.get("Conditions")
        if not isinstance(subs, list):
            raise ExpressionError(f"Condition Or needs a list of Conditions, got {subs!r}")
        return any(evaluate_condition(c) for c in subs)
    raise UnsupportedFeatureError(None, "condition Type", kind)


def evaluate_conditions(conditions: Any) -> bool:
    """All conditions of a Condition step must hold (logical AND)."""
    if not isinstance(conditions, list):
        raise ExpressionError(f"Conditions must be a list, got {conditions!r}")
    return all(evaluate_condition(c) for c in conditions)


def check_condition_types(conditions: Any, step: str) -> None:
    """Refuse unknown condition types before anything runs."""
    known = {
        "Equals",
        "GreaterThan",
        "GreaterThanOrEqualTo",
        "LessThan",
        "LessThanOrEqualTo",
        "In",
        "Not",
        "Or",
    }

    def visit(c: Any) -> None:
        if not isinstance(c, Mapping):
            return
        kind = c.get("Type")
        if kind not in known:
            raise UnsupportedFeatureError(step, "condition Type", kind)
        if kind == "Not":
            visit(c.get("Expression"))
        if kind == "Or":
            for sub in c.get("Conditions") or []:
                visit(sub)

    for cond in conditions or []:
        visit(cond)
