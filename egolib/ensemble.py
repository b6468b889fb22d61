"""Ensembles by score averaging: the report's Tables 1 and 2 recomputed from score files, and their ablations.

Read top-down:

    the report   Table 2 (and the best single model) as data, from the technical report
    config       ``configs/ensembles.yaml``: members are runs (method, backbone, pretrain) or other ensembles
                 (nested to any depth); unknown names and cycles are refused
    members      a run's score files (``egolib.scores``); a missing run names the command that trains it
    averaging    checks (same uids, class spaces, action vocabulary), then the mean of softmax scores (the
                 report "averages classification scores") or of raw logits (the released GSM code sums logits)
    tables       Table 1 (membership), Table 2 (EPIC-55 metrics per setting through ``egolib.metrics``); on
                 EPIC-100, the EPIC-100 metrics table (validation: overall, tail classes, unseen participants)
    ablations    leave-one-out, greedy forward selection, accuracy vs size, nested vs flat, pairwise
                 disagreement and oracle accuracy, the GSM test protocol (full frame vs centre crop)
    CLI          ``python -m egolib.ensemble --runs runs --preset demo --out DIR`` (Table 2, score files, zips);
                 ``python -m egolib.ensemble rescore runs/<name>`` (a run's score files from its checkpoint)

Datasets: EPIC-55 runs score S1 and S2 (``scores_s1.npz``, ``scores_s2.npz``), EPIC-100 runs ``validation`` (public
labels) and ``test`` (hidden labels); every function below takes the splits its scores hold, and the ablations use
the labelled ones.

An ensemble's averaged scores are a score file like a run's (``average`` says which mean it holds). A nested
member (Ensemble 3 holds Ensembles 1 and 2) enters the mean as one member with its own averaged scores, so the
runs it holds weigh less than Ensemble 3's own runs (``leaf_weights``); ``flat`` averages the same runs equally.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import logging
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from egolib import epic, metrics, paper, runs, scores, submission
from egolib.config import BACKBONES, DATASETS, METHODS, PRESETS, PRETRAINS, RunConfig
from egolib.scores import TASKS, Scores

log = logging.getLogger(__name__)

SPLITS = ("s1", "s2")  # EPIC-55's test splits; ``splits(dataset)`` gives any dataset's
SETTINGS = {"s1": "S1", "s2": "S2", "validation": "validation", "test": "test"}  # how tables name a split
AVERAGES = ("softmax", "logits")
TABLE2_COLUMNS = ["name", "setting", "task", "top1", "top5", "precision", "recall"]
EPIC100_TABLE = "epic100_metrics"  # <out>/epic100_metrics.csv: the EPIC-100 table, in place of table2.csv


def splits(dataset: str = "epic55") -> tuple[str, ...]:
    """The test splits a run of ``dataset`` scores: ``s1, s2`` (EPIC-55) or ``validation, test`` (EPIC-100)."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return runs.TEST_SPLITS[dataset]


def labelled_splits(split_scores: Mapping[str, Scores]) -> list[str]:
    """The splits of ``split_scores`` whose labels are public (EPIC-55 SynthKitchens: S1 and S2; EPIC-100:
    validation), in order."""
    return [split for split, s in split_scores.items() if s.labelled]
DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "ensembles.yaml"


# --------------------------------------------------------------------------------------------------
# 1. The report: Table 2 on the EPIC-Kitchens-55 test server, in percent (``egolib.paper``).

REPORT_DATA = "EPIC-Kitchens-55 test server (the report)"


def report_table2() -> pd.DataFrame:
    """The report's Table 2 (``egolib.paper``) in this module's long format (``TABLE2_COLUMNS``, percent)."""
    return _order(paper.table2()[TABLE2_COLUMNS])


def _order(table: pd.DataFrame) -> pd.DataFrame:
    """Rows by name (first appearance), setting, then task in verb, noun, action order."""
    names = list(dict.fromkeys(table["name"]))
    key = {"name": names.index, "setting": lambda s: s, "task": TASKS.index}
    return table.sort_values(["name", "setting", "task"], key=lambda c: c.map(key[c.name]),
                             kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# 2. Config: configs/ensembles.yaml


@dataclass(frozen=True)
class Member:
    """One ensemble member: a run (``method``, ``backbone``, ``pretrain``) or an ensemble (``ensemble``)."""

    method: str | None = None
    backbone: str | None = None
    pretrain: str | None = None
    ensemble: str | None = None

    @property
    def is_run(self) -> bool:
        return self.ensemble is None

    def run_name(self, preset: str, seed: int, dataset: str = "epic55", data_root: str | None = None) -> str:
        """The run folder's name, as ``RunConfig.name`` spells it (e.g. ``gsm-bninc-epic-demo-s0``,
        ``gsm-bninc-epic-demo-epic100-s0``, ``gsm-bninc-epic-paper-s0-data=1a2b3c4d`` for a ``data_root``)."""
        return RunConfig(method=self.method, backbone=self.backbone, pretrain=self.pretrain, preset=preset,
                         seed=seed, dataset=dataset, data_root=data_root).name

    def label(self) -> str:
        return self.ensemble if self.ensemble else f"{self.method}-{self.backbone}-{self.pretrain}"


@dataclass(frozen=True)
class EnsembleConfig:
    """The ensembles of a config file, each a list of members, in file order; checked free of cycles."""

    ensembles: dict[str, tuple[Member, ...]]
    path: str = "ensembles.yaml"

    def members(self, name: str) -> tuple[Member, ...]:
        if name not in self.ensembles:
            raise KeyError(f"no ensemble {name!r} in {self.path}; it defines {', '.join(self.ensembles)}")
        return self.ensembles[name]

    def runs(self, name: str | None = None) -> list[Member]:
        """The distinct runs of ensemble ``name`` at any depth (of every ensemble when None), in first-seen order."""
        names = [name] if name is not None else list(self.ensembles)
        seen: dict[Member, None] = {}
        for n in names:
            for m in self.members(n):
                for r in ([m] if m.is_run else self.runs(m.ensemble)):
                    seen.setdefault(r, None)
        return list(seen)

    def leaf_weights(self, name: str) -> dict[Member, float]:
        """Each run's weight in ensemble ``name`` once nested members are expanded (the weights sum to 1).

        Averaging is linear in the averaged space, so the nested mean equals this weighted mean of the runs.
        """
        members = self.members(name)
        weights: dict[Member, float] = {}
        for m in members:
            inner = {m: 1.0} if m.is_run else self.leaf_weights(m.ensemble)
            for run, w in inner.items():
                weights[run] = weights.get(run, 0.0) + w / len(members)
        return weights


_RUN_KEYS = {"method": METHODS, "backbone": BACKBONES, "pretrain": PRETRAINS}


def _member(entry: Any, where: str) -> Member:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: a member is a mapping {{method, backbone, pretrain}} or {{ensemble}}, "
                         f"got {entry!r}")
    if set(entry) == {"ensemble"}:
        return Member(ensemble=str(entry["ensemble"]))
    if set(entry) != set(_RUN_KEYS):
        raise ValueError(f"{where}: member {entry!r} must have exactly the keys method, backbone, pretrain "
                         "(a run) or ensemble (a nested ensemble)")
    for key, valid in _RUN_KEYS.items():
        if entry[key] not in valid:
            raise ValueError(f"{where}: unknown {key} {entry[key]!r}; choose one of {', '.join(valid)}")
    return Member(method=entry["method"], backbone=entry["backbone"], pretrain=entry["pretrain"])


