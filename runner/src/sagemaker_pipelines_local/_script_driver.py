"""Runs a training entry script the way SDK v3's basic script driver does.

Also the one home of the drivers' JSON round trip, which the runner imports.

Started by the runner after ``sm_training.env`` was sourced: the entry script and the
hyperparameters come from that environment (``SM_ENTRY_SCRIPT``, ``SM_HPS``), each value
decoded as JSON when it is JSON and passed as ``--key value``. Standard library only: it
runs in the image's Python environment.
"""

from __future__ import annotations

import json
import os
import sys


def safe_deserialize(value: object) -> object:
    """A hyperparameter string decoded as the drivers and toolkits do: JSON, else as is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def safe_serialize(value: object) -> str:
    """Strings as they are, anything else as JSON (str() when not serialisable)."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value)
    except TypeError:
        return str(value)


def main() -> None:
    entry = os.environ["SM_ENTRY_SCRIPT"]
    args: list[str] = []
    for key, value in json.loads(os.environ["SM_HPS"]).items():
        args += [f"--{key}", safe_serialize(safe_deserialize(value))]
    if entry.endswith(".py"):
        os.execv(sys.executable, [sys.executable, entry, *args])  # noqa: S606 - as the driver
    if entry.endswith(".sh"):
        os.execv("/bin/sh", ["/bin/sh", entry, *args])  # noqa: S606 - as the driver
    sys.exit(f"Unsupported entry script type: {entry} (only .py and .sh run).")


if __name__ == "__main__":
    main()
