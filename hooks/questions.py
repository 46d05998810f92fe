"""The questionnaire's rules and data-driven defaults: a Jinja extension of copier.yml.

copier.yml loads it with `_jinja_extensions` (through copier-template-extensions, which
imports an extension by its path in the template). It adds these globals:

- `refusal('question')`: the validator of every question; runs the question's rules
  (`RULES`, one small function each, documented by its docstring) and returns the first
  refusal, '' when the answer is accepted. The questions reference page lists the rules
  from these functions.
- `target_choices()`, `target_default()`: the CSV's columns, read at prompt time.
- `problem_type_default()`, `problem_type_reason()`, `threshold_default()`: what the
  target's values suggest (hooks/dataset.py holds the rules for reading and judging a CSV).
- `project_name_default()`, `slug_default()`, `package_default()`, `sample_file_name()`.

A default is always valid or absent: Copier validates a default before it shows the
prompt, and an invalid one would end the questionnaire with a traceback.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import keyword
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import pass_context
from jinja2.ext import Extension
from jinja2.runtime import Context

_HOOKS = Path(__file__).resolve().parent
BUNDLED_SAMPLE = (
    _HOOKS.parent / "template" / "data" / "{% if not dataset_path %}iris.csv{% endif %}"
)


def _load_dataset_rules():
    """hooks/dataset.py, loaded by path: this file is imported by path too, not as a package."""
    name = "copier_sagemaker_pipelines_dataset"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, _HOOKS / "dataset.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it executes
        spec.loader.exec_module(module)
    return sys.modules[name]


dataset = _load_dataset_rules()

METRICS = {
    "classification": ("accuracy", "f1_macro"),
    "regression": ("rmse", "mae", "r2"),
}
LOWER_IS_BETTER = ("rmse", "mae")
FIXED_THRESHOLDS = {"accuracy": "0.8", "f1_macro": "0.75", "r2": "0.5"}
# Regions where the SageMaker scikit-learn containers are published.
REGIONS = (
    "af-south-1", "ap-east-1", "ap-northeast-1", "ap-northeast-2", "ap-northeast-3",
    "ap-south-1", "ap-south-2", "ap-southeast-1", "ap-southeast-2", "ap-southeast-3",
    "ap-southeast-4", "ca-central-1", "ca-west-1", "cn-north-1", "cn-northwest-1",
    "eu-central-1", "eu-central-2", "eu-north-1", "eu-south-1", "eu-south-2", "eu-west-1",
    "eu-west-2", "eu-west-3", "il-central-1", "me-central-1", "me-south-1", "sa-east-1",
    "us-east-1", "us-east-2", "us-gov-east-1", "us-gov-west-1", "us-west-1", "us-west-2",
)  # fmt: skip
# The framework version each SDK trains and serves with (the one the template's tests run).
FRAMEWORK_OF_SDK = {"v3": "1.9-0", "v2": "1.2-1"}
# Modules a generated project imports: a package of the same name would shadow them.
SHADOWED = ("sagemaker", "boto3", "botocore", "moto", "sklearn", "pandas", "numpy", "scripts",
            "tests", "local", "test")  # fmt: skip
SLUG_MAX = 40
INSTANCE_TYPE = re.compile(r"^ml[.][a-z0-9]+[.][a-z0-9]+$")
NUMBER = re.compile(r"^[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?$")


# ----------------------------------------------------------------------------- reading the CSV
@functools.lru_cache(maxsize=8)
def _read(path: str, mtime_ns: int, size: int):
    """A CSV read once per content: Copier renders a default, a help and a validator apiece."""
    try:
        return dataset.read_table(Path(path)), ""
    except dataset.DatasetError as error:
        return None, str(error)


def read_csv(path: Path):
    """(Table or None, the refusal's message)."""
    try:
        stat = path.stat()
    except OSError:
        return None, f"dataset_path: '{path}' does not exist or is not a file."
    return _read(str(path), stat.st_mtime_ns, stat.st_size)


def sample_file_name(dataset_path: str) -> str:
    """The file name under data/: S3 keys and shells stay simple (letters, digits, '._-')."""
    if not dataset_path:
        return "iris.csv"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(dataset_path).name)


def _given_path(dataset_path: str) -> Path:
    return Path(dataset_path).expanduser().resolve()


