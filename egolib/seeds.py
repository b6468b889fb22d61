"""Several draws of the book: Table 2 over seeds, as mean ± standard deviation, and which gaps exceed the noise.

``make book SEEDS=0,1,2`` builds the book once per seed. A seed picks the SynthKitchens draw
(``data/synthkitchens-<preset>-s<seed>``) and every random choice of training (order, augmentation,
initialisation, the EPIC backbones); the stand-in pretrained backbones play the part of published weights and are
the same for every seed. Each seed gives its own Table 2 (``egolib.ensemble``'s long format: ``name, setting, task,
top1, top5, precision, recall``, in percent), where a member run is named by its run folder
(``gsm-bninc-epic-demo-s1``) and an ensemble by its name.

Read top-down: seed lists -> each seed's Table 2 from its run folders -> stacking the seeds' tables (run names
without their ``-s<seed>``) -> the spread per row -> paired differences against a reference row (same draw, so
the draw's difficulty cancels).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = ("name", "setting", "task")  # one row of Table 2
METRICS = ("top1", "top5", "precision", "recall")  # percent


# --------------------------------------------------------------------------------------------------
# Seed lists


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (spaces allowed; order kept).

    Raises:
        ValueError: an empty list, something that is not a non-negative integer, or a seed given twice.
    """
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise ValueError(f"no seeds in {text!r}; give a comma-separated list such as 0,1,2")
    bad = [p for p in parts if not p.isdigit()]
    if bad:
        raise ValueError(f"seeds must be non-negative integers, got {', '.join(map(repr, bad))} in {text!r}")
    seeds = [int(p) for p in parts]
    twice = sorted({s for s in seeds if seeds.count(s) > 1})
    if twice:
        raise ValueError(f"seed(s) {', '.join(map(str, twice))} given twice in {text!r}; each draw counts once")
    return seeds


# --------------------------------------------------------------------------------------------------
# Each seed's Table 2, from its run folders


def table2s(runs_root: str | Path, preset: str, seeds: Sequence[int], *, config: str | Path | None = None,
            average: str = "softmax") -> dict[int, pd.DataFrame]:
    """Each seed's Table 2 (ensembles and member runs), computed from the run folders of that seed as
    ``egolib.ensemble.run`` computes it, without writing anything.

    Args:
        runs_root: the folder holding ``<method>-<backbone>-<pretrain>-<preset>-s<seed>`` run folders.
        preset: the member runs' preset.
        seeds: the seeds to read.
        config: the ensembles file (None: ``configs/ensembles.yaml``).
        average: ``softmax`` or ``logits`` (``egolib.ensemble.AVERAGES``).

    Returns:
        seed -> Table 2 in long format (``egolib.ensemble.TABLE2_COLUMNS``), ready for ``stack``.

    Raises:
        egolib.ensemble.MissingRunError: a seed lacks member runs (with the commands that train them).
    """
    from egolib import ensemble  # the scores and the averaging; imported here to keep the book driver light

    cfg = ensemble.load_config(ensemble.DEFAULT_CONFIG if config is None else config)
    out = {}
    for seed in seeds:
        run_scores = ensemble.load_runs(cfg, runs_root, preset, seed)
        results = ensemble.evaluate_ensembles(cfg, run_scores, preset, seed, average)
        out[seed] = ensemble.table2({**results, **run_scores})
    return out


# --------------------------------------------------------------------------------------------------
# Stacking the seeds' tables


def row_name(name: str, seed: int) -> str:
    """A Table 2 name without its seed: ``gsm-bninc-epic-demo-s1`` -> ``gsm-bninc-epic-demo`` (seed 1);
    an ensemble's name is returned as it is."""
    return re.sub(rf"-s{seed}$", "", name)


def _read(table: pd.DataFrame | str | Path, seed: int) -> pd.DataFrame:
    df = table.copy() if isinstance(table, pd.DataFrame) else pd.read_csv(table)
    missing = [c for c in (*KEYS, *METRICS) if c not in df.columns]
    if missing:
        where = "" if isinstance(table, pd.DataFrame) else f" ({table})"
        raise ValueError(f"seed {seed}'s Table 2{where} lacks column(s) {', '.join(missing)}; expected the long "
                         f"format of egolib.ensemble.table2: {', '.join((*KEYS, *METRICS))}")
    return df


def stack(tables: Mapping[int, pd.DataFrame | str | Path]) -> pd.DataFrame:
    """The seeds' Table 2s in one long table, member runs named without their ``-s<seed>``.

    Args:
        tables: seed -> its Table 2 (a DataFrame or a ``table2.csv`` path), long format.

    Returns:
        Columns ``name, setting, task, seed, top1, top5, precision, recall``; rows in the first seed's order, then
        by seed.

    Raises:
        ValueError: no tables, a missing column, a row given twice in one seed, or seeds whose tables do not hold
            the same rows (a run missing in one seed would bias its mean; the message names the rows).
    """
    if not tables:
        raise ValueError("no Table 2 to stack: give one per seed")
    frames = []
    for seed, table in tables.items():
        df = _read(table, seed)
        df["name"] = [row_name(str(n), seed) for n in df["name"]]
        twice = df[df.duplicated(list(KEYS), keep=False)]
        if len(twice):
            raise ValueError(f"seed {seed}'s Table 2 holds rows twice: {_rows(twice)}")
        frames.append(df.assign(seed=seed)[[*KEYS, "seed", *METRICS]])
    first, rows = frames[0], set(map(tuple, frames[0][list(KEYS)].to_numpy()))
    for df in frames[1:]:
        other = set(map(tuple, df[list(KEYS)].to_numpy()))
        if other != rows:
            seed, s0 = int(df["seed"].iloc[0]), int(first["seed"].iloc[0])
            detail = "; ".join(f"only in seed {s}: {', '.join(' · '.join(r) for r in sorted(d)[:5])}"
                               + (" ..." if len(d) > 5 else "") for s, d in ((s0, rows - other), (seed, other - rows))
                               if d)
            raise ValueError(f"seeds {s0} and {seed} have different Table 2 rows ({detail}); train the missing "
                             "runs of each seed (make book SEED=<seed>) before comparing them")
    order = {key: i for i, key in enumerate(map(tuple, first[list(KEYS)].to_numpy()))}
    out = pd.concat(frames, ignore_index=True)
    out["_order"] = [order[tuple(k)] for k in out[list(KEYS)].to_numpy()]
    return out.sort_values(["_order", "seed"], kind="stable").drop(columns="_order").reset_index(drop=True)