def load_config(path: str | Path = DEFAULT_CONFIG) -> EnsembleConfig:
    """Read and check an ensembles file: known names, no empty ensemble, no duplicate member, no cycle.

    Raises:
        ValueError: a malformed member, a reference to an undefined ensemble, or a cycle (named in full).
    """
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data.get("ensembles"), dict) or not data["ensembles"]:
        raise ValueError(f"{path} must hold a non-empty mapping 'ensembles: {{name: [members]}}'")
    ensembles = {}
    for name, entries in data["ensembles"].items():
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"{path}: ensemble {name!r} must be a non-empty list of members")
        members = tuple(_member(e, f"{path}: ensemble {name!r}") for e in entries)
        dup = [m.label() for m, c in zip(members, range(len(members)), strict=True) if members.index(m) != c]
        if dup:
            raise ValueError(f"{path}: ensemble {name!r} lists {dup[0]} twice")
        ensembles[str(name)] = members
    for name, members in ensembles.items():
        for m in members:
            if not m.is_run and m.ensemble not in ensembles:
                raise ValueError(f"{path}: ensemble {name!r} has member ensemble {m.ensemble!r}, which is not "
                                 f"defined; defined: {', '.join(ensembles)}")
    _check_acyclic(ensembles, path)
    return EnsembleConfig(ensembles, str(path))


def _check_acyclic(ensembles: Mapping[str, Sequence[Member]], path: Path) -> None:
    """Depth-first search; a back edge is a cycle, reported as ``a -> b -> a``."""
    state: dict[str, str] = {}  # name -> "open" | "done"

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            cycle = trail[trail.index(name):] + [name]
            raise ValueError(f"{path}: ensembles form a cycle {' -> '.join(cycle)}; an ensemble cannot contain "
                             "itself, directly or through its members")
        state[name] = "open"
        for m in ensembles[name]:
            if not m.is_run:
                visit(m.ensemble, trail + [name])
        state[name] = "done"

    for name in ensembles:
        visit(name, [])


def table1(config: EnsembleConfig) -> pd.DataFrame:
    """Table 1: one row per member (runs, then nested ensembles), one column per ensemble, True where a member.

    Returns:
        DataFrame indexed by (method, backbone, pretrain) for runs and (ensemble name, "-", "-") for ensembles.
    """
    rows: dict[tuple[str, str, str], dict[str, bool]] = {}
    runs_ = config.runs()
    ensembles_as_members = [Member(ensemble=n) for n in config.ensembles
                            if any(Member(ensemble=n) in ms for ms in config.ensembles.values())]
    order = ("egoaco", "gsm", "gsm_egoaco", "tsn")  # the report's row order
    runs_ = sorted(runs_, key=lambda m: (order.index(m.method), BACKBONES.index(m.backbone),
                                         PRETRAINS.index(m.pretrain)))
    for m in runs_ + ensembles_as_members:
        key = (m.method, m.backbone, m.pretrain) if m.is_run else (m.ensemble, "-", "-")
        rows[key] = {name: m in members for name, members in config.ensembles.items()}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index = pd.MultiIndex.from_tuples(table.index, names=["method", "backbone", "pretrain"])
    return table


# --------------------------------------------------------------------------------------------------
# 3. Members: run folders and their score files


class MissingRunError(FileNotFoundError):
    """Member runs without score files; the message lists each run and the command that trains it."""


def train_command(member: Member, preset: str, seed: int, runs_root: str | Path = "runs",
                  dataset: str = "epic55", data_root: str | None = None) -> str:
    """The papermill command that trains (or resumes) a member run into ``<runs_root>/<name>/``.

    The ``paper`` preset trains on the real EPIC-Kitchens frames, so without a ``data_root`` its command carries a
    placeholder for the reader to fill in.
    """
    name = member.run_name(preset, seed, dataset, data_root)
    params = {"method": member.method, "backbone": member.backbone, "pretrain": member.pretrain, "preset": preset,
              "seed": str(seed)}
    if dataset != "epic55":
        params["dataset"] = dataset
    if Path(runs_root) != Path("runs"):
        params["run_dir"] = str(Path(runs_root) / name)
    flags = " ".join(f"-p {k} {shlex.quote(v)}" for k, v in params.items())
    if data_root is not None:
        flags += f" -p data_root {shlex.quote(str(data_root))}"
    elif preset == "paper":
        flags += f" -p data_root <{'EPIC-Kitchens-55' if dataset == 'epic55' else 'EPIC-KITCHENS-100'} root>"
    return f"papermill book/03_train.ipynb {shlex.quote(str(Path(runs_root) / name / 'train.ipynb'))} {flags}"


def load_run(run_dir: str | Path, dataset: str = "epic55") -> dict[str, Scores]:
    """The score files of a run folder: ``scores_s1.npz`` and ``scores_s2.npz`` (EPIC-55), ``scores_validation.npz``
    and ``scores_test.npz`` (EPIC-100)."""
    run_dir = Path(run_dir)
    return {split: scores.read(run_dir / f"scores_{split}.npz") for split in splits(dataset)}