def _interactive_copy(ctx: Context) -> bool:
    """A person answering a new project's questions (not --defaults, not an update).

    Only then must dataset_path exist here: an update, and the renders Copier makes during
    one, keep the answer of the machine that rendered the project (its data is in data/).
    """
    conf = ctx.get("_copier_conf")
    if conf is None or conf["defaults"]:
        return False
    return not (Path(str(conf["dst_path"])) / str(conf["answers_file"])).exists()


def _table(ctx: Context):
    """The CSV the answers refer to, or None when it cannot be read here."""
    dataset_path = str(ctx.get("dataset_path") or "")
    if not dataset_path:
        return read_csv(BUNDLED_SAMPLE)[0]
    table, _ = read_csv(_given_path(dataset_path))
    if table is None:
        # An update elsewhere: the project's own copy of the data.
        conf = ctx.get("_copier_conf")
        if conf is not None:
            copy = Path(str(conf["dst_path"])) / "data" / sample_file_name(dataset_path)
            table, _ = read_csv(copy)
    return table


def _profile(ctx: Context):
    table = _table(ctx)
    target = str(ctx.get("target_column") or "")
    if table is None or target not in table.header:
        return None
    return dataset.profile_target(table, target)


# ----------------------------------------------------------------------------- the rules
Rule = Callable[[Any, Context], str]
RULES: dict[str, list[Rule]] = {}


def rule(*questions: str) -> Callable[[Rule], Rule]:
    """Register a rule for these questions; its docstring is its line in the reference."""

    def register(function: Rule) -> Rule:
        for question in questions:
            RULES.setdefault(question, []).append(function)
        return function

    return register


@rule("project_name")
def non_empty(value: Any, ctx: Context) -> str:
    """Not empty."""
    return "" if str(value).strip() else "give a non-empty name."


@rule("project_slug")
def slug_form(value: Any, ctx: Context) -> str:
    """Lowercase letters, digits and hyphens, a letter first and no hyphen last
    (`^[a-z]([a-z0-9-]*[a-z0-9])?$`), so the AWS names derived from it are valid."""
    if re.match(r"^[a-z]([a-z0-9-]*[a-z0-9])?$", str(value)):
        return ""
    return (
        f"'{value}' must match ^[a-z]([a-z0-9-]*[a-z0-9])?$ (lowercase letters, digits, "
        "hyphens; a letter first, no hyphen last)."
    )


@rule("project_slug")
def slug_length(value: Any, ctx: Context) -> str:
    """At most 40 characters, so the AWS names derived from it stay within their limits."""
    if len(str(value)) <= SLUG_MAX:
        return ""
    return f"at most {SLUG_MAX} characters, so the AWS names derived from it fit their limits."


@rule("package_name")
def python_identifier(value: Any, ctx: Context) -> str:
    """A Python identifier (letters, digits, underscores; not starting with a digit)."""
    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", str(value)):
        return ""
    return (
        f"'{value}' is not a Python identifier (letters, digits, underscores; "
        "not starting with a digit)."
    )


@rule("package_name")
def not_a_keyword(value: Any, ctx: Context) -> str:
    """Not a Python keyword (soft keywords included)."""
    if keyword.iskeyword(value) or keyword.issoftkeyword(value):
        return f"'{value}' is a Python keyword; choose another name."
    return ""


@rule("package_name")
def not_shadowing(value: Any, ctx: Context) -> str:
    """Not the name of a module the project imports (sagemaker, sklearn, pandas, tests, ...)."""
    if value in SHADOWED:
        return f"'{value}' would shadow a module the project imports; choose another name."
    return ""


@rule("dataset_path")
def csv_file_name(value: Any, ctx: Context) -> str:
    """Empty (the bundled Iris sample) or a path ending in `.csv`."""
    if value and not str(value).lower().endswith(".csv"):
        return f"'{value}' must be a .csv file with a header row."
    return ""


@rule("dataset_path")
def readable_csv(value: Any, ctx: Context) -> str:
    """At the prompt: a UTF-8 CSV file that exists, with named columns and data rows
    (with `--data`/`--defaults` the render's dataset check says the same)."""
    if not value or not _interactive_copy(ctx):
        return ""
    table, problem = read_csv(_given_path(str(value)))
    return "" if table is not None else problem.removeprefix("dataset_path: ")