def _rows(df: pd.DataFrame) -> str:
    return ", ".join(" · ".join(map(str, r)) for r in df[list(KEYS)].drop_duplicates().to_numpy())


# --------------------------------------------------------------------------------------------------
# The spread per row


def spread(stacked: pd.DataFrame, metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Mean and standard deviation over seeds of each Table 2 number.

    Args:
        stacked: ``stack``'s table.
        metrics: the metric columns to summarise.

    Returns:
        One row per (name, setting, task), in ``stacked``'s order: ``seeds`` (how many), then ``<metric>_mean`` and
        ``<metric>_std`` for each metric. The standard deviation is the sample one (ddof 1), NaN for one seed.
    """
    groups = stacked.groupby(list(KEYS), sort=False)
    out = groups.size().rename("seeds").to_frame()
    for m in metrics:
        out[f"{m}_mean"] = groups[m].mean()
        out[f"{m}_std"] = groups[m].std(ddof=1)
    return out.reset_index()


def table2_spread(tables: Mapping[int, pd.DataFrame | str | Path]) -> pd.DataFrame:
    """``spread(stack(tables))``: each Table 2 number as mean and standard deviation over the seeds' tables."""
    return spread(stack(tables))


def spread_table(spread_: pd.DataFrame, metric: str = "top1", digits: int = 1) -> pd.DataFrame:
    """One metric as the report lays Table 2 out, each cell ``"mean ± std"``: rows (setting, name), columns task.

    Args:
        spread_: ``spread``'s table.
        metric: one of ``METRICS``.
        digits: decimals shown.
    """
    if f"{metric}_mean" not in spread_.columns:
        raise ValueError(f"no metric {metric!r} in the spread; choose one of "
                         f"{', '.join(c[:-5] for c in spread_.columns if c.endswith('_mean'))}")
    cells = [f"{m:.{digits}f}" + ("" if np.isnan(s) else f" ± {s:.{digits}f}")  # one seed: no spread to show
             for m, s in zip(spread_[f"{metric}_mean"], spread_[f"{metric}_std"], strict=True)]
    out = spread_.assign(cell=cells).pivot_table(index=["setting", "name"], columns="task", values="cell",
                                                 aggfunc="first", sort=False)
    out.columns.name = f"{metric} (%), mean ± std over seeds"
    return out


# --------------------------------------------------------------------------------------------------
# Is a gap larger than the noise? Paired differences against a reference, seed by seed.


def differences(stacked: pd.DataFrame, reference: str, metric: str = "top1", task: str = "action") -> pd.DataFrame:
    """Every name's ``metric`` minus ``reference``'s, on the same seed (draw) and setting.

    Pairing by seed removes what a draw does to every model at once (an easy or a hard draw), so the standard
    deviation of the difference is the noise that matters for the comparison. ``same_sign`` says whether every
    seed agrees on which side is better: with three seeds, a gap that flips sign on one draw is not one to
    claim.

    Args:
        stacked: ``stack``'s table.
        reference: a name (without ``-s<seed>``), e.g. an ensemble's best member.
        metric: one of ``METRICS``.
        task: ``verb``, ``noun`` or ``action``.

    Returns:
        One row per (setting, name) other than ``reference``: ``seeds, diff_mean, diff_std, same_sign``.

    Raises:
        ValueError: ``reference`` (or ``task``) is not in the table.
    """
    part = stacked[stacked["task"] == task]
    if part.empty:
        raise ValueError(f"no task {task!r} in the table; choose one of {', '.join(stacked['task'].unique())}")
    names = list(dict.fromkeys(part["name"]))
    if reference not in names:
        raise ValueError(f"no row named {reference!r}; choose one of {', '.join(names)}")
    wide = part.pivot_table(index=["setting", "seed"], columns="name", values=metric, sort=False)
    diff = wide.drop(columns=reference).sub(wide[reference], axis=0)  # (setting x seed, names)
    rows = []
    for setting, block in diff.groupby(level="setting", sort=False):
        for name in [n for n in names if n != reference]:
            d = block[name].to_numpy()
            rows.append({"setting": setting, "name": name, "seeds": len(d), "diff_mean": float(d.mean()),
                         "diff_std": float(d.std(ddof=1)) if len(d) > 1 else float("nan"),
                         "same_sign": bool(np.all(d > 0) or np.all(d < 0))})
    return pd.DataFrame(rows, columns=["setting", "name", "seeds", "diff_mean", "diff_std", "same_sign"])