def load_runs(config: EnsembleConfig, runs_root: str | Path, preset: str, seed: int = 0,
              names: Sequence[str] | None = None, dataset: str = "epic55", data_root: str | None = None
              ) -> dict[str, dict[str, Scores]]:
    """The score files of every run of the ensembles ``names`` (all when None), keyed by run folder name (which
    names ``dataset`` and ``data_root``, as ``RunConfig.name`` does).

    Raises:
        MissingRunError: runs whose folder lacks a score file, each with the command that trains it.
        egolib.scores.ScoreFileError: a score file in the old format (with the command that rewrites it).
    """
    members = config.runs() if names is None else list(dict.fromkeys(r for n in names for r in config.runs(n)))
    folder = {m: Path(runs_root) / m.run_name(preset, seed, dataset, data_root) for m in members}
    missing = [m for m in members if not all((folder[m] / f"scores_{s}.npz").exists() for s in splits(dataset))]
    if missing:
        lines = "\n".join(f"  {folder[m]}: {train_command(m, preset, seed, runs_root, dataset, data_root)}"
                          for m in missing)
        raise MissingRunError(f"{len(missing)} member run(s) of the ensembles have no score files; train each with "
                              f"its command (from the repository root):\n{lines}")
    return {folder[m].name: load_run(folder[m], dataset) for m in members}


# --------------------------------------------------------------------------------------------------
# 4. Averaging


def check_compatible(members: Mapping[str, Scores]) -> dict[str, Scores]:
    """Check that every member scores the same segments in the same class spaces; align rows to the first.

    Returns:
        The members with rows in the first member's uid order.

    Raises:
        ValueError: naming the two members and the first differing uids, class counts, action pairs,
            labels, many-shot lists or data set.
    """
    names = list(members)
    if not names:
        raise ValueError("an ensemble needs at least one member")
    ref_name, ref = names[0], members[names[0]]
    ref_uids = ref.uid.tolist()
    aligned = {ref_name: ref}
    for name in names[1:]:
        s = members[name]
        uids = s.uid.tolist()
        have, want = set(uids), set(ref_uids)
        only_ref = [u for u in ref_uids if u not in have]
        only_s = [u for u in uids if u not in want]
        if only_ref or only_s:
            raise ValueError(
                f"members {ref_name} and {name} score different segments: {len(only_ref)} uid(s) only in "
                f"{ref_name} (first: {only_ref[:5]}), {len(only_s)} only in {name} (first: {only_s[:5]})"
            )
        if uids != ref_uids:
            order = {u: i for i, u in enumerate(uids)}
            idx = np.array([order[u] for u in ref_uids])
            s = s.replace(uid=s.uid[idx], verb=s.verb[idx], noun=s.noun[idx], action=s.action[idx],
                          verb_label=s.verb_label[idx], noun_label=s.noun_label[idx])
        for t in TASKS:
            if s.num_classes[t] != ref.num_classes[t]:
                raise ValueError(f"members {ref_name} and {name} have different {t} class counts: "
                                 f"{ref.num_classes[t]} and {s.num_classes[t]}")
        if not np.array_equal(s.action_pairs, ref.action_pairs):
            i = int(np.argmax((s.action_pairs != ref.action_pairs).any(axis=1)))
            raise ValueError(f"members {ref_name} and {name} have different action vocabularies: action {i} is "
                             f"{tuple(ref.action_pairs[i].tolist())} in {ref_name} and "
                             f"{tuple(s.action_pairs[i].tolist())} in {name}")
        for field in ("verb_label", "noun_label"):
            diff = np.flatnonzero(getattr(s, field) != getattr(ref, field))
            if diff.size:
                raise ValueError(f"members {ref_name} and {name} disagree on {field} of uid(s) "
                                 f"{ref.uid[diff[:5]].tolist()}: they were not scored on the same test set")
        for field in ("many_shot_verbs", "many_shot_nouns", "many_shot_actions"):
            if not np.array_equal(getattr(s, field), getattr(ref, field)):
                raise ValueError(f"members {ref_name} and {name} have different {field}: another data set")
        if s.dataset != ref.dataset:
            raise ValueError(f"members {ref_name} ({ref.dataset}) and {name} ({s.dataset}) come from different data")
        aligned[name] = s
    return aligned


def softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64: (N, C) -> (N, C)."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def in_space(s: Scores, average: str, name: str = "member") -> dict[str, np.ndarray]:
    """A member's scores in the space being averaged: softmax of a run's logits, or its logits as they are.

    An ensemble member already holds a mean in one space; it can only join a mean in that same space.
    """
    if average not in AVERAGES:
        raise ValueError(f"unknown average {average!r}; choose one of {', '.join(AVERAGES)}")
    if s.average == "none":
        return {t: softmax(getattr(s, t)) if average == "softmax" else getattr(s, t).astype(np.float64)
                for t in TASKS}
    if s.average != average:
        raise ValueError(f"{name} holds a mean of {s.average} scores; it cannot join a mean of {average} scores")
    return {t: getattr(s, t).astype(np.float64) for t in TASKS}


def combine(members: Mapping[str, Scores], average: str = "softmax",
            weights: Mapping[str, float] | None = None) -> Scores:
    """The mean of the members' scores (softmax probabilities or raw logits), as a score file's content.

    Args:
        members: member name -> its scores (a run's logits, or an ensemble's mean in the same space).
        average: ``softmax`` (mean of per-member softmax scores) or ``logits`` (mean of raw logits).
        weights: optional member weights (normalised to sum to 1); equal weights when None.

    Returns:
        Scores with ``average`` set, ``members`` the member names, float32 means (the metrics are computed on
        exactly what a score file holds).
    """
    aligned = check_compatible(members)
    names = list(aligned)
    w = np.array([1.0 if weights is None else float(weights[n]) for n in names])
    w = w / w.sum()
    total = {t: 0.0 for t in TASKS}
    for wi, name in zip(w, names, strict=True):
        space = in_space(aligned[name], average, name)
        for t in TASKS:
            total[t] = total[t] + wi * space[t]  # (N, classes)
    first = aligned[names[0]]
    return first.replace(**{t: np.asarray(total[t], dtype=np.float32) for t in TASKS}, average=average,
                         members=tuple(names))


