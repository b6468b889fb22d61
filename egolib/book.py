"""Build the whole book: every chapter in dependency order, each re-executed only when its inputs changed.

``make book`` runs ``python -m egolib.book`` (preset ``demo``). The steps, in the order their inputs allow:

    01_data_prep         book/01_data_prep.ipynb -> runs/book/01_data_prep.ipynb   SynthKitchens, the data
    train <run>          book/03_train.ipynb     -> runs/<run>/train.ipynb         one per configs/variants.yaml entry
    02_pretrain          book/02_pretrain.ipynb  -> runs/book/02_pretrain.ipynb    the backbones' pre-training (the runs
                                                                                   make it; the chapter shows it)
    04_gsm_gates ... 07_efficiency               -> runs/book/<stem>.ipynb         after every training run
    results, run index   written from the run folders and the chapters' outputs -> runs/book/*.md
    html                 jupyter-book build (warnings are errors)               -> _build/html/index.html

Every chapter gets the parameters ``preset``, ``seed`` and ``runs`` (those it declares). It writes its tables and
headline numbers into ``runs/book/<stem>/`` (``summary.json``), which the results page reads.

**Seeds.** ``--seed 1`` builds the book on another SynthKitchens draw (``data/synthkitchens-<preset>-s1``, run
folders ``...-s1``) beside the first, whose data, run folders and pre-training caches it leaves untouched (the
pages in ``runs/book/`` and the HTML are the last build's). ``--seeds 0,1,2`` also trains every run on the other
draws; the pages are the first seed's, and chapter 06 shows each Table 2 number as mean ± std over the draws
(``egolib.seeds``), keyed on every draw's run folders.

**Cheap rebuilds.** Each executed step has a key: a hash of the notebook it executes, its parameters, the egolib
code it imports (``egolib.codehash``: the modules its cells import, transitively) and the files it reads (for the
chapters after training: every file of the build's run folders except the executed pages; 06 and 07 also their
configs and benchmark results). The key is stored beside the executed notebook (``.<stem>.key.json``); a step
whose key and products are unchanged is reused, not executed. The library decides for the run folders themselves
(``runs.is_complete``: same config, same training code), so a changed training page with an unchanged run
re-executes the page without training again. The HTML is always rebuilt from scratch (``--all``), so that every
warning is seen.

Executed notebooks are written to a temporary file and renamed, so an interrupted build never leaves a
half-executed notebook that looks finished; a step that fails stops the steps that need it, the others go on,
and the build ends with the failure. ``--jobs 2`` runs two steps at a time, each kernel on one thread: on 2 CPU
cores that gives 13-42 % more throughput than one 2-thread run. GSM + EgoACO variants
start from the trained GSM run of their backbone, so each waits for it.

``--launcher slurm`` trains each variant as a Slurm job through submitit (``egolib.launch``): its step submits the
job, waits for it, then executes the training page here, which finds the run complete and only renders it.
``--dataset epic100`` builds on EPIC-KITCHENS-100 (without ``--data-root``, SynthKitchens in the EPIC-100 layout):
every chapter declares ``dataset`` and works on the dataset's labelled split (``validation``), chapter 06 gives the
EPIC-100 metrics table in place of Table 2, and the results page compares validation overall with its unseen
participants where the report compares S1 with S2 (``make book DATASET=epic100``).

**The ledger.** Before it starts, the build prints which steps it will run and which it will reuse (their keys as
they are now; a chapter that reads the run folders runs when a run will train), and an estimate of its wall time
on this machine: from the last build's ledger (each step's wall time) when there is one of the same preset and
dataset, else from the benchmark (``benchmarks/bench_models.py``'s JSON at ``runs/book/07_efficiency/bench.json``:
the training runs only), else none. At the end it writes ``runs/book/build.json`` beside its summary table: each
step run or reused, its wall time, CPU time (user + sys of the step's kernel or ``jupyter-book`` process with
their own children, plus the build's thread for the step: keys, pages), peak RSS, start and end in this build,
and the execution that produced its output; the build's wall time, and whether every step ran in this build.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import platform
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from egolib import codehash, launch, results, runs
from egolib.config import DATASETS, PRESETS, RunConfig
from egolib.seeds import parse_seeds

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent
RUNS = "runs"  # the runs root, relative to ROOT (the library's run folders live there)
TRAIN = "train"  # the step every chapter after training waits for


@dataclass(frozen=True)
class Chapter:
    """One executed chapter: ``book/<stem>.ipynb`` -> ``runs/book/<stem>.ipynb``."""

    stem: str
    after: tuple[str, ...] = ()  # steps that must finish first; TRAIN = every training run
    reads_runs: bool = False  # reads the build's run folders (their files are part of its key)
    reads: tuple[str, ...] = ()  # other files it reads, globs relative to the repo root ({preset}, {seed} filled)


# The book's chapters in reading order (the training pages, one per run, sit between 02 and 04).
CHAPTERS = (
    Chapter("01_data_prep"),
    Chapter("02_pretrain", after=("01_data_prep",)),
    Chapter("04_gsm_gates", after=(TRAIN,), reads_runs=True),
    Chapter("05_lsta_attention", after=(TRAIN,), reads_runs=True),
    Chapter("06_ensembles", after=(TRAIN,), reads_runs=True, reads=("configs/ensembles.yaml",)),
    Chapter("07_efficiency", after=(TRAIN,), reads_runs=True,  # benchmark results: measured by 07 when missing
            reads=(f"{RUNS}/book/07_efficiency/bench.json", f"{RUNS}/book/07_efficiency/gpu.json")),
)
GENERATED_PAGES = ("results", "appendix_runs")  # runs/book/<page>.md, written from the runs and the chapters
COMMON_PARAMETERS = ("preset", "seed", "runs")  # passed to every chapter that declares them
HIDDEN_INPUT_TAGS = ("parameters", "injected-parameters")  # cells whose input the book collapses
PEAK_MEMORY_TAG = "egobook-peak-memory"  # the last cell, which reports the kernel's usage (``Usage``)
LEDGER = f"{RUNS}/book/build.json"  # what the last build did, per step (relative to ROOT)
BENCH = f"{RUNS}/book/07_efficiency/bench.json"  # benchmarks/bench_models.py's JSON, as chapter 07 keeps it
# The kernel's usage: its own peak RSS (KiB on Linux) and CPU seconds, user + sys, its own and its children's.
USAGE_CELL = ("import json, resource\n"
              "_me, _kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)\n"
              "print(json.dumps({'maxrss_kib': _me.ru_maxrss,\n"
              "                  'cpu_s': _me.ru_utime + _me.ru_stime + _kids.ru_utime + _kids.ru_stime}))")


class Usage(NamedTuple):
    """What one executed notebook's kernel used."""

    peak_mib: float  # the kernel's peak resident memory
    cpu_s: float  # user + sys CPU seconds of the kernel and the processes it waited for


