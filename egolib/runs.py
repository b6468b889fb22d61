"""Run folders: atomic writes, verified files, one owner at a time, and "is this run complete and current".

A run folder ``runs/<name>/`` holds ``config.json``, ``checkpoint.pt``, ``log.csv``, ``scores_s1.npz``,
``scores_s2.npz``, ``metrics.json``, ``submission.zip`` and ``DONE`` (written last). Every file goes through a
temporary file in the same folder and ``os.replace``, so a crash never leaves a half-written file behind.

Trust nothing on disk:
    locks       ``exclusive(folder)``: one process owns a run folder (``.lock`` holds its pid, ``flock`` makes it
                exclusive and frees it when the process ends in any way); a second one is told who holds it.
    hashes      ``save_torch`` records the SHA-256 of what it wrote in ``<file>.sha256``; ``load_torch`` checks
                it, and ``DONE`` lists the SHA-256 of every output, so a truncated or altered file is found.
    set aside   a corrupt file is renamed ``<file>.corrupt-<time>`` (``set_aside``), never deleted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from egolib import codehash

log = logging.getLogger(__name__)

DONE = "DONE"
LOCK = ".lock"
HASH_SUFFIX = ".sha256"
TRAINED_BY = ("train", "pretrain")  # the modules whose code makes the files of a run folder
# The manifest of the stand-in weights shipped in the repository's weights/ folder (egolib.weights)
SHIPPED_MANIFEST = Path(__file__).resolve().parents[1] / "weights" / "manifest.json"
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


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a corrupt one is named with the line and column of the problem.

    Raises:
        ValueError: ``path`` is not valid JSON.
    """
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e}); fix the file, or move it away to have it made "
                         "again") from None


# --------------------------------------------------------------------------------------------------
# Verified files: a SHA-256 recorded when written, checked when read


class CorruptFile(ValueError):
    """A file that is truncated, altered or unreadable; ``path`` names it."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        super().__init__(f"{path} is corrupt or truncated ({reason})")


def sha256_file(path: str | Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_file(path: Path) -> Path:
    return path.with_name(path.name + HASH_SUFFIX)


def save_torch(path: str | Path, obj: Any) -> None:
    """``torch.save`` atomically (serialised in memory first, then one atomic write), its SHA-256 recorded.

    ``<path>.sha256`` is written first and lists the new hash and the one it replaces, so that a crash between
    the two writes leaves a file that still verifies.
    """
    import torch

    path = Path(path)
    buf = io.BytesIO()
    torch.save(obj, buf)
    data = buf.getvalue()
    previous = _recorded_hashes(path)[:1]
    write_text(_hash_file(path), "\n".join([hashlib.sha256(data).hexdigest(), *previous]) + "\n")
    write_bytes(path, data)


def _recorded_hashes(path: Path) -> list[str]:
    try:
        return _hash_file(path).read_text().split()
    except FileNotFoundError:
        return []


def load_torch(path: str | Path, **kwargs: Any) -> Any:
    """``torch.load(path, weights_only=True, **kwargs)`` after checking the SHA-256 ``save_torch`` recorded (files
    without a record, such as downloaded weights, are only loaded).

    Raises:
        CorruptFile: the file does not match its recorded hash, or torch cannot read it.
    """
    import torch

    path = Path(path)
    recorded = _recorded_hashes(path)
    if recorded and sha256_file(path) not in recorded:
        raise CorruptFile(path, f"its SHA-256 is not the one recorded in {_hash_file(path).name} when it was written")
    try:
        return torch.load(path, weights_only=True, **kwargs)
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise CorruptFile(path, f"torch cannot read it: {str(e).splitlines()[0]}") from None


def set_aside(path: str | Path) -> Path:
    """Rename a corrupt file (and its hash record) to ``<name>.corrupt-<time>``: kept for inspection, never used.

    Returns:
        The new path.
    """
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    if _hash_file(path).exists():
        os.replace(_hash_file(path), target.with_name(target.name + HASH_SUFFIX))
    log.warning("%s is corrupt: moved aside to %s", path, target)
    return target


def write_done(folder: str | Path, files: Iterable[str]) -> None:
    """Write ``DONE`` last: the time and the SHA-256 of each of ``files`` (names inside ``folder``)."""
    folder = Path(folder)
    hashes = {name: sha256_file(folder / name) for name in files}
    write_json(folder / DONE, {"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "sha256": hashes})


def unverified(folder: str | Path, files: Iterable[str]) -> list[str]:
    """What keeps ``folder`` from being complete: ``DONE`` missing or unreadable, or one of ``files`` missing or
    different from the hash ``DONE`` recorded. An empty list when every file is there and verifies."""
    folder = Path(folder)
    try:
        recorded = json.loads((folder / DONE).read_text())["sha256"]
    except FileNotFoundError:
        return [f"{folder / DONE} is missing"]
    except (ValueError, KeyError, TypeError):
        return [f"{folder / DONE} records no file hashes (written by older code, or damaged)"]
    problems = []
    for name in files:
        path = folder / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif name not in recorded:
            problems.append(f"{path} has no hash in {DONE}")
        elif sha256_file(path) != recorded[name]:
            problems.append(f"{path} is corrupt: its SHA-256 differs from the one {DONE} recorded")
    return problems


# --------------------------------------------------------------------------------------------------
# One owner per folder


class FolderInUse(RuntimeError):
    """Another live process holds the folder's lock."""


