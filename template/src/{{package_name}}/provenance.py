"""What a model version records about where it came from, known before any step runs.

The git commit (and whether the tree had uncommitted changes), the template version and the
definition's own hash are literals of the build definition; the rest (the execution, the
hyperparameters, the input data's fingerprint) is resolved by the pipeline. The SDK builds
the definition with placeholders for them and for the code's keys (`PENDING_SOURCE`,
code_uploads), and `place_build` fills them in: a build does not depend on the git state or
the scripts, so the build cache serves it after an edit or a commit, filled in anew.
No SageMaker SDK here: `pipeline.py` (either SDK) and the CLI both use it.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from dataclasses import astuple, dataclass
from pathlib import Path

from .config import PROJECT_ROOT, Settings

# What CustomerMetadataProperties values may hold (CreateModelPackage): 1..256 characters of
# letters, spaces, digits and _.:/=+-@. Anything else in a literal becomes "-".
METADATA_VALUE = re.compile(r"[^\w\s.:/=+\-@]")
METADATA_VALUE_MAX = 256

# The definition carries its own hash: built with this in its place, then replaced by the
# sha256 of that canonical text (see `seal_definition`). Same length as the real value.
DEFINITION_HASH_KEY = "DefinitionHash"
DEFINITION_HASH_PLACEHOLDER = "sha256:" + "0" * 64

NOT_A_REPOSITORY = "not-a-git-repository"
NO_COMMITS = "no-commits"
UNKNOWN = "unknown"


@dataclass(frozen=True)
class SourceRevision:
    """The project's code as it was when the definition was built."""

    commit: str  # a sha, NO_COMMITS or NOT_A_REPOSITORY
    dirty: str  # "true" (uncommitted changes), "false", or UNKNOWN outside a repository
    template_version: str  # the `_commit` of .copier-answers.yml, or UNKNOWN


# What the SDK builds with in place of the source revision (valid metadata values, found in
# the definition only as these literals).
PENDING_SOURCE = SourceRevision(
    commit="pending-git-commit", dirty="pending-git-dirty", template_version="pending-template"
)


def metadata_value(text: str) -> str:
    """`text` as a CustomerMetadataProperties value the API accepts."""
    return METADATA_VALUE.sub("-", text)[:METADATA_VALUE_MAX] or UNKNOWN


def source_revision(root: Path = PROJECT_ROOT) -> SourceRevision:
    """The commit of `root` (HEAD), whether files under it differ from it, and the template
    version the project was rendered or last updated from."""
    return SourceRevision(*_git_state(root), template_version=_template_version(root))