@rule("target_column")
def target_named(value: Any, ctx: Context) -> str:
    """Named (a column of the CSV: the choices are its header)."""
    if str(value).strip():
        return ""
    if ctx.get("dataset_path") and _table(ctx) is None and not _interactive_copy(ctx):
        return ""  # the render's dataset check names the file's problem
    return "name the column to predict."


@rule("target_column")
def target_survives_sagemaker(value: Any, ctx: Context) -> str:
    """A name SageMaker carries unchanged to the training script: no single quote (SDK v3's
    driver sources it from a shell file), and not a JSON literal whose text would change
    (`2.50` arrives as `2.5`)."""
    return dataset.target_name_problem(str(value))


@rule("metric")
def metric_fits_problem(value: Any, ctx: Context) -> str:
    """A metric of the problem type: classification accuracy, f1_macro; regression rmse,
    mae, r2."""
    problem_type = ctx.get("problem_type")
    allowed = METRICS.get(problem_type, ())
    if value in allowed:
        return ""
    return f"'{value}' is not a {problem_type} metric; use {' or '.join(allowed)}."


@rule("metric_threshold")
def threshold_in_range(value: Any, ctx: Context) -> str:
    """A number in the metric's range: accuracy and f1_macro within [0, 1], r2 at most 1,
    rmse and mae positive (in the target's units)."""
    metric, target = ctx.get("metric"), ctx.get("target_column")
    text = str(value).strip()
    if not text and not _interactive_copy(ctx) and not _data_threshold(ctx):
        return ""  # unreadable or constant data: the render's dataset check names the problem
    if not NUMBER.match(text):
        if metric in LOWER_IS_BETTER:
            return (
                f"{metric} is measured in the units of '{target}'; give the largest {metric} "
                f"you accept as a number, e.g. --data metric_threshold=25000."
            )
        return f"'{value}' is not a number."
    number = float(text)
    if metric in ("accuracy", "f1_macro") and not 0 <= number <= 1:
        return f"{metric} lies between 0 and 1; {text} is outside that range."
    if metric == "r2" and number > 1:
        return f"r2 is at most 1; {text} can never pass."
    if metric in LOWER_IS_BETTER and number <= 0:
        return (
            f"{metric} is an error in the units of '{target}' and must be positive "
            f"(the largest error you accept); got {text}."
        )
    return ""


@rule("champion_margin")
def margin_in_range(value: Any, ctx: Context) -> str:
    """A non-negative number (a negative margin would let a worse model replace the approved
    one), below 1 for the metrics that lie between 0 and 1."""
    metric, text = ctx.get("metric"), str(value).strip()
    if not NUMBER.match(text):
        return f"'{value}' is not a number; give how much better a new model must score, e.g. 0."
    number = float(text)
    if number < 0:
        return (
            f"a negative margin ({text}) would let a model worse than the approved one pass; "
            "use 0 for 'not worse'."
        )
    if metric in ("accuracy", "f1_macro", "r2") and number >= 1:
        return f"{metric} cannot improve by {text}: give a margin below 1, e.g. 0.01."
    return ""


@rule("processing_instance_type", "training_instance_type", "transform_instance_type")
def instance_type(value: Any, ctx: Context) -> str:
    """An instance type written `ml.<family>.<size>`, e.g. ml.m5.large."""
    if INSTANCE_TYPE.match(str(value)):
        return ""
    return f"'{value}' must look like ml.<family>.<size>, e.g. ml.m5.large."


@rule("inference_instance_types")
def instance_type_list(value: Any, ctx: Context) -> str:
    """A non-empty YAML list of instance types written `ml.<family>.<size>`."""
    if not isinstance(value, list) or not value:
        return "give a non-empty YAML list such as [ml.m5.large]."
    for item in value:
        if not INSTANCE_TYPE.match(str(item)):
            return f"'{item}' must look like ml.<family>.<size>, e.g. ml.m5.large."
    return ""


# A family with instance storage says so with a "d" after its generation (m5d, g4dn, p4de).
INSTANCE_STORE_FAMILY = re.compile(r"^ml[.][a-z]+[0-9]+[a-z]*d[a-z]*[.]")