# --------------------------------------------------------------------------------------------------
# executing one notebook


def execute(notebook: str | Path, output: str | Path, parameters: dict[str, Any], title: str | None = None
            ) -> Usage:
    """Execute ``notebook`` with papermill from the repo root into ``output`` (atomic rename at the end).

    ``title`` replaces the executed copy's first heading, so that each run has its own page title in the book.
    Consecutive stream outputs are merged with carriage returns applied, as a terminal shows them: a progress
    bar is stored as its last state, not as one output per update. The parameter cells' inputs are collapsed
    (``hide-input``); scripts that would fetch from the internet are removed from HTML outputs (the book serves
    plotly.js itself, so it works offline).

    Returns:
        The kernel's peak resident memory and CPU time (read by a last cell that the saved copy does not keep).
    """
    import nbformat
    import papermill as pm
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp_in = output.with_name(f".{output.stem}.in.ipynb")
    tmp = output.with_name(f".{output.stem}.tmp.ipynb")
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(USAGE_CELL, metadata={"tags": [PEAK_MEMORY_TAG, "remove-cell"]}))
    nbformat.write(nb, tmp_in)
    log.info("executing %s -> %s %s", notebook, output, parameters)
    try:
        pm.execute_notebook(str(tmp_in), str(tmp), parameters=parameters, cwd=str(ROOT), progress_bar=False)
    finally:
        tmp_in.unlink(missing_ok=True)
    nb = nbformat.read(tmp, as_version=4)
    last = nb.cells.pop()
    assert PEAK_MEMORY_TAG in last.metadata.get("tags", []), "the usage cell must stay last"
    reported = json.loads(last.outputs[0]["text"])
    usage = Usage(peak_mib=reported["maxrss_kib"] / 1024, cpu_s=reported["cpu_s"])
    CoalesceStreamsPreprocessor().preprocess(nb, {})
    polish(nb)
    if title is not None:
        first = nb.cells[0]
        heading, _, rest = first.source.partition("\n")
        if first.cell_type != "markdown" or not heading.startswith("# "):
            raise ValueError(f"{notebook}: the first cell must be a markdown '# ' heading to take a title")
        first.source = f"# {title}\n{rest}"
    nb.metadata.setdefault("papermill", {})["input_path"] = str(notebook)
    nbformat.write(nb, tmp)
    os.replace(tmp, output)
    return usage


_REMOTE_SCRIPT = re.compile(r"<script\b[^>]*\bsrc=[\"']https?://[^>]*>\s*</script>"  # <script src="https://...">
                            r"|<script\b[^>]*>\s*import\s+[\"']https?://[^<]*</script>", re.IGNORECASE)


def offline_html(html: str) -> str:
    """``html`` without the scripts that load from the internet (plotly's CDN copy, MathJax)."""
    return _REMOTE_SCRIPT.sub("", html)


# Calls that only set a notebook up (with imports, a cell of nothing else is collapsed in the book).
SETUP_CALLS = {"logging.basicConfig", "sns.set_theme", "sns.set", "plt.style.use", "pd.set_option",
               "warnings.filterwarnings", "warnings.simplefilter", "torch.set_num_threads", "torch.set_grad_enabled",
               "use_book_renderer",
               "figures.use_book_renderer", "np.set_printoptions"}


def is_setup(source: str) -> bool:
    """True when a code cell only imports and sets up (``SETUP_CALLS``): the book collapses its input."""
    import ast

    code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())
    try:
        with codehash.PARSE_LOCK:
            body = ast.parse(code).body
    except SyntaxError:
        return False
    calls = [s for s in body if not isinstance(s, ast.Import | ast.ImportFrom)]
    return bool(body) and len(calls) < len(body) and all(
        isinstance(s, ast.Expr) and isinstance(s.value, ast.Call) and ast.unparse(s.value.func) in SETUP_CALLS
        for s in calls)


def polish(nb: Any) -> None:
    """Reader polish on an executed notebook: parameter and set-up cells collapsed, HTML outputs made offline."""
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if cell.cell_type == "code" and "hide-input" not in tags and "remove-input" not in tags and (
                any(t in tags for t in HIDDEN_INPUT_TAGS) or is_setup(cell.source)):
            cell.metadata["tags"] = [*tags, "hide-input"]
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/html" in data:
                html = data["text/html"]
                data["text/html"] = offline_html(html if isinstance(html, str) else "".join(html))


def repolish(output: Path) -> None:
    """Apply today's ``polish`` to a notebook executed earlier (rewritten only if that changes it)."""
    import nbformat

    nb = nbformat.read(output, as_version=4)
    before = nbformat.writes(nb)
    polish(nb)
    if nbformat.writes(nb) != before:
        runs.write_text(output, nbformat.writes(nb))


def declared_parameters(notebook: str | Path) -> set[str]:
    """The parameter names of ``notebook``'s ``parameters`` cell."""
    import papermill as pm

    return set(pm.inspect_notebook(str(notebook)))


# --------------------------------------------------------------------------------------------------
# keys: is an executed step still current?


def notebook_code_hash(notebook: str | Path) -> str:
    """The hash of the egolib code that ``notebook``'s cells import (``egolib.codehash``)."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    modules: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            try:
                modules |= codehash.imported_modules(cell.source)
            except SyntaxError as err:
                raise ValueError(f"{notebook}: a code cell is not valid Python ({err}); fix the chapter") from err
    return codehash.source_hash(modules)


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def inputs_digest(files: list[Path]) -> dict[str, str]:
    """``{path relative to the repo root: sha256}`` of ``files`` (sorted)."""
    return {str(p.relative_to(ROOT)): file_digest(p) for p in sorted(files)}


def run_folder_files(run_names: list[str]) -> list[Path]:
    """The files of the build's run folders that a chapter reads: all but the executed pages and hidden files."""
    files = []
    for name in run_names:
        folder = ROOT / RUNS / name
        if folder.is_dir():
            files += [p for p in folder.iterdir()
                      if p.is_file() and p.suffix != ".ipynb" and not p.name.startswith(".")]
    return files


