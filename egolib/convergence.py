"""Convergence studies: a member's recipe trained on the validation set carved from its training videos, with
training and validation curves, so that underfitting is seen, not guessed.

A study is an ordinary run (``egolib.train``) of the member's parameters with ``data_root`` at the carved validation
set of its SynthKitchens draw (``egolib.synthetic.write_validation_set``: the last training video of every kitchen
held out) and ``val_curve``: after every epoch its ``log.csv`` holds the training accuracy on the augmented clips and
the validation top-1 (one clip per segment). The demo recipes were chosen on these curves, never on S1/S2.

``python -m egolib.convergence --method egoaco --backbone res34`` runs one study and copies its log to
``convergence/<run name>.csv`` (tracked, like the shipped weights: the record of how a recipe was chosen). The run
page (``book/03_train``) plots it beside the run's own training curves, with the epoch where validation stops
improving (``plateau_epoch``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from egolib import runs, synthetic, train
from egolib.config import RunConfig, non_defaults

log = logging.getLogger(__name__)

STUDIES = Path(__file__).resolve().parents[1] / "convergence"  # one CSV per studied recipe
TASKS = ("verb", "noun", "action")
PLATEAU_TOLERANCE = 0.01  # within one point of the best (3-epoch running mean) counts as "stopped improving"


def study_config(cfg: RunConfig) -> RunConfig:
    """``cfg``'s recipe on the validation set carved from its draw's training videos, with validation curves.

    Raises:
        ValueError: ``cfg`` reads a ``data_root`` (studies run on the embedded SynthKitchens draws).
    """
    if cfg.data_root is not None:
        raise ValueError(f"convergence studies carve the embedded SynthKitchens draw; {cfg.name} reads "
                         f"{cfg.data_root}: carve its validation set yourself and set data_root and val_curve")
    if cfg.dataset != "epic55":
        raise ValueError("convergence studies carve the EPIC-55 layout; EPIC-100 runs have a validation split: "
                         "set val_curve on the run itself")
    return dataclasses.replace(cfg, data_root=str(synthetic.validation_path(cfg.preset, cfg.seed)), val_curve=True,
                               run_dir=None)


def curve_path(cfg: RunConfig) -> Path:
    """``convergence/<run name>.csv``: where the study of ``cfg``'s recipe is recorded."""
    return STUDIES / f"{cfg.name}.csv"


def read_curves(cfg: RunConfig) -> pd.DataFrame | None:
    """The recorded study of ``cfg``'s recipe (``log.csv`` columns plus ``val_verb``, ``val_noun``, ``val_action``),
    or None when that recipe was not studied."""
    path = curve_path(cfg)
    return pd.read_csv(path) if path.is_file() else None


def plateau_epoch(values: Sequence[float], tolerance: float = PLATEAU_TOLERANCE) -> int:
    """The first epoch (1-based) whose 3-epoch running mean is within ``tolerance`` of that mean's best: where a
    curve stops improving. Equal to the number of epochs when it was still improving at the end."""
    smooth = pd.Series(list(values), dtype=float).rolling(3, min_periods=1).mean()
    return int((smooth >= smooth.max() - tolerance).to_numpy().argmax()) + 1


def summary(curves: pd.DataFrame) -> pd.DataFrame:
    """Per task: the last epoch's training accuracy and validation top-1, the best validation top-1 and where the
    validation curve stops improving (``plateau_epoch``), in percent and epochs."""
    rows = {}
    for task in TASKS:
        val = curves[f"val_{task}"]
        rows[task] = {"train (last epoch)": 100 * curves[f"acc_{task}"].iloc[-1],
                      "validation (last)": 100 * val.iloc[-1], "validation (best)": 100 * val.max(),
                      "stops improving at epoch": plateau_epoch(val), "epochs": len(curves)}
    return pd.DataFrame(rows).T


def run_study(cfg: RunConfig, *, progress: bool = True) -> pd.DataFrame:
    """Train ``study_config(cfg)`` (carving the validation set first when it is missing) and return its log.

    The log of a preset's own recipe is recorded at ``curve_path(cfg)``; a recipe with other values (``--param``)
    stays in its study's run folder, so that ``convergence/`` holds the curves of the recipes the book trains."""
    synthetic.ensure_validation_set(cfg.preset, cfg.seed, progress=progress)
    study = study_config(cfg)
    train.run(study, progress=progress)
    curves = train.read_log(study.run_path)
    where = study.run_path / train.LOG_CSV
    if not non_defaults(cfg):
        where = curve_path(cfg)
        runs.write_text(where, curves.to_csv(index=False))
    log.info("%s: curves in %s\n%s", study.name, where, summary(curves).round(1).to_string())
    return curves


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m egolib.convergence", description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="egoaco")
    parser.add_argument("--backbone", default="res34")
    parser.add_argument("--preset", default="demo", choices=["smoke", "demo"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="any other run parameter, as JSON (e.g. --param epochs=30); repeatable")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    params = {"method": args.method, "backbone": args.backbone, "preset": args.preset, "seed": args.seed}
    for item in args.param:
        name, _, value = item.partition("=")
        if not value:
            parser.error(f"--param {item!r}: write NAME=VALUE")
        params[name] = _json_or_text(value)
    try:
        cfg = RunConfig.from_params(params)
    except ValueError as e:
        parser.error(str(e))
    run_study(cfg)


def _json_or_text(value: str):
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


if __name__ == "__main__":
    main()