@rule("encrypt_and_isolate")
def no_instance_store(value: Any, ctx: Context) -> str:
    """On: no instance type of a family with local NVMe storage named by its `d`
    (ml.m5d.large, ml.g4dn.xlarge, ...): SageMaker takes no volume KMS key for it."""
    if value is not True:
        return ""
    jobs = ("processing_instance_type", "training_instance_type", "transform_instance_type")
    answers = [(question, ctx.get(question)) for question in jobs]
    answers += [("inference_instance_types", t) for t in ctx.get("inference_instance_types") or []]
    for question, instance in answers:
        if INSTANCE_STORE_FAMILY.match(str(instance)):
            return (
                f"{question} {instance} has local NVMe storage, which SageMaker encrypts itself "
                "and refuses a volume KMS key for; choose a type without it (e.g. ml.m5.large) "
                "or answer false."
            )
    return ""


@rule("aws_region")
def sklearn_region(value: Any, ctx: Context) -> str:
    """A region where the SageMaker scikit-learn containers are published."""
    if value in REGIONS:
        return ""
    return (
        f"'{value}' is not a region where the SageMaker scikit-learn containers are published "
        "(e.g. us-east-1, eu-west-1, ap-southeast-2)."
    )


sklearn_region.allowed = REGIONS


@rule("framework_version")
def framework_of_sdk(value: Any, ctx: Context) -> str:
    """The container the chosen SDK trains and serves with: 1.9-0 for v3, 1.2-1 for v2."""
    sdk = ctx.get("sagemaker_sdk")
    expected = FRAMEWORK_OF_SDK.get(sdk)
    if expected is None or value == expected:
        return ""
    if sdk == "v2":
        return (
            f"SDK v2 projects train and serve with {expected}, not '{value}' "
            "(move to SDK v3 for 1.9-0)."
        )
    return f"SDK v3 projects train and serve with {expected}, not '{value}'."


@rule("python_version")
def python_version(value: Any, ctx: Context) -> str:
    """3.11 or newer, written 3.X; exactly 3.11 for SDK v2 (scikit-learn 1.2's last wheels)."""
    if not re.match(r"^3[.](1[1-9]|[2-9][0-9])$", str(value)):
        return f"'{value}' must be 3.11 or newer, written as 3.X (e.g. 3.11, 3.12)."
    if ctx.get("sagemaker_sdk") == "v2" and value != "3.11":
        return (
            "SDK v2 projects pin scikit-learn 1.2 (container 1.2-1), which has wheels up to "
            "Python 3.11 only: answer 3.11, or choose sagemaker_sdk=v3."
        )
    return ""


@rule("model_package_group_name")
def group_name(value: Any, ctx: Context) -> str:
    """SageMaker's rule for a model package group: 1-63 letters, digits and single hyphens,
    starting and ending with a letter or digit."""
    if re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$", str(value)):
        return ""
    return (
        f"'{value}' breaks SageMaker's rule: 1-63 letters, digits and single hyphens, "
        "starting and ending with a letter or digit."
    )