def evaluate_ensembles(config: EnsembleConfig, run_scores: Mapping[str, Mapping[str, Scores]], preset: str,
                       seed: int = 0, average: str = "softmax", dataset: str = "epic55",
                       data_root: str | None = None) -> dict[str, dict[str, Scores]]:
    """Every ensemble of ``config``, nested members computed first, per split (the splits the runs scored).

    Args:
        run_scores: run folder name -> split -> Scores (``load_runs``).
        dataset, data_root: the runs' dataset and data root (they name their folders).

    Returns:
        ensemble name -> split -> its averaged Scores.
    """
    done: dict[str, dict[str, Scores]] = {}

    def build(name: str) -> dict[str, Scores]:
        if name not in done:
            parts = {}
            for m in config.members(name):
                key = m.run_name(preset, seed, dataset, data_root) if m.is_run else m.ensemble
                parts[key] = run_scores[key] if m.is_run else build(m.ensemble)
            split_names = next(iter(parts.values()))
            done[name] = {split: combine({k: v[split] for k, v in parts.items()}, average) for split in split_names}
        return done[name]

    for name in config.ensembles:
        build(name)
    return {name: done[name] for name in config.ensembles}


# --------------------------------------------------------------------------------------------------
# 5. Tables


def metrics_rows(name: str, split_scores: Mapping[str, Scores]) -> list[dict[str, Any]]:
    """Table 2 rows (percent) of one run or ensemble: one per labelled setting and task."""
    rows = []
    for split in labelled_splits(split_scores):
        m = split_scores[split].metrics()
        rows += [{"name": name, "setting": SETTINGS[split], "task": t,
                  **{k: 100 * m[t][k] for k in ("top1", "top5", "precision", "recall")}} for t in TASKS]
    return rows


def table2(results: Mapping[str, Mapping[str, Scores]]) -> pd.DataFrame:
    """Table 2 in long format (``TABLE2_COLUMNS``): EPIC-55 metrics per name, setting and task, in percent."""
    rows = [r for name, split_scores in results.items() for r in metrics_rows(name, split_scores)]
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)


def submitted_scores(s: Scores) -> dict[str, np.ndarray]:
    """The verb and noun scores as a challenge server reads them, logits whose softmax it takes: a run's or a logit
    mean's as they are, a softmax mean as its logarithm (whose softmax is the mean itself).

    Returns:
        ``{"verb": (N, V), "noun": (N, Nn)}`` float64.
    """
    if s.average == "softmax":
        return {t: np.log(np.maximum(getattr(s, t).astype(np.float64), 1e-300)) for t in ("verb", "noun")}
    return {t: getattr(s, t).astype(np.float64) for t in ("verb", "noun")}


def epic100_metrics(s: Scores, annotations: epic.Epic100) -> dict[str, dict[str, Any]]:
    """``egolib.metrics.epic100_metrics`` of validation scores (a run's or an ensemble's): overall, tail classes and
    unseen participants, actions from the verb x noun product of ``submitted_scores`` (as the official evaluation;
    for a run these are exactly the numbers of its ``metrics.json``).

    Args:
        s: validation scores, uids = narration ids.
        annotations: the dataset's EPIC-100 annotations (validation labels, tail classes, unseen participants).

    Raises:
        ValueError: the scores are unlabelled, or their segments or labels are not the annotations' validation set.
    """
    if not s.labelled:
        raise ValueError("the EPIC-100 metrics need labelled scores: score the validation split, not test")
    val = annotations.validation.set_index("narration_id")
    unknown = [u for u in s.uid.tolist() if u not in val.index]
    if unknown:
        raise ValueError(f"{len(unknown)} scored segment(s) are not in the validation annotations (first: "
                         f"{unknown[:3]}): the scores come from another dataset")
    val = val.loc[s.uid.tolist()]  # the scores' row order
    if not (np.array_equal(val["verb_class"].to_numpy(), s.verb_label)
            and np.array_equal(val["noun_class"].to_numpy(), s.noun_label)):
        raise ValueError("the scores' labels differ from the validation annotations: they come from another draw")
    logits = submitted_scores(s)
    return metrics.epic100_metrics(logits["verb"], logits["noun"], s.verb_label, s.noun_label,
                                   val["participant_id"].tolist(), annotations.tail_verbs, annotations.tail_nouns,
                                   annotations.unseen_validation)


def epic100_table(results: Mapping[str, Mapping[str, Scores]], annotations: epic.Epic100) -> pd.DataFrame:
    """The EPIC-100 metrics table in place of Table 2: one row per run or ensemble, on validation, in percent.

    Returns:
        ``egolib.metrics.epic100_table`` of ``epic100_metrics`` per name: columns ``overall <task> top1/top5``,
        ``tail <task> top1``, ``unseen <task> top1``; indexed by ``name``.
    """
    table = metrics.epic100_table({name: epic100_metrics(split_scores["validation"], annotations)
                                   for name, split_scores in results.items()})
    return table.rename_axis("name")


def annotations_of(preset: str, seed: int = 0, dataset: str = "epic100", data_root: str | None = None
                   ) -> epic.Epic100:
    """The EPIC-100 annotations the runs of ``preset`` and ``seed`` used: ``<data_root>/annotations``, or those of
    the embedded SynthKitchens draw (``RunConfig.dataset_path``, relative to the working directory).

    Raises:
        FileNotFoundError: the annotations are not there; the message says what to fix.
    """
    if dataset != "epic100":
        raise ValueError(f"only EPIC-100 runs are scored with the EPIC-100 metrics, not {dataset!r}")
    root = RunConfig(preset=preset, seed=seed, dataset=dataset, data_root=data_root).dataset_path
    if data_root is not None and not (root / "annotations").is_dir():
        raise FileNotFoundError(f"no annotations folder in {root}: data_root must be the EPIC-KITCHENS-100 root the "
                                "runs were trained on, holding annotations/EPIC_100_*.csv")
    if not (root / "annotations").is_dir():
        raise FileNotFoundError(f"no annotations in {root}: the runs' data set is missing; train a run "
                                f"(book/03_train.ipynb with -p dataset {dataset}) to generate it, from the "
                                "repository root")
    return epic.load_epic100(root / "annotations")


