"""Run folders: atomic writes, the manifest, and "is this run complete and current".

A run folder ``runs/<name>/`` holds ``config.json``, ``checkpoint.pt``, ``log.csv``, ``scores_s1.npz``,
``scores_s2.npz``, ``metrics.json`` and ``DONE`` (written last). Every file goes through a temporary file
in the same folder and ``os.replace``, so a crash never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from egolib import codehash

DONE = "DONE"
TRAINED_BY = ("train", "pretrain")  # the modules whose code makes the files of a run folder
_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it over ``path``, on error remove it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the mode a plain open() would
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_open(path, "w") as f:
        f.write(text)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_json(path: str | Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_torch(path: str | Path, obj: Any) -> None:
    """``torch.save`` atomically (serialised in memory first, then one atomic write)."""
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(path, buf.getvalue())


@contextlib.contextmanager
def file_lock(path: str | Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path``: parallel runs (``make -j``, torchrun ranks) wait for each other."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def code_version() -> str:
    """A hash of the library code that makes a run's files: ``train``, ``pretrain`` and every egolib module they
    import. Runs trained by other code are not "current"; a change to the book driver or to a chapter's plotting
    helpers is not a change to training (``egolib.codehash``)."""
    return codehash.source_hash(TRAINED_BY)


def git_commit() -> str:
    """The git commit of the working tree (``+dirty`` with local changes), or ``unknown`` outside git."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour decides the numbers."""
    import numpy
    import torch
    import torchvision

    return {"torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__}


def manifest(config: dict[str, Any]) -> dict[str, Any]:
    """The content of ``config.json``: the full config plus the code, commit and library versions."""
    return {**config, "code_version": code_version(), "git_commit": git_commit(), "versions": library_versions()}


def is_complete(run_dir: str | Path, config: dict[str, Any]) -> bool:
    """True when ``run_dir`` has ``DONE`` and its ``config.json`` holds the same config and code version."""
    run_dir = Path(run_dir)
    if not (run_dir / DONE).exists() or not (run_dir / "config.json").exists():
        return False
    saved = json.loads((run_dir / "config.json").read_text())
    same_config = all(saved.get(k) == v for k, v in config.items())
    return same_config and saved.get("code_version") == code_version()