def step_key(notebook: Path, parameters: dict[str, Any], files: list[Path]) -> str:
    """The key of one executed step: notebook bytes, parameters, imported egolib code, files read."""
    payload = {"notebook": file_digest(notebook), "parameters": parameters,
               "code": notebook_code_hash(notebook), "inputs": inputs_digest(files)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def key_path(output: Path) -> Path:
    return output.with_name(f".{output.stem}.key.json")


def is_current(output: Path, key: str) -> bool:
    """True when ``output`` exists and was executed with ``key``."""
    path = key_path(output)
    return output.exists() and path.exists() and json.loads(path.read_text()).get("key") == key


# --------------------------------------------------------------------------------------------------
# the steps and their scheduler


@dataclass
class Step:
    """One node of the build: ``action`` returns "run" or "reused" and may set ``peak_mib``, ``child_cpu_s``, and
    the ``last_*`` fields."""

    name: str
    action: Callable[[Step], str]
    after: tuple[str, ...] = ()
    status: str = "pending"  # pending | run | reused | failed | blocked
    wall_s: float = 0.0  # in this build
    cpu_s: float | None = None  # in this build: the build's thread for it + child_cpu_s; None: the child's unknown
    child_cpu_s: float | None = 0.0  # user + sys of the process it started (kernel, jupyter-book); None: unknown
    started: str = ""  # this build's start and end of the step, ISO 8601 with the UTC offset
    ended: str = ""
    peak_mib: float | None = None  # peak RSS of the execution that produced the output (this build's or an earlier)
    last_s: float | None = None  # wall time of the execution that produced the output (this build's or an earlier)
    last_cpu_s: float | None = None  # that execution's kernel CPU time
    finished: str = ""  # when that execution finished, YYYY-MM-DDTHH:MM:SS
    error: str = ""
    soft: bool = False  # runs once its ``after`` steps have finished, even if some failed
    will_run: Callable[[], bool] | None = None  # the plan: True if it will execute (None: it always does)
    run_params: dict[str, Any] | None = None  # a training step's run (for the benchmark's estimate)


def now() -> str:
    """The local time as ISO 8601 with its UTC offset, to the second."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def run_steps(steps: list[Step], jobs: int = 1) -> list[Step]:
    """Run ``steps`` as soon as everything in their ``after`` is done, ``jobs`` at a time.

    A failed step blocks the steps that need it (unless they are ``soft``); the others go on. Returns ``steps``
    with their status.
    """
    by_name = {s.name: s for s in steps}
    for s in steps:
        unknown = [a for a in s.after if a not in by_name]
        if unknown:
            raise ValueError(f"step {s.name!r} waits for unknown step(s) {unknown}")
    ok = {"run", "reused"}

    def work(step: Step) -> None:
        step.started = now()
        t0, cpu0 = time.perf_counter(), time.thread_time()  # this thread's CPU: keys, papermill's client, pages
        try:
            step.status = step.action(step)
        except Exception as err:  # noqa: BLE001 - reported in the summary and by the exit status
            step.status, step.error = "failed", f"{type(err).__name__}: {err}"
            log.error("step %s failed: %s", step.name, step.error)
        step.wall_s = time.perf_counter() - t0
        own_s = time.thread_time() - cpu0
        step.cpu_s = None if step.child_cpu_s is None else own_s + step.child_cpu_s
        step.ended = now()

    finished = ok | {"failed", "blocked"}
    running: dict[Future, Step] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        while True:
            for s in steps:
                if s.status != "pending":
                    continue
                deps = [by_name[a] for a in s.after]
                bad = [d.name for d in deps if d.status in ("failed", "blocked")]
                if bad and not s.soft:
                    s.status, s.error = "blocked", "needs " + ", ".join(bad)
                elif all(d.status in (finished if s.soft else ok) for d in deps) \
                        and len(running) < max(1, jobs):
                    s.status = "running"
                    running[pool.submit(work, s)] = s
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in done:
                running.pop(f)
    for s in steps:
        if s.status == "pending":  # cannot happen with known names and no cycle; never leave it silent
            s.status, s.error = "blocked", "waits for " + ", ".join(s.after)
    return steps


def summary_table(steps: list[Step]) -> str:
    """The build's summary: each step, run or reused, its wall and CPU time in this build, the wall time and end of
    the execution that produced its output (for a reused step, an earlier build's), and that execution's peak
    memory. CPU "?": not measured (a notebook that failed never reports its kernel's)."""
    rows = [("step", "status", "wall (s)", "CPU (s)", "executed (s)", "finished", "peak memory (MiB)")]
    for s in steps:
        peak = f"{s.peak_mib:.0f}" if s.peak_mib is not None else "-"
        last = f"{s.last_s:.1f}" if s.last_s is not None else "-"
        cpu = "-" if s.status in ("pending", "blocked") else "?" if s.cpu_s is None else f"{s.cpu_s:.1f}"
        rows.append((s.name, s.status + (f" ({s.error})" if s.error else ""), f"{s.wall_s:.1f}", cpu, last,
                     s.finished or "-", peak))
    rows.append(("total", "", f"{sum(s.wall_s for s in steps):.1f}",
                 f"{sum(s.cpu_s for s in steps if s.cpu_s is not None):.1f}",
                 f"{sum(s.last_s for s in steps if s.last_s is not None):.1f}", "", ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i in (0, 1, 5) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))) for r in rows]
    if any(s.status == "reused" for s in steps):
        lines.append("(reused: wall and CPU are those of the check; executed, finished and peak memory are those of "
                     "the earlier execution that produced the output)")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# the ledger: what the build will do and how long that takes, what it did and what that cost


@dataclass(frozen=True)
class Estimate:
    """The build's expected wall time on this machine, and what it rests on."""

    seconds: float | None  # None: no estimate
    source: str  # "ledger" | "benchmark" | "none"
    note: str  # what it is based on and what it leaves out


def plan(steps: list[Step]) -> dict[str, bool]:
    """``{step name: True if it will execute}``, by each step's ``will_run`` as the files are now (a step without
    one always runs). A prediction that fails counts as a run (logged): the build itself decides again."""
    out = {}
    for s in steps:
        try:
            out[s.name] = True if s.will_run is None else bool(s.will_run())
        except Exception as err:  # noqa: BLE001 - only the forecast is wrong; the step decides when it runs
            log.warning("cannot tell whether %s is current (%s: %s): counted as a run", s.name,
                        type(err).__name__, err)
            out[s.name] = True
    return out


def parallel_wall(seconds: list[float], jobs: int) -> float:
    """The wall time of steps that take ``seconds`` each, ``jobs`` at a time: their sum shared by the jobs, at
    least the longest one (dependencies ignored)."""
    return max(sum(seconds) / max(1, jobs), max(seconds, default=0.0))


def executed_seconds(entry: dict[str, Any]) -> float | None:
    """How long a ledger entry's step takes to execute: its wall time if it ran in that build, else (reused) the
    wall time of the execution it reused; None for a step that failed, was blocked or has no timing."""
    if entry.get("status") == "run":
        return entry.get("wall_s")
    if entry.get("status") == "reused":
        return (entry.get("executed") or {}).get("wall_s")
    return None


def estimate_from_ledger(previous: dict[str, Any], to_run: list[str], jobs: int) -> Estimate | None:
    """The wall time of executing the steps ``to_run``, ``jobs`` at a time, by their times in the ledger
    ``previous``; None when the ledger times none of them."""
    entries = {e["name"]: e for e in previous.get("steps", [])}
    known = {n: executed_seconds(entries[n]) for n in to_run if n in entries}
    known = {n: t for n, t in known.items() if t is not None}
    if to_run and not known:
        return None
    missing = [n for n in to_run if n not in known]
    note = (f"each step's wall time in the last build ({previous.get('end', '?')}, --jobs {previous.get('jobs', '?')}"
            f", on {previous.get('host', '?')})")
    if missing:
        note += f"; not timed there, so not counted: {', '.join(missing)}"
    return Estimate(parallel_wall(list(known.values()), jobs), "ledger", note)


def estimate_from_benchmark(bench: dict[str, Any], configs: dict[str, RunConfig], segments: dict[str, int],
                            jobs: int, others: list[str]) -> Estimate | None:
    """The wall time of the training steps ``configs`` (step name -> run), ``jobs`` at a time, from
    ``benchmarks/bench_models.py``'s throughput at their preset: per run, ``epochs (all stages) x training segments
    / training clips per s + test_clips x test segments / inference clips per s``. ``segments``: ``{split: count}``
    of the dataset. None when the benchmark has none of the runs (another preset, or no run). ``others``: the steps
    to run that the benchmark does not cover (data, pretraining, chapters, pages, HTML), named in the note."""
    rows = {(r["method"], r["backbone"], r["preset"]): r for r in bench.get("variants", [])}
    n_train = segments.get("train", 0)
    n_test = sum(n for split, n in segments.items() if split != "train")
    seconds, missing = [], []
    for name, cfg in configs.items():
        row = rows.get((cfg.method, cfg.backbone, cfg.preset))
        if row is None:
            missing.append(name)
            continue
        epochs = sum(e or 0 for e in (cfg.epochs, cfg.epochs_stage2, cfg.epochs_stage3))
        seconds.append(epochs * n_train / row["train_clips_per_s"]  # (clips) / (clips/s) = s
                       + cfg.test_clips * n_test / row["infer_clips_per_s"])
    if not seconds:
        return None
    meta = bench.get("meta", {})
    note = (f"the benchmark's clips per second ({meta.get('date', '?')}, {meta.get('threads', '?')} thread(s)) x "
            f"each run's clips ({n_train} training segments, {n_test} test segments); training only, without "
            f"pretraining")
    left_out = missing + others
    if left_out:
        note += f"; not counted: {', '.join(left_out)}"
    return Estimate(parallel_wall(seconds, jobs), "benchmark", note)


def build_estimate(steps: list[Step], planned: dict[str, bool], options: dict[str, Any],
                   previous: dict[str, Any] | None, bench: dict[str, Any] | None,
                   segments: dict[str, int] | None) -> Estimate:
    """How long the build will take: from the last build's ledger ``previous`` when it has the same preset and
    dataset, else from the benchmark ``bench`` (with the dataset's ``segments``; None: unknown, a real dataset),
    else no estimate, with the reason. ``options``: this build's (``preset``, ``dataset``, ``jobs``)."""
    to_run = [s.name for s in steps if planned[s.name]]
    if not to_run:
        return Estimate(0.0, "ledger" if previous else "none", "nothing to execute: every step is reused")
    jobs = options["jobs"]
    why = []
    if previous is not None:
        other = [f"{k} {previous.get(k)}" for k in ("preset", "dataset") if previous.get(k) != options[k]]
        estimate = None if other else estimate_from_ledger(previous, to_run, jobs)
        if estimate is not None:
            return estimate
        why.append(f"the last build was {', '.join(other)}" if other else "the last build timed none of these steps")
    if bench is not None and segments is not None:
        configs = {s.name: RunConfig.from_params(s.run_params) for s in steps
                   if planned[s.name] and s.run_params is not None}
        estimate = estimate_from_benchmark(bench, configs, segments, jobs, [n for n in to_run if n not in configs])
        if estimate is not None:
            return estimate
        why.append(f"the benchmark has no {options['preset']} runs" if configs else
                   "the benchmark times training runs, and none is to run")
    elif bench is not None:
        why.append("the benchmark's estimate needs SynthKitchens' segment counts")
    note = "no estimate: no earlier build" + (f" ({'; '.join(why)})" if why else "")
    return Estimate(None, "none", note)


def duration(seconds: float) -> str:
    """``seconds`` for a reader: "42 s", "12 min", "2 h 05 min"."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def plan_text(steps: list[Step], planned: dict[str, bool], estimate: Estimate, jobs: int) -> str:
    """What the build is about to do, printed before it starts."""
    run = [s.name for s in steps if planned[s.name]]
    reuse = [s.name for s in steps if not planned[s.name]]
    lines = [f"The build: {len(steps)} steps, {jobs} at a time.",
             f"  to run ({len(run)}): {', '.join(run) or '-'}",
             f"  to reuse, unchanged ({len(reuse)}): {', '.join(reuse) or '-'}"]
    if estimate.seconds is None:
        lines.append(f"  {estimate.note}")
    else:
        lines.append(f"  estimate: about {duration(estimate.seconds)} on this machine, from {estimate.note}")
    return "\n".join(lines)


def ledger_entry(step: Step) -> dict[str, Any]:
    """One step of ``build.json``: what it did in this build, and the execution that produced its output."""
    def seconds(x: float | None) -> float | None:
        return None if x is None else round(x, 3)

    executed = None  # the execution that produced the step's output (this build's when run); None: there is none
    if step.status == "reused" or (step.status == "run" and step.last_s is not None):  # a notebook's execution
        executed = {"wall_s": seconds(step.last_s), "cpu_s": seconds(step.last_cpu_s), "peak_rss_mib": step.peak_mib,
                    "finished": step.finished or None}
    elif step.status == "run":  # a step without a notebook (pages, HTML): this build's
        executed = {"wall_s": seconds(step.wall_s), "cpu_s": seconds(step.cpu_s), "peak_rss_mib": step.peak_mib,
                    "finished": step.ended}
    return {
        "name": step.name,
        "status": step.status,  # run | reused | failed | blocked
        "error": step.error or None,
        "wall_s": seconds(step.wall_s),  # in this build (a reused step: the check; a blocked one: 0)
        "cpu_s": seconds(step.cpu_s),  # in this build, user + sys; None: not measured (a failed notebook, blocked)
        "peak_rss_mib": None if step.status == "reused" else step.peak_mib,  # the process it started in this build
        "start": step.started or None,
        "end": step.ended or None,
        "executed": executed,
    }


def build_ledger(steps: list[Step], start: str, end: str, wall_s: float, options: dict[str, Any],
                 estimate: Estimate) -> dict[str, Any]:
    """``build.json``: every step's ``ledger_entry``, the build's wall time, its options and the estimate it
    printed before it started, and whether every step ran in this build."""
    driver, children = (resource.getrusage(who).ru_maxrss / 1024
                        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))  # KiB -> MiB
    counts = {k: sum(s.status == k for s in steps) for k in ("run", "reused", "failed", "blocked")}
    return {
        **options,  # preset, seed, seeds, dataset, data_root, jobs, launcher, html
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "start": start,
        "end": end,
        "wall_s": round(wall_s, 3),
        "cpu_s": round(sum(s.cpu_s for s in steps if s.cpu_s is not None), 3),  # the steps' (not measured: left out)
        "peak_rss_mib": max(driver, children),  # the largest single process: the driver or a step's
        "all_run_in_this_build": bool(steps) and counts["run"] == len(steps),
        "counts": counts,
        "estimate": {"seconds": estimate.seconds, "source": estimate.source, "note": estimate.note},
        "steps": [ledger_entry(s) for s in steps],
    }


def read_ledger(path: Path) -> dict[str, Any] | None:
    """The ledger at ``path``; None when there is none or it cannot be read (logged: the estimate falls back)."""
    if not path.exists():
        return None
    try:
        data = runs.read_json(path)
    except ValueError as err:
        log.warning("%s", err)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
        log.warning("%s is not a build ledger (no list of steps): not used for the estimate", path)
        return None
    return data


def read_benchmark(path: Path) -> dict[str, Any] | None:
    """``benchmarks/bench_models.py``'s JSON at ``path``; None when there is none or it cannot be read (logged)."""
    if not path.exists():
        return None
    try:
        return runs.read_json(path)
    except ValueError as err:
        log.warning("%s", err)
        return None


def dataset_segments(preset: str, seed: int, dataset: str) -> dict[str, int]:
    """``{split: segments}`` of SynthKitchens at ``preset`` and ``seed`` in ``dataset``'s layout (its plan: no
    pixels rendered)."""
    from egolib import synthetic

    counts: dict[str, int] = {}
    for video in synthetic.plan_dataset(preset, seed, dataset):
        counts[video.split] = counts.get(video.split, 0) + len(video.segments)
    return counts


def ledger_summary(ledger: dict[str, Any], path: str = LEDGER) -> str:
    """The build's lines under the summary table: wall time against the estimate, and whether all ran."""
    counts = ledger["counts"]
    not_run = ", ".join(f"{counts[k]} {k}" for k in ("reused", "failed", "blocked") if counts[k])
    estimate = ledger["estimate"]["seconds"]
    return "\n".join([
        f"build: {ledger['wall_s']:.1f} s wall ({duration(ledger['wall_s'])}), {ledger['start']} to {ledger['end']}"
        + (f"; estimated {duration(estimate)}" if estimate is not None else ""),
        f"every step run in this build: {'yes' if ledger['all_run_in_this_build'] else f'no ({not_run})'}",
        f"ledger: {path}"])


# --------------------------------------------------------------------------------------------------
# the book


def variants(path: str | Path = ROOT / "configs" / "variants.yaml") -> list[dict[str, str]]:
    """The runs the book trains: Table 1's variants, then the baselines."""
    data = yaml.safe_load(Path(path).read_text())
    return list(data["variants"]) + list(data.get("baselines", []))


def baselines(path: str | Path = ROOT / "configs" / "variants.yaml") -> list[dict[str, str]]:
    """The baseline runs (not ensemble members)."""
    return list(yaml.safe_load(Path(path).read_text()).get("baselines", []))


def train_dependencies(params: list[dict[str, Any]]) -> dict[str, tuple[str, ...]]:
    """``{run name: runs it waits for}``: GSM + EgoACO waits for the GSM run of its backbone (its backbone is
    that run's), when the build trains it."""
    names = {(p["method"], p["backbone"], p.get("pretrain")): RunConfig.from_params(p).name for p in params}
    deps = {}
    for p in params:
        gsm = names.get(("gsm", p["backbone"], "epic")) if p["method"] == "gsm_egoaco" else None
        deps[RunConfig.from_params(p).name] = (gsm,) if gsm else ()
    return deps


@dataclass
class Book:
    """The build of one preset and seed; ``steps()`` lists what ``make book`` does."""

    preset: str = "demo"
    seed: int = 0
    jobs: int = 1
    html: bool = True
    dataset: str = "epic55"
    data_root: str | None = None
    slurm: launch.SlurmOptions | None = None  # None: train in this process's kernels
    draws: tuple[int, ...] = ()  # --seeds: every draw whose runs a `seeds` chapter (06) reads; () for one draw
    executed: set[str] = field(default_factory=set)  # chapter stems executed or reused in this build
    lock: threading.Lock = field(default_factory=threading.Lock)
    _trains: bool | None = field(default=None, init=False, repr=False)  # the plan: a run of this build will train

    @property
    def run_params(self) -> list[dict[str, Any]]:
        return [{**v, "preset": self.preset, "seed": self.seed, **self.data_parameters} for v in variants()]

    @property
    def data_parameters(self) -> dict[str, Any]:
        """``dataset`` and ``data_root`` where they differ from the defaults (so today's run keys stay)."""
        given = {"dataset": self.dataset, "data_root": self.data_root}
        return {k: v for k, v in given.items() if v != {"dataset": "epic55", "data_root": None}[k]}

    @property
    def run_names(self) -> list[str]:
        return [RunConfig.from_params(p).name for p in self.run_params]

    def draw_run_names(self) -> list[str]:
        """The run folders of the other draws (``--seeds``), which a chapter with a ``seeds`` parameter reads."""
        return [n for d in self.draws if d != self.seed
                for n in Book(preset=self.preset, seed=d, dataset=self.dataset, data_root=self.data_root).run_names]

    def chapter_parameters(self, notebook: Path) -> dict[str, Any]:
        common = dict(zip(COMMON_PARAMETERS, (self.preset, self.seed, RUNS), strict=True))
        if len(self.draws) > 1:
            common["seeds"] = ",".join(map(str, self.draws))
        declared = declared_parameters(notebook)
        if "dataset" in declared or self.dataset == "epic55":  # 01 checks an EPIC-55 data_root only
            common |= self.data_parameters
        return {k: v for k, v in common.items() if k in declared}

    def chapter_key(self, chapter: Chapter, params: dict[str, Any]) -> str:
        """The key of ``chapter`` executed with ``params``, as its inputs are now."""
        names = self.run_names + (self.draw_run_names() if "seeds" in params else [])
        files = run_folder_files(names) if chapter.reads_runs else []
        for pattern in chapter.reads:
            files += [p for p in ROOT.glob(pattern.format(preset=self.preset, seed=self.seed)) if p.is_file()]
        return step_key(ROOT / "book" / f"{chapter.stem}.ipynb", params, files)

    def chapter_will_run(self, chapter: Chapter) -> bool:
        """The plan: ``chapter`` is stale now, or reads the run folders and a run will train."""
        notebook = ROOT / "book" / f"{chapter.stem}.ipynb"
        output = ROOT / RUNS / "book" / f"{chapter.stem}.ipynb"
        if not output.exists() or (chapter.reads_runs and self.some_run_trains()):
            return True
        return not is_current(output, self.chapter_key(chapter, self.chapter_parameters(notebook)))

    def some_run_trains(self) -> bool:
        """The plan: a training run of this build is not complete (checked once)."""
        if self._trains is None:
            self._trains = any(not runs.is_complete(ROOT / c.run_path, c.to_dict())
                               for c in map(RunConfig.from_params, self.run_params))
        return self._trains

    def training_will_run(self, params: dict[str, Any]) -> bool:
        """The plan: the run of ``params`` will train, or its page is stale."""
        cfg = RunConfig.from_params(params)
        output = ROOT / cfg.run_path / "train.ipynb"
        return (not runs.is_complete(ROOT / cfg.run_path, cfg.to_dict()) or not output.exists()
                or not is_current(output, step_key(ROOT / "book" / "03_train.ipynb", params, [])))

    def run_chapter(self, chapter: Chapter, step: Step) -> str:
        notebook = ROOT / "book" / f"{chapter.stem}.ipynb"
        output = ROOT / RUNS / "book" / f"{chapter.stem}.ipynb"
        params = self.chapter_parameters(notebook)
        status = self._execute_if_stale(step, notebook, output, params, lambda: self.chapter_key(chapter, params))
        with self.lock:
            self.executed.add(chapter.stem)
        return status

    def run_training(self, params: dict[str, Any], step: Step) -> str:
        """One training page; the library itself skips the training of a complete, current run folder."""
        cfg = RunConfig.from_params(params)
        notebook = ROOT / "book" / "03_train.ipynb"
        output = ROOT / cfg.run_path / "train.ipynb"
        if not runs.is_complete(ROOT / cfg.run_path, cfg.to_dict()):
            set_aside_other_run(cfg)
            key_path(output).unlink(missing_ok=True)  # the run must be (re)trained, whatever the page says
            if self.slurm is not None:  # train it as a Slurm job; the page below then only renders the run
                launch.run_slurm_job(params, self.slurm, workdir=ROOT)
        title = f"{cfg.method} · {cfg.backbone} · {cfg.pretrain} ({cfg.preset})"
        return self._execute_if_stale(step, notebook, output, params, lambda: step_key(notebook, params, []),
                                      title=title)

    def _execute_if_stale(self, step: Step, notebook: Path, output: Path, params: dict[str, Any],
                          key: Callable[[], str], title: str | None = None) -> str:
        """Reuse ``output`` when its stored key equals ``key()``; else execute and store ``key()`` as computed
        after the execution (a file the notebook writes for itself, such as a benchmark cache, then counts)."""
        if is_current(output, key()):
            record = json.loads(key_path(output).read_text())
            log.info("%s is current: reused", output.relative_to(ROOT))
            step.peak_mib, step.last_s, step.last_cpu_s, step.finished = (
                record.get("peak_mib"), record.get("wall_s"), record.get("cpu_s"), record.get("finished", ""))
            repolish(output)
            return "reused"
        key_path(output).unlink(missing_ok=True)
        step.child_cpu_s = None  # the kernel reports it at the end; a notebook that fails never does
        t0 = time.perf_counter()
        usage = execute(notebook, output, params, title=title)
        step.peak_mib, step.child_cpu_s, step.last_cpu_s = usage.peak_mib, usage.cpu_s, usage.cpu_s
        step.last_s, step.finished = time.perf_counter() - t0, time.strftime("%Y-%m-%dT%H:%M:%S")
        runs.write_json(key_path(output), {"key": key(), "notebook": str(notebook.relative_to(ROOT)),
                                            "parameters": params, "wall_s": step.last_s, "cpu_s": usage.cpu_s,
                                            "peak_mib": step.peak_mib, "finished": step.finished})
        return "run"

    def write_pages(self, step: Step) -> str:
        """The results page and the run index, from the run folders and the chapters' outputs."""
        with self.lock:
            measured = sorted(self.executed)
        root = ROOT / RUNS
        table = results.run_table(root, [v for v in variants() if v not in baselines()], baselines(),
                                  preset=self.preset, seed=self.seed, dataset=self.dataset, data_root=self.data_root)
        table2 = results.ensembles_table(root, self.dataset) if "06_ensembles" in measured else None
        in_book = set(measured) | {"03_train_runs"}
        pages = {n for n in table["name"] if (root / n / "train.ipynb").exists()}
        page = results.results_page(results.claims(root, table, measured, self.dataset), table, table2,
                                    preset=self.preset, seed=self.seed, in_book=in_book, dataset=self.dataset)
        index = results.run_index_page(table, preset=self.preset, seed=self.seed, pages=pages, dataset=self.dataset)
        for name, text in zip(GENERATED_PAGES, (page, index), strict=True):
            _write_if_changed(root / "book" / f"{name}.md", text)
        return "run"

    def build_html(self, step: Step) -> str:
        """Render the book with Jupyter Book v1 (warnings are errors), with this build's table of contents."""
        toc = write_toc(self.run_names, available=self.executed)
        copy_plotly_js()
        jupyter_book = Path(sys.executable).with_name("jupyter-book")
        cmd = [str(jupyter_book), "build", "--all", "-W", "-n", "--keep-going", "--toc", str(toc), str(ROOT)]
        proc = subprocess.Popen(cmd, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        step.peak_mib = usage.ru_maxrss / 1024  # KiB -> MiB
        step.child_cpu_s = usage.ru_utime + usage.ru_stime
        if proc.returncode:
            raise RuntimeError(f"jupyter-book build failed (exit {proc.returncode}); its log is above")
        return "run"

    def steps(self) -> list[Step]:
        """Every step of the build: chapters before training, training pages, chapters after training, pages,
        HTML. A chapter notebook that is missing stops the build before anything runs, with the command that
        restores it."""
        train_names = [f"train {n}" for n in self.run_names]
        before, after = [], []
        for chapter in CHAPTERS:
            waits = tuple(a for a in chapter.after if a != TRAIN) + (tuple(train_names) if TRAIN in chapter.after
                                                                    else ())
            notebook = ROOT / "book" / f"{chapter.stem}.ipynb"
            if not notebook.exists():
                raise FileNotFoundError(f"{notebook.relative_to(ROOT)} is missing: restore it with `git checkout -- "
                                        f"book/{chapter.stem}.ipynb` (or pair it again from its script: `jupytext "
                                        f"--to ipynb book/{chapter.stem}.py`)")
            if TRAIN in chapter.after and len(self.draws) > 1 and "seeds" in declared_parameters(notebook):
                waits += tuple(f"train {n}" for n in self.draw_run_names())  # it reads every draw's runs
            step = Step(chapter.stem, lambda s, c=chapter: self.run_chapter(c, s), waits,
                        will_run=lambda c=chapter: self.chapter_will_run(c))
            (after if TRAIN in chapter.after else before).append(step)
        deps = train_dependencies(self.run_params)
        # Each training run pretrains what its backbone needs (cached once, shared under a lock), so the runs start
        # right after the data; 02_pretrain then renders the caches. Run in turn, it would hold the build's
        # longest serial stretch on one core while the other waits.
        training = [Step(f"train {name}", lambda s, p=p: self.run_training(p, s),
                         ("01_data_prep",) + tuple(f"train {d}" for d in deps[name]),
                         will_run=lambda p=p: self.training_will_run(p), run_params=p)
                    for name, p in start_order(self.run_names, self.run_params, deps)]
        pretrain_step = next(s for s in before if s.name == "02_pretrain")
        pretrain_step.after = tuple(s.name for s in training)
        everything = tuple(s.name for s in before + training + after)
        out = before + training + after + [Step("results and run index", self.write_pages, everything, soft=True)]
        if self.html:
            out.append(Step("html", self.build_html, ("results and run index",), soft=True))
        return out


def start_order(names: list[str], params: list[dict[str, Any]], deps: dict[str, tuple[str, ...]]
                ) -> list[tuple[str, dict[str, Any]]]:
    """The order in which the training steps may start (each still waits for its ``deps``): longest first, so that
    the build does not end on one long run while the other jobs idle. First the runs others wait for (the GSM
    runs under GSM + EgoACO, with their EPIC pretraining), then R(2+1)D (3-frame snippets: the slowest run and
    pretraining of the book, ``benchmarks/bench_models.py``), then ``configs/variants.yaml``'s order."""
    needed = {d for ds in deps.values() for d in ds}

    def rank(item: tuple[str, dict[str, Any]]) -> tuple[bool, bool]:
        name, p = item
        return name not in needed, p["backbone"] != "r2p1d34"

    return sorted(zip(names, params, strict=True), key=rank)  # stable: ties keep the yaml's order


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        runs.write_text(path, text)


def write_toc(run_names: list[str], available: set[str]) -> Path:
    """``_toc.yml`` for this build, written to ``_build/toc.yml``: the training part lists this build's run pages
    (not every run of every preset in ``runs/``), and a chapter that was not executed is left out."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())

    def keep(entry: dict[str, Any]) -> bool:
        file = entry.get("file", "")
        stem = Path(file).name
        return not (file.startswith(f"{RUNS}/book/") and stem in {c.stem for c in CHAPTERS} and stem not in available)

    for part in toc["parts"]:
        part["chapters"] = [c for c in part["chapters"] if keep(c)]
        for chapter in part["chapters"]:
            if any("glob" in s for s in chapter.get("sections", [])):
                chapter["sections"] = [{"file": f"{RUNS}/{n}/train"} for n in run_names
                                       if (ROOT / RUNS / n / "train.ipynb").exists()]
    toc["parts"] = [p for p in toc["parts"] if p["chapters"]]
    path = ROOT / "_build" / "toc.yml"
    path.parent.mkdir(exist_ok=True)
    runs.write_text(path, yaml.safe_dump(toc, sort_keys=False))
    return path


def copy_plotly_js() -> None:
    """``_static/plotly.min.js`` from the installed plotly: the book's figures load it, offline."""
    from plotly.offline import get_plotlyjs

    path = ROOT / "_static" / "plotly.min.js"
    js = get_plotlyjs()
    if not path.exists() or path.stat().st_size != len(js.encode()):
        runs.write_text(path, js)


def set_aside_other_run(cfg: RunConfig, root: Path = ROOT) -> Path | None:
    """Move a variant's folder that holds another run (one trained with other parameters by older code, or with
    an explicit ``run_dir``) to ``runs/set-aside/<name>-<time>/`` under ``root``: kept, out of the book's way.

    Returns:
        Where it went, or None when the folder is free or holds this variant's run.

    Raises:
        egolib.runs.FolderInUse: a process is working in that folder.
    """
    folder = root / cfg.run_path
    if not (folder / "config.json").exists():
        return None
    try:
        diff = runs.differences(runs.read_json(folder / "config.json"), cfg.to_dict())
    except ValueError as e:  # a corrupt config.json: not this variant's run either
        diff = {"config.json": (str(e), None)}
    if not diff:
        return None
    with runs.exclusive(folder):
        target = root / RUNS / "set-aside" / f"{folder.name}-{time.strftime('%Y%m%dT%H%M%S')}"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(folder, target)
    log.warning("%s held another run (%s): moved to %s", folder, ", ".join(sorted(diff)), target)
    return target


def _positive_int(text: str) -> int:
    """``--jobs``: an int >= 1, checked before anything runs."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (steps run at a time), got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=PRESETS)
    parser.add_argument("--seed", type=int, default=0, help="the SynthKitchens draw and training seed")
    parser.add_argument("--seeds", default=None, help="several draws, e.g. 0,1,2: every run is trained on each; the "
                        "book's pages are the first seed's (replaces --seed)")
    parser.add_argument("--jobs", type=_positive_int, default=1, help="steps run at a time (one thread each if > 1)")
    parser.add_argument("--no-html", action="store_true", help="execute what is stale, skip the HTML build")
    parser.add_argument("--dataset", default="epic55", choices=DATASETS)
    parser.add_argument("--data-root", default=None, help="the real dataset's root (default: SynthKitchens)")
    parser.add_argument("--launcher", default="local", choices=launch.LAUNCHERS,
                        help="local: train in this machine's kernels; slurm: one Slurm job per variant (submitit)")
    parser.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's)")
    parser.add_argument("--gpus-per-run", type=int, default=1, help="GPUs per node of one variant's job")
    parser.add_argument("--nodes-per-run", type=int, default=1, help="nodes of one variant's job")
    parser.add_argument("--time", default="72:00:00", help="time limit per job, HH:MM:SS (requeued and resumed)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if args.jobs > 1:
        os.environ["OMP_NUM_THREADS"] = "1"  # inherited by every kernel papermill starts from now on
    # plotly figures as the mime bundle (JupyterLab) plus an HTML div that uses the book's own plotly.js
    os.environ.setdefault("PLOTLY_RENDERER", "plotly_mimetype+notebook_connected")
    slurm = None
    if args.launcher == "slurm":
        slurm = launch.SlurmOptions(partition=args.partition, gpus_per_run=args.gpus_per_run,
                                    nodes_per_run=args.nodes_per_run, time=args.time, folder=ROOT / RUNS / "slurm")
    try:
        seeds = parse_seeds(args.seeds) if args.seeds else [args.seed]
    except ValueError as err:
        parser.error(str(err))
    if len(seeds) > 1 and args.dataset == "epic100":  # chapter 06's spread covers Table 2 only, so far
        parser.error("--seeds works with --dataset epic55 only: chapter 06 gives the spread over draws for Table 2, "
                     "not yet for the EPIC-100 metrics; build one draw at a time with --seed")
    data = {"dataset": args.dataset, "data_root": args.data_root, "slurm": slurm}
    book = Book(preset=args.preset, seed=seeds[0], jobs=args.jobs, html=not args.no_html,
                draws=tuple(seeds) if len(seeds) > 1 else (), **data)
    try:
        # the other draws: their training runs only, for egolib.seeds' spread
        others = [s for seed in seeds[1:] for s in Book(preset=args.preset, seed=seed, **data).steps()
                  if s.name.startswith("train ")]
        steps = book.steps() + others
    except FileNotFoundError as err:  # a chapter notebook is missing: nothing has run yet
        parser.error(str(err))
    # Slurm: every variant's job can be queued at once (a step only waits for its job); local: --jobs kernels
    jobs = len(steps) if slurm is not None else args.jobs
    options = {"preset": args.preset, "seed": seeds[0], "seeds": seeds, "dataset": args.dataset,
               "data_root": args.data_root, "jobs": jobs, "launcher": args.launcher, "html": not args.no_html}
    start, t0 = now(), time.perf_counter()
    planned = plan(steps)
    bench = read_benchmark(ROOT / BENCH)
    segments = dataset_segments(args.preset, seeds[0], args.dataset) if bench and not args.data_root else None
    estimate = build_estimate(steps, planned, options, read_ledger(ROOT / LEDGER), bench, segments)
    print(plan_text(steps, planned, estimate, jobs) + "\n", flush=True)
    steps = run_steps(steps, jobs=jobs)
    ledger = build_ledger(steps, start, now(), time.perf_counter() - t0, options, estimate)
    runs.write_json(ROOT / LEDGER, ledger)
    print("\n" + summary_table(steps) + "\n" + ledger_summary(ledger), flush=True)
    failed = [s.name for s in steps if s.status in ("failed", "blocked")]
    if failed:
        log.error("the book is incomplete: %s", ", ".join(failed))
        return 1
    if args.no_html:
        return 0
    log.info("the book is at %s", ROOT / "_build" / "html" / "index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
