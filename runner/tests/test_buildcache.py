"""The definition build cache: same inputs read back, any change rebuilt, damage survived."""

from __future__ import annotations

import json
import os

import pytest

from sagemaker_pipelines_local import DefinitionCache, LocalObjectStore
from sagemaker_pipelines_local.offline import build_definition

BUCKET = "sagemaker-us-east-1-123456789012"


@pytest.fixture
def project(tmp_path):
    """A pipeline package as a project has it: code, a script, compiled bytecode."""
    package = tmp_path / "project" / "demo"
    (package / "scripts").mkdir(parents=True)
    (package / "pipeline.py").write_text("STEPS = ['Train']\n")
    (package / "scripts" / "train.py").write_text("print('training')\n")
    (package / "__pycache__").mkdir()
    (package / "__pycache__" / "pipeline.cpython-311.pyc").write_bytes(b"\x00bytecode")
    return package


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv("SAGEMAKER_USER_CONFIG_OVERRIDE", raising=False)
    monkeypatch.delenv("SAGEMAKER_ADMIN_CONFIG_OVERRIDE", raising=False)
    return DefinitionCache(tmp_path / "cache")


class Builds:
    """A build function that counts its calls and uploads the script, as the SDK does."""

    def __init__(self, package):
        self.package = package
        self.calls = 0

    def __call__(self, boto_session):
        self.calls += 1
        builds = self

        class Pipeline:
            def definition(self):
                body = (builds.package / "scripts" / "train.py").read_bytes()
                boto_session.client("s3").put_object(Bucket=BUCKET, Key="code/train.py", Body=body)
                return json.dumps({"Version": "2020-12-01", "Build": builds.calls})

        return Pipeline()


def build_or_load(cache, project, workdir, facts=None):
    key = cache.key([project], facts or {"region": "us-east-1"})
    hit = cache.load(key, workdir)
    if hit is not None:
        return hit.definition
    return build_definition(
        Builds.current, region="us-east-1", workdir=workdir, cache=cache, cache_key=key
    )


@pytest.fixture
def builds(project):
    Builds.current = Builds(project)
    return Builds.current


def test_an_unchanged_build_is_read_back_with_its_uploads(cache, project, builds, tmp_path):
    first = build_or_load(cache, project, tmp_path / "a")
    second = build_or_load(cache, project, tmp_path / "b")

    assert builds.calls == 1
    assert second == first
    # The second workspace got the uploaded script, as if the SDK had uploaded it there.
    uri = f"s3://{BUCKET}/code/train.py"
    assert LocalObjectStore(tmp_path / "b").read_bytes(uri) == b"print('training')\n"


def test_bytecode_does_not_count_as_a_change(cache, project):
    before = cache.key([project], {})
    (project / "__pycache__" / "pipeline.cpython-311.pyc").write_bytes(b"\x01other")
    (project / "scripts" / "__pycache__").mkdir()
    (project / "scripts" / "__pycache__" / "train.cpython-312.pyc").write_bytes(b"\x02")
    assert cache.key([project], {}) == before


@pytest.mark.parametrize(
    "change",
    ["edit a script", "add a file", "rename a file", "another fact"],
)
def test_any_change_to_what_the_build_reads_gives_another_key(cache, project, change):
    facts = {"settings": "Settings(region='us-east-1')"}
    before = cache.key([project], facts)
    if change == "edit a script":
        (project / "scripts" / "train.py").write_text("print('training, v2')\n")
    elif change == "add a file":
        (project / "scripts" / "helpers.py").write_text("")
    elif change == "rename a file":
        (project / "scripts" / "train.py").rename(project / "scripts" / "fit.py")
    else:
        facts = {"settings": "Settings(region='eu-west-1')"}
    assert cache.key([project], facts) != before


def test_the_sdks_configuration_file_is_part_of_the_key(cache, project, tmp_path, monkeypatch):
    config = tmp_path / "sagemaker-config.yaml"
    monkeypatch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    config.write_text("SageMaker: {}\n")
    before = cache.key([project], {})
    config.write_text("SageMaker:\n  PythonSDK:\n    Modules: {}\n")
    assert cache.key([project], {}) != before


def test_an_edited_script_is_built_again(cache, project, builds, tmp_path):
    build_or_load(cache, project, tmp_path / "a")
    (project / "scripts" / "train.py").write_text("print('training, v2')\n")
    build_or_load(cache, project, tmp_path / "b")

    assert builds.calls == 2
    uri = f"s3://{BUCKET}/code/train.py"
    assert LocalObjectStore(tmp_path / "b").read_bytes(uri) == b"print('training, v2')\n"


def test_a_new_build_replaces_the_kept_one(cache, project, builds, tmp_path):
    key = cache.key([project], {"region": "us-east-1"})
    for _ in range(2):
        build_definition(builds, region="us-east-1", cache=cache, cache_key=key)
    assert json.loads(cache.load(key).definition)["Build"] == 2
    assert [p.name for p in cache.root.iterdir()] == [key]


def test_a_damaged_entry_is_a_miss_and_is_removed(cache, project, builds, tmp_path):
    build_or_load(cache, project, tmp_path / "a")
    key = cache.key([project], {"region": "us-east-1"})
    (cache.root / key / "objects.json").write_text("{not json")

    assert cache.load(key, tmp_path / "b") is None
    assert not (cache.root / key).exists()
    build_or_load(cache, project, tmp_path / "b")
    assert builds.calls == 2


def test_a_failed_build_keeps_nothing(cache, project, tmp_path):
    def broken(boto_session):
        raise ValueError("the project's own mistake")

    key = cache.key([project], {})
    with pytest.raises(ValueError):
        build_definition(broken, region="us-east-1", cache=cache, cache_key=key)
    assert cache.load(key) is None
    assert not cache.root.exists() or not any(cache.root.iterdir())


def test_only_the_most_recently_used_entries_are_kept(tmp_path):
    cache = DefinitionCache(tmp_path / "cache", keep=2)
    for number, key in enumerate(["a" * 64, "b" * 64]):
        cache.save(key, f'{{"n": {number}}}', {})
        os.utime(cache.root / key, (1_000 + number, 1_000 + number))
    assert cache.load("a" * 64) is not None  # used: now the newest
    cache.save("c" * 64, "{}", {})

    assert sorted(p.name[0] for p in cache.root.iterdir()) == ["a", "c"]
    assert cache.clear() == 2
    assert cache.load("a" * 64) is None


def test_cache_and_key_go_together(cache, builds):
    with pytest.raises(ValueError, match="together"):
        build_definition(builds, region="us-east-1", cache=cache)


def test_a_missing_source_is_named(cache, tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such-package"):
        cache.key([tmp_path / "no-such-package"], {})
