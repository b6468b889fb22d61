"""Build the whole book: execute every chapter with papermill, train the Table 1 variants, render the HTML.

``make book`` runs ``python -m egolib.book`` (preset ``demo``):

    book/01_data_prep.ipynb  -> runs/book/01_data_prep.ipynb   generate SynthKitchens, show the data
    book/02_pretrain.ipynb   -> runs/book/02_pretrain.ipynb    pretrain the backbones (stand-ins)
    book/03_train.ipynb      -> runs/<name>/train.ipynb        one per variant in configs/variants.yaml
    jupyter-book build .     -> _build/html/index.html

Executed notebooks are written to a temporary file and renamed, so an interrupted build never leaves a
half-executed notebook that looks finished. A variant whose run folder is complete and current (``DONE``,
same config, same library code) is not trained again; an interrupted one resumes from its checkpoint.

``--jobs 2`` trains two variants at a time, each kernel on one thread: on 2 CPU cores that gives 13-42 % more
throughput than one 2-thread run (``cpu_budget.md`` §7). GSM + EgoACO variants start from the trained GSM
runs' backbones, so they are trained after every other variant.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from egolib.config import PRESETS, RunConfig
from egolib.runs import is_complete

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parent.parent


def execute(notebook: str | Path, output: str | Path, parameters: dict[str, Any], title: str | None = None) -> Path:
    """Execute ``notebook`` with papermill from the repo root into ``output`` (atomic rename at the end).

    ``title`` replaces the executed copy's first heading, so that each run has its own page title in the book.
    Consecutive stream outputs are merged with carriage returns applied, as a terminal shows them: a progress
    bar is stored as its last state, not as one output per update.
    """
    import nbformat
    import papermill as pm
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.tmp.ipynb")
    log.info("executing %s -> %s %s", notebook, output, parameters)
    pm.execute_notebook(str(notebook), str(tmp), parameters=parameters, cwd=str(ROOT), progress_bar=False)
    nb = nbformat.read(tmp, as_version=4)
    CoalesceStreamsPreprocessor().preprocess(nb, {})
    if title is not None:
        first = nb.cells[0]
        heading, _, rest = first.source.partition("\n")
        if first.cell_type != "markdown" or not heading.startswith("# "):
            raise ValueError(f"{notebook}: the first cell must be a markdown '# ' heading to take a title")
        first.source = f"# {title}\n{rest}"
    nbformat.write(nb, tmp)
    os.replace(tmp, output)
    return output


def variants(path: str | Path = ROOT / "configs" / "variants.yaml") -> list[dict[str, str]]:
    """The runs the book trains: Table 1's variants, then the baselines."""
    data = yaml.safe_load(Path(path).read_text())
    return list(data["variants"]) + list(data.get("baselines", []))


def train_variant(params: dict[str, Any]) -> Path:
    """Train one variant through ``book/03_train.ipynb`` unless its run folder is complete and current."""
    cfg = RunConfig.from_params(params)
    if is_complete(cfg.run_path, cfg.to_dict()) and (cfg.run_path / "train.ipynb").exists():
        log.info("%s is complete and current: skipped", cfg.run_path)
        return cfg.run_path
    title = f"{cfg.method} · {cfg.backbone} · {cfg.pretrain} ({cfg.preset})"
    execute(ROOT / "book" / "03_train.ipynb", ROOT / cfg.run_path / "train.ipynb", params, title=title)
    return cfg.run_path


def train_all(params: list[dict[str, Any]], jobs: int = 1) -> None:
    """Train every variant, ``jobs`` at a time; GSM + EgoACO last (they reuse the GSM runs' backbones)."""
    first = [p for p in params if p["method"] != "gsm_egoaco"]
    last = [p for p in params if p["method"] == "gsm_egoaco"]
    if jobs > 1:
        os.environ["OMP_NUM_THREADS"] = "1"  # inherited by every kernel papermill starts from now on
    for group in (first, last):
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            list(pool.map(train_variant, group))  # list(): re-raise the first failure


def build_html() -> Path:
    """Render the book with Jupyter Book v1 (warnings are errors)."""
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jupyter_book), "build", "--all", "-W", "-n", "--keep-going", str(ROOT)]
    subprocess.run(cmd, check=True, cwd=ROOT)
    return ROOT / "_build" / "html" / "index.html"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="demo", choices=PRESETS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="variants trained at a time (one thread each if > 1)")
    parser.add_argument("--skip-training", action="store_true", help="render what is already in runs/")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    common = {"preset": args.preset, "seed": args.seed}
    if not args.skip_training:
        execute(ROOT / "book" / "01_data_prep.ipynb", ROOT / "runs" / "book" / "01_data_prep.ipynb", common)
        execute(ROOT / "book" / "02_pretrain.ipynb", ROOT / "runs" / "book" / "02_pretrain.ipynb", common)
        train_all([{**params, **common} for params in variants()], jobs=args.jobs)
    index = build_html()
    log.info("the book is at %s", index)


if __name__ == "__main__":
    main()