_HELD: dict[str, int] = {}  # folders this process holds: re-entrant (a run's fit holds its run's lock again)


@contextlib.contextmanager
def exclusive(folder: str | Path, *, what: str = "run folder", wait: bool = False) -> Iterator[None]:
    """Own ``folder`` for the life of the block: an exclusive ``flock`` on ``folder/.lock``, which holds our pid.

    The lock goes when the process ends in any way (the kernel drops it), so the lock of a dead process is
    simply taken over. On entry, temporary files that a killed writer left (``.*.tmp``) are removed: while the
    lock is held no one else writes there. Re-entrant within a process.

    Args:
        folder: the run folder (made when missing).
        what: how messages call it (``run folder``, ``pretraining``).
        wait: wait for the holder to finish (shared caches) instead of failing at once (run folders).

    Raises:
        FolderInUse: ``folder`` is held by another process and ``wait`` is False; the message names its pid.
    """
    import fcntl

    folder = Path(folder)
    key = str(folder.resolve())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            if not wait:
                raise FolderInUse(f"{what} {folder} is in use by process {holder}; wait for it to end, or stop it, "
                                  "then run again") from None
            log.info("%s %s is in use by process %s: waiting for it", what, folder, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        remove_orphans(folder)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
    finally:
        os.close(fd)  # drops the flock


def remove_orphans(folder: str | Path) -> list[Path]:
    """Remove the temporary files (``.<name>.*.tmp``) that a process killed while writing left in ``folder``.

    Call it only while holding ``exclusive(folder)``: then no one is writing them.
    """
    orphans = sorted(Path(folder).glob(".*.tmp"))
    for path in orphans:
        path.unlink(missing_ok=True)
        log.info("removed %s, left by a write that was interrupted", path)
    return orphans


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
    """A hash of what makes a run's files: the library code of ``train``, ``pretrain`` and every egolib module they
    import, and the manifest of the shipped weights the runs start from (``SHIPPED_MANIFEST``). Runs trained by other
    code or from other shipped weights are not "current"; a change to the book driver or to a chapter's plotting
    helpers is not a change to training (``egolib.codehash``)."""
    manifest = SHIPPED_MANIFEST
    shipped = hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else "none"
    return hashlib.sha256(f"{codehash.source_hash(TRAINED_BY)} {shipped}".encode()).hexdigest()[:16]


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


# Fields a run folder may differ in and still hold the same run: its path, and the weights' memory layout (float
# rounding only; run folders written before the field existed have none).
SAME_RUN_DESPITE = ("run_dir", "channels_last")


def differences(saved: dict[str, Any], config: dict[str, Any], ignore: Iterable[str] = SAME_RUN_DESPITE
                ) -> dict[str, Any]:
    """``{field: (saved value, config value)}`` for each field of ``config`` whose value in ``saved`` (a run's
    ``config.json``) differs, leaving out ``ignore``: empty when the folder holds this run."""
    skip = set(ignore)
    return {k: (saved.get(k), v) for k, v in config.items() if k not in skip and saved.get(k) != v}


# The splits a run scores, per dataset: EPIC-55's seen and unseen test sets; EPIC-100's validation and test.
TEST_SPLITS = {"epic55": ("s1", "s2"), "epic100": ("validation", "test")}


def run_outputs(dataset: str = "epic55") -> tuple[str, ...]:
    """The files of a complete run folder of ``dataset``, each verified against the hash ``DONE`` records."""
    scores = tuple(f"scores_{split}.npz" for split in TEST_SPLITS[dataset])
    return ("config.json", "checkpoint.pt", "log.csv", *scores, "metrics.json", "submission.zip")


RUN_OUTPUTS = run_outputs("epic55")


def is_complete(run_dir: str | Path, config: dict[str, Any], outputs: Iterable[str] | None = None) -> bool:
    """True when ``run_dir`` has ``DONE``, every one of ``outputs`` (default: the run outputs of the config's
    dataset) is there and matches the hash ``DONE`` recorded, and its ``config.json`` holds the same config and
    code version."""
    run_dir = Path(run_dir)
    if outputs is None:
        outputs = run_outputs(config.get("dataset", "epic55"))
    if unverified(run_dir, outputs):
        return False
    saved = read_json(run_dir / "config.json")
    same_config = not differences(saved, config, ignore=("channels_last",))  # the run folder's path counts here
    return same_config and saved.get("code_version") == code_version()