def wide(table: pd.DataFrame, metrics_: Sequence[str] = ("top1", "top5", "precision", "recall")) -> pd.DataFrame:
    """Table 2 laid out as the report prints it: rows (setting, name), columns (metric, task)."""
    out = table.pivot_table(index=["setting", "name"], columns="task", values=list(metrics_), sort=False)
    return out.reindex(columns=pd.MultiIndex.from_product([list(metrics_), list(TASKS)]))


def top1(s: Scores) -> dict[str, float]:
    """Top-1 accuracy (fraction) per task, ranked as ``egolib.metrics`` ranks (ties: higher class id first).

    The quick path for the ablations, which average hundreds of subsets; equal to ``Scores.metrics()``'s top1 (on
    EPIC-100, to ``epic100_metrics``' overall top1: see ``predicted``).
    """
    if not s.labelled:
        raise ValueError("top-1 accuracy needs test labels")
    return {t: float(np.mean(correct(s, t))) for t in TASKS}


def ranks_actions_by_product(s: Scores) -> bool:
    """True for scores of EPIC-100 runs (``egolib.train`` names their data "EPIC-KITCHENS-100" or "..., EPIC-100
    layout"): EPIC-100's evaluation ranks actions by the verb x noun softmax product, never by an action head."""
    return "EPIC-KITCHENS-100" in s.dataset or "EPIC-100" in s.dataset


def predicted(s: Scores, task: str = "action") -> np.ndarray:
    """(N,) top-1 class per segment; for actions encoded ``verb * num_nouns + noun`` (the metrics' encoding).

    Actions come from the averaged action scores, except on EPIC-100 (``ranks_actions_by_product``), whose best
    action is the best pair of the verb x noun product: the top-1 verb with the top-1 noun.
    """
    if task == "action" and ranks_actions_by_product(s):
        return predicted(s, "verb") * s.noun.shape[1] + predicted(s, "noun")
    pred = metrics.rank_classes(getattr(s, task))[:, 0]
    if task == "action":
        pairs = s.action_pairs[pred]  # (N, 2)
        return pairs[:, 0] * s.noun.shape[1] + pairs[:, 1]
    return pred


def correct(s: Scores, task: str = "action") -> np.ndarray:
    """(N,) bool: whether each segment's top-1 ``task`` prediction is right."""
    label = s.verb_label * s.noun.shape[1] + s.noun_label if task == "action" else getattr(s, f"{task}_label")
    return predicted(s, task) == label


def correct_table(split_scores: Mapping[str, Mapping[str, Scores]], task: str = "action") -> pd.DataFrame:
    """Right or wrong (1/0) on every segment of every labelled split, one column per name (run or ensemble): the
    per-segment outcomes the verdicts (``egolib.verdicts``) resample.

    Args:
        split_scores: ``{name: {split: Scores}}``, every name scored on the same segments.

    Returns:
        Rows ``split, uid`` (the first name's segment order), then one int column per name.
    """
    names = list(split_scores)
    parts = []
    for split in labelled_splits(split_scores[names[0]]):
        aligned = check_compatible({n: split_scores[n][split] for n in names})
        part = pd.DataFrame({"split": split, "uid": aligned[names[0]].uid})
        for n in names:
            part[n] = correct(aligned[n], task).astype(int)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def top1_rows(name: str, split_scores: Mapping[str, Scores], **extra: Any) -> list[dict[str, Any]]:
    """Top-1 accuracy (percent) rows of the labelled splits: name, setting, task, top1, plus ``extra`` columns."""
    return [{"name": name, **extra, "setting": SETTINGS[split], "task": t, "top1": 100 * v}
            for split in labelled_splits(split_scores) for t, v in top1(split_scores[split]).items()]


def beats_best_member(config: EnsembleConfig, results: Mapping[str, Mapping[str, Scores]],
                      run_scores: Mapping[str, Mapping[str, Scores]], preset: str, seed: int = 0,
                      split: str = "s1", task: str = "action", dataset: str = "epic55",
                      data_root: str | None = None) -> pd.DataFrame:
    """Each ensemble's top-1 on ``split`` against its best direct member (a run or a nested ensemble), in percent."""
    rows = []
    for name in config.ensembles:
        members = {}
        for m in config.members(name):
            key = m.run_name(preset, seed, dataset, data_root) if m.is_run else m.ensemble
            members[key] = (run_scores[key] if m.is_run else results[m.ensemble])[split]
        accs = {k: 100 * top1(v)[task] for k, v in members.items()}
        best = max(accs, key=accs.get)
        own = 100 * top1(results[name][split])[task]
        rows.append({"ensemble": name, "top1": own, "best_member": best, "best_member_top1": accs[best],
                     "gain": own - accs[best], "beats_best_member": own > accs[best]})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------------
# 6. Ablations


def _nested(config: EnsembleConfig, name: str, run_scores: Mapping[str, Mapping[str, Scores]], preset: str,
            seed: int, average: str, drop: str | None = None, dataset: str = "epic55",
            data_root: str | None = None) -> dict[str, Scores]:
    """Ensemble ``name`` recomputed (nested members too), without its direct member ``drop``."""
    sub = {k: tuple(m for m in ms if not (k == name and (m.run_name(preset, seed, dataset, data_root) if m.is_run
                                                         else m.ensemble) == drop))
           for k, ms in config.ensembles.items()}
    return evaluate_ensembles(EnsembleConfig(sub, config.path), run_scores, preset, seed, average, dataset,
                              data_root)[name]


def leave_one_out(config: EnsembleConfig, name: str, run_scores: Mapping[str, Mapping[str, Scores]], preset: str,
                  seed: int = 0, average: str = "softmax", dataset: str = "epic55", data_root: str | None = None
                  ) -> pd.DataFrame:
    """Ensemble ``name`` without each of its direct members in turn: top-1 (percent) per labelled setting and task.

    Returns:
        Rows ``dropped`` ("none" for the full ensemble), setting, task, top1, and ``change`` against the full one.
    """
    rows = top1_rows(name, _nested(config, name, run_scores, preset, seed, average, dataset=dataset,
                                   data_root=data_root), dropped="none")
    for m in config.members(name):
        key = m.run_name(preset, seed, dataset, data_root) if m.is_run else m.ensemble
        rows += top1_rows(name, _nested(config, name, run_scores, preset, seed, average, drop=key, dataset=dataset,
                                        data_root=data_root),
                          dropped=key)
    table = pd.DataFrame(rows)
    full = table[table["dropped"] == "none"].set_index(["setting", "task"])["top1"]
    table["change"] = table["top1"] - table.set_index(["setting", "task"]).index.map(full)
    return table


