"""Write docs/reference/emulation.md from the runner's emulation tables.

Run from the repository root: ``runner/.venv/bin/python runner/tools/emulation_doc.py``.
``runner/tests/test_emulation.py`` fails while the committed page differs from the tables.
"""

from __future__ import annotations

from pathlib import Path

from sagemaker_pipelines_local.emulation import markdown

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "emulation.md"


def main() -> None:
    PAGE.write_text(markdown(), encoding="utf-8")
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
