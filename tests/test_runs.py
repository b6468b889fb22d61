"""Run folders: atomic writes never leave half-written files; completeness follows config and code."""

import json
import os

import pytest

from egolib import runs


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "sub" / "a.json"
    runs.write_json(path, {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    runs.write_text(path, "new")
    assert path.read_text() == "new"
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it, not mkstemp's 0600


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.txt"
    runs.write_text(path, "old")
    with pytest.raises(RuntimeError), runs.atomic_open(path) as f:
        f.write("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_save_torch_round_trip(tmp_path):
    import torch

    runs.save_torch(tmp_path / "t.pt", {"w": torch.arange(3)})
    assert torch.equal(torch.load(tmp_path / "t.pt", weights_only=True)["w"], torch.arange(3))


def test_is_complete_needs_done_same_config_and_code(tmp_path):
    config = {"method": "gsm", "seed": 0}
    assert not runs.is_complete(tmp_path, config)
    runs.write_json(tmp_path / "config.json", runs.manifest(config))
    assert not runs.is_complete(tmp_path, config)  # no DONE yet
    runs.write_text(tmp_path / runs.DONE, "")
    assert runs.is_complete(tmp_path, config)
    assert not runs.is_complete(tmp_path, {"method": "gsm", "seed": 1})
    stale = runs.manifest(config) | {"code_version": "0" * 16}
    runs.write_json(tmp_path / "config.json", stale)
    assert not runs.is_complete(tmp_path, config)