def flat(run_scores: Mapping[str, Mapping[str, Scores]], names: Sequence[str],
         average: str = "softmax") -> dict[str, Scores]:
    """The equal-weight mean of the runs ``names`` (no nesting), per split."""
    return {split: combine({n: run_scores[n][split] for n in names}, average) for split in run_scores[names[0]]}


def greedy_selection(run_scores: Mapping[str, Mapping[str, Scores]], average: str = "softmax",
                     split: str = "s1", task: str = "action") -> pd.DataFrame:
    """Greedy forward selection: start empty, add the run that most raises ``split`` ``task`` top-1, until all
    are in (ties: the earlier run). Selecting on the test split itself flatters it; the other split is the
    check.

    Returns:
        One row per step: step, added, and top-1 (percent) of every setting and task of the selection so far.
    """
    pool, chosen, rows = list(run_scores), [], []
    while pool:
        trials = {n: flat(run_scores, chosen + [n], average) for n in pool}
        best = max(pool, key=lambda n: top1(trials[n][split])[task])
        chosen.append(best)
        pool.remove(best)
        acc = {f"{SETTINGS[s]} {t}": 100 * v for s in labelled_splits(trials[best])
               for t, v in top1(trials[best][s]).items()}
        rows.append({"step": len(chosen), "added": best, **acc})
    return pd.DataFrame(rows)


def size_curve(run_scores: Mapping[str, Mapping[str, Scores]], average: str = "softmax",
               max_subsets: int = 300, seed: int = 0) -> pd.DataFrame:
    """Top-1 of flat ensembles of every size on the labelled splits: all subsets of each size (a seeded sample of
    ``max_subsets`` when there are more).

    Returns:
        One row per (size, subset, setting, task): size, subset ("+"-joined names), setting, task, top1 (%).
    """
    names = list(run_scores)
    rng = np.random.default_rng(seed)
    labelled = labelled_splits(run_scores[names[0]])
    aligned = {s: check_compatible({n: run_scores[n][s] for n in names}) for s in labelled}  # same row order
    spaces = {(n, s): in_space(aligned[s][n], average) for n in names for s in labelled}
    rows = []
    for k in range(1, len(names) + 1):
        subsets = list(itertools.combinations(names, k))
        if len(subsets) > max_subsets:
            subsets = [subsets[i] for i in sorted(rng.choice(len(subsets), max_subsets, replace=False))]
        for subset in subsets:
            for s in labelled:
                mean = {t: np.mean([spaces[(n, s)][t] for n in subset], axis=0).astype(np.float32) for t in TASKS}
                acc = top1(aligned[s][subset[0]].replace(**mean, average=average, members=subset))
                rows += [{"size": k, "subset": "+".join(subset), "setting": SETTINGS[s], "task": t, "top1": 100 * v}
                         for t, v in acc.items()]
    return pd.DataFrame(rows)


