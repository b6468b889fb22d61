"""Run folders: atomic writes never leave half-written files; completeness follows config and code."""

import json
import os
import subprocess
import sys
from pathlib import Path

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
    outputs = ("config.json",)
    assert not runs.is_complete(tmp_path, config, outputs)
    runs.write_json(tmp_path / "config.json", runs.manifest(config))
    assert not runs.is_complete(tmp_path, config, outputs)  # no DONE yet
    runs.write_done(tmp_path, outputs)
    assert runs.is_complete(tmp_path, config, outputs)
    assert not runs.is_complete(tmp_path, {"method": "gsm", "seed": 1}, outputs)
    stale = runs.manifest(config) | {"code_version": "0" * 16}
    runs.write_json(tmp_path / "config.json", stale)
    runs.write_done(tmp_path, outputs)
    assert not runs.is_complete(tmp_path, config, outputs)


# --------------------------------------------------------------------------------------------------
# Files verified against the hash recorded when they were written


def test_complete_means_every_output_present_and_verified(tmp_path):
    config = {"method": "gsm", "seed": 0}
    runs.write_json(tmp_path / "config.json", runs.manifest(config))
    runs.write_text(tmp_path / "metrics.json", "{}")
    runs.write_done(tmp_path, ("config.json", "metrics.json"))
    assert runs.is_complete(tmp_path, config, ("config.json", "metrics.json"))
    assert runs.unverified(tmp_path, ("config.json", "metrics.json")) == []
    (tmp_path / "metrics.json").write_text("{\"s1\"")  # truncated
    assert runs.unverified(tmp_path, ("config.json", "metrics.json")) == [
        f"{tmp_path / 'metrics.json'} is corrupt: its SHA-256 differs from the one DONE recorded"]
    (tmp_path / "metrics.json").unlink()  # DONE but no metrics.json
    assert runs.unverified(tmp_path, ("metrics.json",)) == [f"{tmp_path / 'metrics.json'} is missing"]
    assert not runs.is_complete(tmp_path, config, ("config.json", "metrics.json"))
    runs.write_text(tmp_path / runs.DONE, "2020-01-01T00:00:00\n")  # older code's DONE: no hashes
    assert not runs.is_complete(tmp_path, config, ("config.json",))


def test_a_truncated_torch_file_is_named_and_set_aside(tmp_path):
    import torch

    path = tmp_path / "checkpoint.pt"
    runs.save_torch(path, {"w": torch.arange(1000)})
    assert torch.equal(runs.load_torch(path)["w"], torch.arange(1000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(runs.CorruptFile) as err:
        runs.load_torch(path)
    assert str(err.value).startswith(f"{path} is corrupt or truncated (its SHA-256 is not the one recorded")
    (tmp_path / "checkpoint.pt.sha256").unlink()  # no record: torch's own error, with the path
    with pytest.raises(runs.CorruptFile, match=rf"^{path} is corrupt or truncated \(torch cannot read it"):
        runs.load_torch(path)
    runs.save_torch(path, {"w": torch.arange(3)})
    path.write_bytes(path.read_bytes()[:100])
    moved = runs.set_aside(path)
    assert not path.exists() and moved.name.startswith("checkpoint.pt.corrupt-")
    assert moved.stat().st_size == 100  # kept, never deleted
    assert (tmp_path / (moved.name + ".sha256")).exists()


def test_a_crash_between_the_hash_and_the_file_leaves_a_file_that_verifies(tmp_path, monkeypatch):
    import torch

    path = tmp_path / "t.pt"
    runs.save_torch(path, {"w": torch.arange(3)})
    real = runs.write_bytes

    def crash(*args):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(runs, "write_bytes", crash)
    with pytest.raises(KeyboardInterrupt):
        runs.save_torch(path, {"w": torch.arange(4)})  # the new hash is recorded, the file is the old one
    monkeypatch.setattr(runs, "write_bytes", real)
    assert torch.equal(runs.load_torch(path)["w"], torch.arange(3))


def test_corrupt_json_is_named_with_its_path(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"method": "gsm",')
    with pytest.raises(ValueError, match=rf"^{path} is not valid JSON \(Expecting property name"):
        runs.read_json(path)


# --------------------------------------------------------------------------------------------------
# One process per run folder


_HOLD = """
import sys, time
from egolib import runs
with runs.exclusive(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_second_process_is_told_who_holds_the_run_folder(tmp_path):
    folder = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(Path(runs.__file__).resolve().parent.parent)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(runs.FolderInUse) as err, runs.exclusive(folder):
            pass
        assert str(err.value).startswith(f"run folder {folder} is in use by process {holder.pid};")
    finally:
        holder.kill()
        holder.wait()
    with runs.exclusive(folder):  # a dead holder's lock is taken over
        assert (folder / runs.LOCK).read_text() == f"{os.getpid()}\n"


def test_the_lock_is_reentrant_released_on_error_and_a_stale_pid_is_taken_over(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / runs.LOCK).write_text("999999999\n")  # a process that died without unlocking (no flock held)
    (folder / ".checkpoint.pt.abc123.tmp").write_bytes(b"half")  # a write killed half-way
    with pytest.raises(RuntimeError), runs.exclusive(folder):
        assert (folder / runs.LOCK).read_text() == f"{os.getpid()}\n"
        assert not list(folder.glob(".*.tmp"))  # orphans removed while the folder is ours
        with runs.exclusive(folder):  # the same process again (run -> fit)
            pass
        raise RuntimeError("fails inside")
    with runs.exclusive(folder):  # released by the error
        pass