@rule("pipeline_name")
def pipeline_name(value: Any, ctx: Context) -> str:
    """SageMaker's rule for a pipeline: 1-256 letters, digits and hyphens, starting and
    ending with a letter or digit."""
    if re.match(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$", str(value)):
        return ""
    return (
        f"'{value}' breaks SageMaker's rule: 1-256 letters, digits and hyphens, "
        "starting and ending with a letter or digit."
    )


@pass_context
def refusal(ctx: Context, question: str) -> str:
    """The validator of `question`: its first refusal, prefixed with its name; '' if none."""
    value = ctx.get(question)
    for check in RULES[question]:
        message = check(value, ctx)
        if message:
            return f"{question}: {message}"
    return ""


# ----------------------------------------------------------------------------- defaults
def _literal(text: str) -> str:
    """Copier renders each choice's name, value and validator again: keep braces as text."""
    return "{% raw %}" + text + "{% endraw %}" if "{" in text or "%}" in text else text


@pass_context
def target_choices(ctx: Context) -> str:
    """The CSV's columns as Copier choices (JSON), unusable ones disabled with the reason."""
    table = _table(ctx)
    if table is None:
        earlier = ctx.get("target_column")
        return json.dumps([earlier] if earlier else [])
    choices = {
        _literal(name): {
            "value": _literal(name),
            "validator": _literal(dataset.target_name_problem(name)),
        }
        for name in table.header
    }
    return json.dumps(choices)


# Column names that usually hold what a dataset is meant to predict.
USUAL_TARGETS = ("target", "label", "class", "y", "outcome", "species")


@pass_context
def target_default(ctx: Context) -> str:
    """A usual target name among the columns, else the last usable column ('' if unread)."""
    table = _table(ctx)
    if table is None:
        return ""
    usable = [name for name in table.header if not dataset.target_name_problem(name)]
    if not usable:
        return ""
    by_lower = {name.lower(): name for name in usable}
    return next((by_lower[n] for n in USUAL_TARGETS if n in by_lower), usable[-1])


@pass_context
def problem_type_default(ctx: Context) -> str:
    """What the target's values suggest (classification when nothing can be read)."""
    profile = _profile(ctx)
    return profile.problem_type if profile else "classification"


@pass_context
def problem_type_reason(ctx: Context) -> str:
    """Why, from the target's values: e.g. "'price' holds 291 distinct numbers in 400 rows:
    a quantity, so the default is regression"."""
    profile = _profile(ctx)
    return profile.reason if profile else ""


def _number_text(value: float) -> str:
    text = f"{value:.12g}"
    if "e" in text:
        text = f"{value:.12f}".rstrip("0").rstrip(".")
    return text.removesuffix(".0") if text.endswith(".0") else text


def _data_threshold(ctx: Context) -> str:
    """rmse or mae of always predicting the target's mean on the data ('' if unknown)."""
    profile = _profile(ctx)
    if profile is None or not profile.numeric:
        return ""
    baseline = profile.std if ctx.get("metric") == "rmse" else profile.mean_abs_dev
    return _number_text(baseline) if baseline and baseline > 0 else ""


@pass_context
def threshold_default(ctx: Context) -> Any:
    """The metric's usual floor; for rmse and mae, what always predicting the mean scores
    (none when the data cannot tell: the prompt then waits for a number)."""
    metric = ctx.get("metric")
    if metric in FIXED_THRESHOLDS:
        return FIXED_THRESHOLDS[metric]
    found = _data_threshold(ctx)
    if found or not _interactive_copy(ctx):
        return found
    return ctx.get("UNSET", "")  # Copier's marker for "no default"


@pass_context
def regression_refusal(ctx: Context) -> str:
    """Why regression cannot be chosen: the target holds text ('' if it may)."""
    profile = _profile(ctx)
    if profile is None or profile.numeric:
        return ""
    return f"'{profile.column}' holds text, and regression needs numbers."


@pass_context
def project_name_default(ctx: Context) -> str:
    """The dataset's file name and what the model does: 'houses.csv' -> 'Houses Regressor'."""
    dataset_path = str(ctx.get("dataset_path") or "")
    stem = Path(dataset_path).stem if dataset_path else "iris"
    words = [w if w[:1].isupper() else w.capitalize() for w in re.findall(r"[^\W_]+", stem)]
    role = "Regressor" if ctx.get("problem_type") == "regression" else "Classifier"
    return " ".join([*(words or ["Tabular"]), role])


def slug_default(project_name: str) -> str:
    """The name in lowercase, other characters as hyphens, a letter first, at most 40."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(project_name).lower())
    slug = re.sub(r"^[^a-z]+", "", slug)[:SLUG_MAX].strip("-")
    return slug or "model"


def package_default(project_slug: str) -> str:
    """The slug with underscores; '_model' appended where it would be a keyword or shadow."""
    name = str(project_slug).replace("-", "_")
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        name = "model"
    if keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in SHADOWED:
        name += "_model"
    return name


class QuestionRules(Extension):
    """Adds the rules and the data-driven defaults to Copier's Jinja environment."""

    def __init__(self, environment):
        super().__init__(environment)
        environment.globals.update(
            refusal=refusal,
            target_choices=target_choices,
            target_default=target_default,
            problem_type_default=problem_type_default,
            problem_type_reason=problem_type_reason,
            threshold_default=threshold_default,
            regression_refusal=regression_refusal,
            project_name_default=project_name_default,
            slug_default=slug_default,
            package_default=package_default,
            sample_file_name=sample_file_name,
        )
