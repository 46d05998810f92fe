"""The table of what each API argument gets locally: complete against botocore, and the docs."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest

from sagemaker_pipelines_local.emulation import HANDLED, TABLES, markdown

DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "emulation.md"
REGENERATE = "runner/.venv/bin/python runner/tools/emulation_doc.py (from the repository root)"


def _service():
    return botocore.session.get_session().get_service_model("sagemaker")


def _shape_at(root, path):
    """The botocore shape of a table path (``A[].B.C``), or None when there is no such member."""
    shape = root
    for segment in path.split("."):
        name, is_list = (segment[:-2], True) if segment.endswith("[]") else (segment, False)
        if shape.type_name != "structure" or name not in shape.members:
            return None
        shape = shape.members[name]
        if is_list:
            if shape.type_name != "list":
                return None
            shape = shape.member
    return shape


@pytest.mark.parametrize("operation", sorted(TABLES))
def test_the_table_names_only_members_of_the_request_shape(operation):
    root = _service().operation_model(operation).input_shape
    unknown = [path for path in TABLES[operation] if _shape_at(root, path) is None]
    assert not unknown, f"{operation} has no member {unknown} (botocore {botocore.__version__})"


@pytest.mark.parametrize("operation", sorted(TABLES))
def test_the_table_names_every_member_of_the_request_shape_it_covers(operation):
    table = TABLES[operation]
    root = _service().operation_model(operation).input_shape
    # The structures whose members the table lists: the request, and each listed path with
    # members of its own in the table (a list's items are its path with "[]").
    covered = {""} | {path.rpartition(".")[0] for path in table if "." in path}
    missing = []
    for node in sorted(covered):
        shape = root if not node else _shape_at(root, node)
        assert shape is not None and shape.type_name == "structure", node
        prefix = f"{node}." if node else ""
        missing += [
            f"{prefix}{member}"
            for member in shape.members
            if f"{prefix}{member}" not in table and f"{prefix}{member}[]" not in table
        ]
    assert not missing, f"{operation}: the table says nothing of {missing}"


def test_every_refused_or_ignored_member_says_why():
    silent = [
        f"{operation} {path}"
        for operation, table in TABLES.items()
        for path, rule in table.items()
        if rule.kind != HANDLED and not rule.reason
    ]
    assert not silent


def test_the_docs_page_is_generated_from_the_table():
    assert DOCS_PAGE.is_file(), f"{DOCS_PAGE} is missing; write it with: {REGENERATE}"
    assert DOCS_PAGE.read_text(encoding="utf-8") == markdown(), (
        f"{DOCS_PAGE} differs from the table in emulation.py; regenerate it with: {REGENERATE}"
    )
