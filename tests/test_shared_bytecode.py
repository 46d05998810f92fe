"""The suite's bytecode sharing between generated projects hands a .pyc only to its source."""

from __future__ import annotations

import os
import py_compile

from conftest import SharedBytecode


def _venv(root, files: dict[str, str]):
    site = root / "lib" / "python3.11" / "site-packages"
    for name, text in files.items():
        (site / name).parent.mkdir(parents=True, exist_ok=True)
        (site / name).write_text(text)
    return root, site


def test_a_kept_pyc_goes_only_to_the_same_source_file(tmp_path):
    first, first_site = _venv(tmp_path / "first", {"pkg/mod.py": "X = 1\n"})
    compiled = py_compile.compile(str(first_site / "pkg/mod.py"), doraise=True)
    shared = SharedBytecode(tmp_path / "shared")
    shared.keep(first)
    assert len(list((tmp_path / "shared").iterdir())) == 1

    # The same file (a hard link, as uv links from its cache) gets the kept .pyc.
    second, second_site = _venv(tmp_path / "second", {})
    (second_site / "pkg").mkdir(parents=True)
    os.link(first_site / "pkg/mod.py", second_site / "pkg/mod.py")
    shared.seed(second)
    (seeded,) = (second_site / "pkg" / "__pycache__").iterdir()
    assert seeded.name == os.path.basename(compiled)
    assert seeded.read_bytes() == (first_site / "pkg/__pycache__" / seeded.name).read_bytes()

    # Another file at the same place, even with the same size and mtime, does not.
    third, third_site = _venv(tmp_path / "third", {"pkg/mod.py": "X = 2\n"})
    stat = (first_site / "pkg/mod.py").stat()
    os.utime(third_site / "pkg/mod.py", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shared.seed(third)
    assert not (third_site / "pkg" / "__pycache__").exists()