def _git_state(root: Path) -> tuple[str, str]:
    def git(*args: str) -> subprocess.CompletedProcess[str] | None:
        try:
            return subprocess.run(
                ["git", "-C", str(root), *args],
                capture_output=True, text=True, check=False, timeout=30,
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return None  # git not installed, or stuck: the state is not known

    inside = git("rev-parse", "--is-inside-work-tree")
    if inside is None or inside.returncode != 0:
        return NOT_A_REPOSITORY, UNKNOWN
    # Untracked files count: a new script changes what the pipeline runs as much as an edit.
    status = git("status", "--porcelain", "--untracked-files=normal", "--", ".")
    if status is None or status.returncode != 0:
        dirty = UNKNOWN
    else:
        dirty = "true" if status.stdout.strip() else "false"
    head = git("rev-parse", "--verify", "--quiet", "HEAD")
    commit = head.stdout.strip() if head is not None and head.returncode == 0 else NO_COMMITS
    return metadata_value(commit), dirty


def _template_version(root: Path) -> str:
    answers = root / ".copier-answers.yml"
    try:
        found = re.search(r"^_commit:\s*['\"]?([^'\"\s]+)", answers.read_text(), re.M)
    except OSError:
        found = None
    return metadata_value(found.group(1)) if found else UNKNOWN


def model_card_content(settings: Settings, source: SourceRevision) -> dict:
    """The version's model card (the "model package model card" schema). What the pipeline
    resolves at run time (data fingerprint, execution) is in CustomerMetadataProperties: the
    SDKs serialise a card's content when the definition is built, so it holds literals only."""
    relation = "at most" if settings.lower_is_better else "at least"
    gate = (
        f"{settings.metric} {relation} {settings.metric_threshold:g} on the held-out test split "
        "(the quality gate)"
        if settings.quality_gate
        else f"{settings.metric} on the held-out test split (no quality gate)"
    )
    return {
        "intended_uses": {
            "purpose_of_model": f"{settings.project_name}: {settings.problem_type} of "
            f"'{settings.target_column}' from the other columns of a tabular CSV row.",
            "intended_uses": "Batch transform and real-time endpoints fed rows with the "
            "feature columns the model was trained on (the model refuses any others).",
        },
        "evaluation_details": [{"name": "held-out test split", "evaluation_observation": gate}],
        "additional_information": {
            "custom_details": {
                "git_commit": source.commit,
                "git_dirty": source.dirty,
                "template_version": source.template_version,
                "pipeline_name": settings.pipeline_name,
                "metric": settings.metric,
            }
        },
    }


def _canonical(definition: dict) -> bytes:
    return json.dumps(definition, sort_keys=True, separators=(",", ":")).encode()


def seal_definition(text: str) -> str:
    """The definition with its hash in place of DEFINITION_HASH_PLACEHOLDER: the sha256 of the
    canonical JSON (sorted keys, no blanks) of the definition as built, placeholder included.
    A definition without the placeholder (the deploy pipeline) is returned as it is."""
    if DEFINITION_HASH_PLACEHOLDER not in text:
        return text
    digest = hashlib.sha256(_canonical(json.loads(text))).hexdigest()
    return text.replace(DEFINITION_HASH_PLACEHOLDER, f"sha256:{digest}")


def place_build(built: str, put=None, source: SourceRevision | None = None) -> str:
    """A definition as the SDK built it, made what upsert sends, `definition` prints and
    run-local runs: the code under keys named by its content (uploaded through `put`, see
    code_uploads.place_code), the source revision (default: this project's now) in place of
    PENDING_SOURCE, then sealed with its own hash."""
    from .code_uploads import place_code

    source = source or source_revision()
    text = place_code(built, put)
    for pending, value in zip(astuple(PENDING_SOURCE), astuple(source), strict=True):
        text = text.replace(pending, value)
    return seal_definition(text)


def recorded_hash(definition: dict) -> str | None:
    """The hash the definition's RegisterModel step records (None if it records none)."""
    text = json.dumps(definition)
    found = re.search(f'"{DEFINITION_HASH_KEY}": ' + r'"(sha256:[0-9a-f]{64})"', text)
    return found.group(1) if found else None


def verify_definition(text: str) -> bool:
    """Whether the hash the definition records is the hash of the definition itself."""
    definition = json.loads(text)
    recorded = recorded_hash(definition)
    if recorded is None:
        return False
    unsealed = json.loads(json.dumps(definition).replace(recorded, DEFINITION_HASH_PLACEHOLDER))
    return recorded == f"sha256:{hashlib.sha256(_canonical(unsealed)).hexdigest()}"


# CustomerMetadataProperties that are provenance (the rest: what the deploy pipeline reads,
# and whatever the team adds).
_CODE = {
    "git_commit": "GitCommit",
    "git_dirty": "GitDirty",
    "template_version": "TemplateVersion",
    "definition_hash": DEFINITION_HASH_KEY,
}
_DATA = {
    "sha256": "InputDataSha256",
    "rows": "InputDataRows",
    "column_count": "InputDataColumns",
    "schema_sha256": "InputSchemaSha256",
    "fingerprint_uri": "InputFingerprint",
}


def version_provenance(package: dict, fingerprint: dict | None = None) -> dict:
    """A model package's record (DescribeModelPackage, or the local registry's), grouped:
    the code, the execution and the data it came from. With `fingerprint` (the file its
    InputFingerprint names), the data's columns and their types too."""
    from .config import HYPERPARAMETERS

    metadata = package.get("CustomerMetadataProperties") or {}
    data = {field: metadata.get(key) for field, key in _DATA.items()}
    if fingerprint is not None:
        data["columns"] = fingerprint.get("columns")
    used = {*_CODE.values(), *_DATA.values(), "PipelineExecutionId", *HYPERPARAMETERS}
    return {
        "code": {field: metadata.get(key) for field, key in _CODE.items()},
        "execution": {
            "pipeline_execution_id": metadata.get("PipelineExecutionId"),
            "generated_by": (package.get("MetadataProperties") or {}).get("GeneratedBy"),
            "hyperparameters": {
                name: metadata[name] for name in HYPERPARAMETERS if name in metadata
            },
        },
        "data": data,
        "model_card_status": (package.get("ModelCard") or {}).get("ModelCardStatus"),
        "other_metadata": {key: value for key, value in metadata.items() if key not in used},
    }