def pairwise(run_scores: Mapping[str, Mapping[str, Scores]], split: str = "s1",
             task: str = "action") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Pairwise complementarity of runs on one split and task, in percent of segments.

    Returns:
        ``(disagreement, oracle)``: square tables over the runs; disagreement = the two top-1 predictions
        differ; oracle = at least one of the two is right (the diagonal is the run's own accuracy).
    """
    aligned = check_compatible({n: run_scores[n][split] for n in run_scores})
    names = list(aligned)
    pred = {n: predicted(s, task) for n, s in aligned.items()}
    hit = {n: correct(s, task) for n, s in aligned.items()}
    dis = pd.DataFrame([[100 * float(np.mean(pred[a] != pred[b])) for b in names] for a in names], names, names)
    ora = pd.DataFrame([[100 * float(np.mean(hit[a] | hit[b])) for b in names] for a in names], names, names)
    return dis, ora


def family(run_name: str) -> str:
    """The model family of a run folder name: GSM, EgoACO, GSM + EgoACO, or TSN."""
    method = run_name.split("-", 1)[0]
    return {"gsm": "GSM", "egoaco": "EgoACO", "gsm_egoaco": "GSM + EgoACO", "tsn": "TSN"}.get(method, method)


def family_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean of an off-diagonal pairwise table within and across families."""
    rows = []
    for a, b in itertools.combinations(table.index, 2):
        fa, fb = sorted((family(a), family(b)))
        rows.append({"pair": f"{fa} / {fb}", "value": table.loc[a, b]})
    return pd.DataFrame(rows).groupby("pair")["value"].agg(["mean", "count"]).reset_index()


def s1_s2_drop(table: pd.DataFrame) -> pd.DataFrame:
    """Top-1 drop from S1 (seen kitchens) to S2 (unseen) per name and task, in points, from a Table 2."""
    t = table.pivot_table(index=["name", "task"], columns="setting", values="top1", sort=False)
    t["drop"] = t["S1"] - t["S2"]
    return t.reset_index()


def unseen_drop(table: pd.DataFrame) -> pd.DataFrame:
    """EPIC-100's counterpart of the S1 -> S2 drop: validation top-1 over all segments minus top-1 on the unseen
    participants' segments, per name and task, in points, from an ``epic100_table``.

    Returns:
        Rows ``name, task, overall, unseen, drop``.
    """
    rows = [{"name": name, "task": t, "overall": r[f"overall {t} top1"], "unseen": r[f"unseen {t} top1"],
             "drop": r[f"overall {t} top1"] - r[f"unseen {t} top1"]} for name, r in table.iterrows() for t in TASKS]
    return pd.DataFrame(rows, columns=["name", "task", "overall", "unseen", "drop"])


# --------------------------------------------------------------------------------------------------
# 7. The GSM test protocol: re-scoring a run from its checkpoint


def run_config(run_dir: str | Path) -> RunConfig:
    """A run folder's ``RunConfig`` (its ``config.json``), pointed at ``run_dir`` wherever the folder now is."""
    run_dir = Path(run_dir)
    path = run_dir / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no config.json: not a run folder written by egolib.train")
    return dataclasses.replace(RunConfig.from_json(path), run_dir=str(run_dir))


def rescore_split_scores(run_dir: str | Path, *, crop: str | None = None, progress: bool = False,
                         device: str | None = None, splits: Sequence[str] | None = None) -> dict[str, Scores]:
    """A run's test scores recomputed from its checkpoint (nothing written), optionally with another test crop.

    Args:
        run_dir: the run folder (``config.json``, ``checkpoint.pt``).
        crop: ``full`` (whole frame, GSM's protocol) or ``centre`` (EgoACO's); None: the run's own.
        device: ``cpu``, ``cuda`` or ``auto``; None: the run's own setting.
        splits: the test splits to score; None: all of the run's.

    Returns:
        split -> Scores.
    """
    from egolib import models, train  # torch is needed only here

    cfg = run_config(run_dir)
    changes = {k: v for k, v in (("test_crop", crop), ("device", device)) if v is not None}
    cfg = dataclasses.replace(cfg, **changes)
    ckpt = Path(run_dir) / train.CHECKPOINT
    if not ckpt.exists():
        raise FileNotFoundError(f"{run_dir} has no {train.CHECKPOINT}: it cannot be re-scored; train it again")
    dist = train.setup_distributed(cfg)
    data = train.load_data(cfg, progress=progress)
    model = train.place(models.load_model(ckpt), cfg, dist.device)
    return {split: train.test_scores(cfg, model, data, split, dist, progress=progress) for split in data.test_splits
            if splits is None or split in splits}


def rescore(run_dir: str | Path, *, progress: bool = True) -> dict[str, Any]:
    """Rewrite a run's score files, ``metrics.json`` and ``submission.zip`` from its checkpoint with its own
    test protocol (no retraining), owning the run folder meanwhile; ``DONE`` is rewritten last (with the new files'
    hashes) when the run had one. The training resources recorded in ``metrics.json`` are kept.

    Returns:
        The new content of ``metrics.json``.
    """
    from egolib import models, train

    run_dir = Path(run_dir)
    cfg = run_config(run_dir)
    with runs.exclusive(run_dir):  # no training process writes there meanwhile
        old = json.loads((run_dir / train.METRICS).read_text()) if (run_dir / train.METRICS).exists() else {}
        had_done = (run_dir / runs.DONE).exists()
        model = models.load_model(run_dir / train.CHECKPOINT)
        result = train.evaluate(cfg, model, progress=progress)
        if "resources" in old:
            result["resources"] = old["resources"]
            runs.write_json(run_dir / train.METRICS, result)
        if had_done:
            # the hashes of the rewritten files
            runs.write_done(run_dir, [*runs.run_outputs(cfg.dataset), *train.extra_outputs(result)])
    return result


def _second_crop_scores(run_dir: Path, recorded: dict[str, Any], splits: Sequence[str]
                        ) -> dict[str, dict[str, Scores]]:
    """``{crop: {split: Scores}}`` from the second-crop files a run wrote when it was tested (``metrics.json``'s
    ``protocol.second_crop``), when there is one for each of ``splits`` and all verify against ``DONE``; else {}."""
    second = recorded.get("protocol", {}).get("second_crop")
    if not second:
        return {}
    files = {split: f"scores_{split}_{second['crop']}.npz" for split in splits}
    if not set(files.values()) <= set(second["files"]) or runs.unverified(run_dir, files.values()):
        return {}
    return {second["crop"]: {split: scores.read(run_dir / name) for split, name in files.items()}}


def protocol_ablation(runs_root: str | Path, run_names: Sequence[str], *, progress: bool = False,
                      device: str | None = None) -> tuple[pd.DataFrame, dict[str, dict[str, dict[str, Scores]]],
                                                           list[str]]:
    """Full frame (the report's GSM protocol) vs centre crop for GSM runs.

    The run's own protocol comes from its score files (written from the checkpoint by ``evaluate``, the protocol
    recorded in ``metrics.json``); the other crop from the second-crop score files the run wrote when it was tested
    (``train.SECOND_CROP``), when they are there and verify against ``DONE``, else it is re-scored from the
    checkpoint; on the labelled splits only (top-1 needs labels: EPIC-100's hidden test split is not scored). Runs
    without a checkpoint are skipped (and listed).

    Returns:
        ``(table, scores, skipped)``: top-1 rows (name, crop, setting, task, top1 in percent); run -> crop ->
        split -> Scores; the run names skipped.
    """
    rows, out, skipped = [], {}, []
    for name in run_names:
        run_dir = Path(runs_root) / name
        if not (run_dir / "checkpoint.pt").exists() or not (run_dir / "config.json").exists():
            skipped.append(name)
            continue
        recorded = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
        own = recorded.get("protocol", {}).get("crop")
        mine = load_run(run_dir, run_config(run_dir).dataset)
        labelled = labelled_splits(mine)
        stored = _second_crop_scores(run_dir, recorded, labelled)
        out[name] = {crop: {s: mine[s] for s in labelled} if crop == own else stored[crop] if crop in stored else
                     rescore_split_scores(run_dir, crop=crop, progress=progress, device=device, splits=labelled)
                     for crop in ("full", "centre")}
        for crop, split_scores in out[name].items():
            rows += top1_rows(name, split_scores, crop=crop)
    return pd.DataFrame(rows, columns=["name", "crop", "setting", "task", "top1"]), out, skipped


# --------------------------------------------------------------------------------------------------
# 8. Outputs: score files, Table 2, challenge zips; the CLI


def write_submission(path: str | Path, split_scores: Mapping[str, Scores]) -> Path:
    """The challenge zip of an ensemble or run: EPIC-55's (``seen.json`` = S1, ``unseen.json`` = S2) or, for scores
    of EPIC-100's splits, EPIC-100's (``test.json``, ``write_epic100_submission``).

    Verb and noun scores go in as logits (``submitted_scores``): a softmax mean is submitted as its logarithm, whose
    softmax (what the server computes) is the mean itself. Each segment's 100 best actions go in when there are
    100 pairs (EPIC-55; EPIC-100's server ranks the verb x noun products itself).
    """
    if "test" in split_scores:
        return write_epic100_submission(path, split_scores["test"])
    docs = []
    for split in SPLITS:
        s = split_scores[split]
        verb, noun = submitted_scores(s).values()
        enough = s.action.shape[1] >= min(metrics.ACTION_TOP_K, s.verb.shape[1] * s.noun.shape[1])
        docs.append(submission.epic55_json(s.uid.tolist(), verb, noun,
                                           action_scores=s.action_ranks() if enough else None))
    return submission.write_epic55_submission(path, *docs)


def write_epic100_submission(path: str | Path, test: Scores) -> Path:
    """The EPIC-100 challenge zip (``test.json``, version 0.2) of an ensemble's or a run's test scores."""
    logits = submitted_scores(test)
    return submission.write_epic100_submission(path, submission.epic100_json(test.uid.tolist(), logits["verb"],
                                                                             logits["noun"]))


def run(runs_root: str | Path, preset: str, out: str | Path, *, seed: int = 0,
        config: str | Path = DEFAULT_CONFIG, average: str = "softmax", dataset: str = "epic55",
        data_root: str | None = None) -> pd.DataFrame:
    """Every ensemble of ``config``: writes ``out/<ensemble>_<split>.npz`` for each split the runs scored and, when
    a split's labels are hidden (the real EPIC-55 test set, EPIC-100's test split), ``out/<ensemble>_submission.zip``.
    EPIC-55: ``out/table2.csv`` (one row per ensemble and per member run, setting and task). EPIC-100:
    ``out/epic100_metrics.csv`` (``epic100_table``: one row per ensemble and member run, on validation).

    Returns:
        EPIC-55: Table 2 (long format, percent), empty when no split has labels. EPIC-100: the EPIC-100 table.
    """
    if average not in AVERAGES:
        raise ValueError(f"unknown average {average!r}; choose one of {', '.join(AVERAGES)}")
    cfg = load_config(config)
    run_scores = load_runs(cfg, runs_root, preset, seed, dataset=dataset, data_root=data_root)
    results = evaluate_ensembles(cfg, run_scores, preset, seed, average, dataset, data_root)
    out = Path(out)
    for name, split_scores in results.items():
        for split, s in split_scores.items():
            scores.write(out / f"{name}_{split}.npz", s)
        if not all(s.labelled for s in split_scores.values()):
            write_submission(out / f"{name}_submission.zip", split_scores)
    if dataset == "epic100":
        table = epic100_table({**results, **run_scores}, annotations_of(preset, seed, dataset, data_root))
        runs.write_text(out / f"{EPIC100_TABLE}.csv", table.to_csv(float_format="%.4f"))
        return table
    table = table2({**results, **run_scores})
    runs.write_text(out / "table2.csv", table.to_csv(index=False, float_format="%.4f"))
    return table


def save_table(out: str | Path, stem: str, table: pd.DataFrame, *, index: bool = False) -> Path:
    """Write ``table`` as ``out/<stem>.csv`` (atomically)."""
    path = Path(out) / f"{stem}.csv"
    runs.write_text(path, table.to_csv(index=index, float_format="%.4f"))
    return path


def summary(beats: pd.DataFrame, setting: str = "S1") -> dict[str, dict[str, Any]]:
    """The chapter's headline numbers: ``beats_best_member_<ensemble>`` (1.0 or 0.0, action top-1)."""
    return {f"beats_best_member_{r.ensemble}": {
        "value": float(bool(r.beats_best_member)), "unit": "bool",
        "label": f"{r.ensemble} beats its best member ({r.best_member}) on {setting} action top-1"}
        for r in beats.itertuples()}


def main(argv: list[str] | None = None) -> None:
    """``python -m egolib.ensemble --runs runs --preset demo --out DIR`` or ``... rescore runs/<name>``."""
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    if argv[:1] == ["rescore"]:
        parser = argparse.ArgumentParser(prog="python -m egolib.ensemble rescore",
                                         description="Rewrite run folders' score files, metrics.json and "
                                                     "submission.zip from their checkpoints (no retraining).")
        parser.add_argument("run_dirs", nargs="+", help="run folders, e.g. runs/gsm-bninc-epic-demo-s0")
        parser.add_argument("--no-progress", action="store_true", help="no progress bars")
        args = parser.parse_args(argv[1:])
        for run_dir in args.run_dirs:
            rescore(run_dir, progress=not args.no_progress)
            print(f"re-scored {run_dir}")
        return
    parser = argparse.ArgumentParser(prog="python -m egolib.ensemble",
                                     description="Average member runs' scores into the ensembles of a config; "
                                                 "write their score files, Table 2 and challenge zips. "
                                                 "'python -m egolib.ensemble rescore RUN_DIR' rewrites a run's "
                                                 "score files from its checkpoint.")
    parser.add_argument("--runs", default="runs", help="the runs root holding <method>-<backbone>-... folders")
    parser.add_argument("--preset", required=True, choices=PRESETS, help="the preset the member runs were trained at")
    parser.add_argument("--seed", type=int, default=0, help="the member runs' seed")
    parser.add_argument("--dataset", default="epic55", choices=DATASETS,
                        help="the member runs' dataset (epic100: the EPIC-100 metrics table on validation)")
    parser.add_argument("--data-root", default=None,
                        help="the member runs' dataset root, as they were trained with (default: SynthKitchens)")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG), help="the ensembles file (Table 1)")
    parser.add_argument("--average", default="softmax", choices=AVERAGES,
                        help="softmax: mean of softmax scores (the report); logits: mean of raw logits (GSM code)")
    parser.add_argument("--out", required=True,
                        help="where the ensembles' score files and table2.csv (EPIC-100: epic100_metrics.csv) go")
    args = parser.parse_args(argv)
    try:
        table = run(args.runs, args.preset, args.out, seed=args.seed, config=args.config, average=args.average,
                    dataset=args.dataset, data_root=args.data_root)
    except (MissingRunError, scores.ScoreFileError, FileNotFoundError) as err:
        parser.exit(2, f"error: {err}\n")
    if args.dataset == "epic100":
        with pd.option_context("display.width", 200, "display.max_columns", 20):
            print(table.round(2).to_string())
        print(f"\nwritten to {args.out}: {EPIC100_TABLE}.csv, each ensemble's score files and EPIC-100 challenge zip")
        return
    if table.empty:
        print(f"no test labels (hidden test set): challenge zips written to {args.out}")
        return
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(wide(table).round(2).to_string())
    print(f"\nwritten to {args.out}: table2.csv and each ensemble's score files")


if __name__ == "__main__":
    main()
