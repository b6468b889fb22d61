"""The pages the book builds from its own files: the report's claims checked, and the run index.

Nothing here is typed in: every number measured here comes from a run folder (``runs/<name>/metrics.json`` and its
score files) or from a chapter's outputs (``runs/book/04_gsm_gates/order_predictions.csv``,
``runs/book/05_lsta_attention/pointing_frames.csv``, ``runs/book/06_ensembles/action_correct.csv`` and
``beats_best_member.csv``, ``table2.csv``, on EPIC-100 ``epic100_metrics.csv``), and every number of the report
from ``egolib.paper``. Each verdict is the one the measuring chapter gives, from the same function of
``egolib.verdicts`` on the same files: a difference with its bootstrap interval, read as *holds*, *does not hold* or
*cannot tell at this size*. A claim whose chapter produced no numbers says "not measured".

On EPIC-100 (``dataset="epic100"``) the labelled split is ``validation``: where the report compares S1 (seen
kitchens) with S2 (unseen), the pages compare the validation set overall with its unseen participants, and the
Table 2 section becomes the ensembles' EPIC-100 metrics (the report has no EPIC-100 numbers).

``summary.json`` of a chapter: ``{key: {"value": float, "unit": str, "label": str}}``."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from egolib import convergence, paper, verdicts
from egolib.config import RunConfig

NOT_MEASURED = "not measured"
METHOD_NAMES = {"tsn": "TSN", "gsm": "GSM", "egoaco": "EgoACO", "gsm_egoaco": "GSM + EgoACO"}
BACKBONE_NAMES = {"bninc": "BN-Inception", "incv3": "InceptionV3", "res34": "ResNet-34", "res101": "ResNet-101",
                  "res152": "ResNet-152", "r2p1d34": "R(2+1)D-34"}
PRETRAIN_NAMES = {"imagenet": "ImageNet", "epic": "EPIC", "ig65m_kinetics": "IG-65M + Kinetics", "scratch": "scratch"}
TASKS = ("verb", "noun", "action")
# The top-1 columns of the run table per dataset, ``<key>_<task>``: the primary (seen) split first, then its unseen
# counterpart; each with the name the pages give it. EPIC-100: validation overall and its unseen participants.
SPLIT_COLUMNS = {"epic55": (("s1", "S1"), ("s2", "S2")),
                 "epic100": (("validation", "validation"), ("unseen", "unseen participants"))}
EPIC100_TABLE = "epic100_metrics.csv"  # chapter 06's EPIC-100 table (egolib.ensemble.EPIC100_TABLE)


@dataclass(frozen=True)
class Claim:
    """One claim of the report, checked here."""

    claim: str  # the claim, in words
    measured: str  # the number(s) measured here with units, or NOT_MEASURED
    report: str  # the report's number(s), or what it says
    verdict: str  # verdicts.HOLDS, DOES_NOT_HOLD, CANNOT_TELL, or NOT_MEASURED
    chapter: str  # stem of the page that measures it (runs/book/<stem> or book/<stem>)
    difference: str  # the difference(s) the verdict reads, with interval and resampling ("" when not measured)
    criterion: str  # how the verdict is decided, in words (egolib.verdicts)


# --------------------------------------------------------------------------------------------------
# reading what the book produced


def read_summary(path: str | Path) -> dict[str, dict[str, Any]] | None:
    """A chapter's ``summary.json``, checked; ``None`` when the chapter has not written it.

    Raises:
        ValueError: an entry is not ``{"value": number, "unit": str, "label": str}`` (names the file and key).
    """
    path = Path(path)
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object {{key: {{value, unit, label}}}}, got {type(data).__name__}")
    for key, entry in data.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("value"), int | float)
                and isinstance(entry.get("unit"), str) and isinstance(entry.get("label"), str)):
            raise ValueError(f"{path}: entry {key!r} must be {{\"value\": number, \"unit\": str, \"label\": str}}, "
                             f"got {entry!r}; fix the chapter that writes it")
    return data


def run_top1(metrics: dict[str, Any], key: str, task: str) -> float:
    """Top-1 (%) of ``task`` from a run's ``metrics.json``: ``key`` ``s1``/``s2`` (EPIC-55), ``validation`` (EPIC-100,
    all segments) or ``unseen`` (EPIC-100, the validation segments of unseen participants); NaN when absent."""
    if key == "validation":
        value = metrics.get("validation", {}).get("overall", {}).get(task, {}).get("top1")
    elif key == "unseen":
        value = metrics.get("validation", {}).get("unseen", {}).get(task)
    else:
        value = metrics.get(key, {}).get(task, {}).get("top1")
    return 100 * value if value is not None else math.nan


def run_table(runs_root: str | Path, variants: Sequence[dict[str, str]], baselines: Sequence[dict[str, str]],
              *, preset: str, seed: int, dataset: str = "epic55", data_root: str | None = None) -> pd.DataFrame:
    """One row per run of the book (Table 1 variants, then baselines) at ``preset``, ``seed``, ``dataset`` and
    ``data_root``.

    Columns: ``name, method, backbone, pretrain, baseline, complete``, top-1 per split and task in %
    (``SPLIT_COLUMNS``: ``s1_action`` ... on EPIC-55, ``validation_action``, ``unseen_action`` ... on EPIC-100; NaN
    for a run that is not complete), ``pretrain_source``, ``train_min``, ``peak_mib``, ``code_version``,
    ``git_commit``; and its convergence (``convergence_columns``).
    """
    rows = []
    for params, baseline in [(v, False) for v in variants] + [(b, True) for b in baselines]:
        cfg = RunConfig.from_params({**params, "preset": preset, "seed": seed, "dataset": dataset,
                                   "data_root": data_root})
        folder = Path(runs_root) / cfg.name
        complete = (folder / "DONE").exists() and (folder / "metrics.json").exists()
        metrics = json.loads((folder / "metrics.json").read_text()) if complete else {}
        config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else {}
        resources = metrics.get("resources", {})
        row = {"name": cfg.name, "method": cfg.method, "backbone": cfg.backbone, "pretrain": cfg.pretrain,
               "baseline": baseline, "complete": complete}
        for key, _ in SPLIT_COLUMNS[dataset]:
            for task in TASKS:
                row[f"{key}_{task}"] = run_top1(metrics, key, task)
        row.update(pretrain_source=metrics.get("pretrain", {}).get("source", ""),
                   train_min=resources.get("train_s", math.nan) / 60, peak_mib=resources.get("peak_rss_mb", math.nan),
                   code_version=config.get("code_version", ""), git_commit=str(config.get("git_commit", ""))[:12])
        row.update(convergence_columns(folder / "log.csv" if complete else None, convergence.read_curves(cfg)))
        rows.append(row)
    return pd.DataFrame(rows)


def convergence_columns(log_csv: Path | None, study: pd.DataFrame | None) -> dict[str, float]:
    """How far a run trained: ``epochs``, and per task its training accuracy at the last epoch (``train_<task>``,
    % of the augmented clips) and the epoch where it stops improving (``train_stop_<task>``,
    ``convergence.plateau_epoch``), from its ``log.csv``; from the recorded validation study of its recipe
    (``convergence.read_curves``), the last epoch's validation top-1 (``val_<task>``, %) and where it stops
    improving (``val_stop_<task>``). NaN where there is no such file."""
    row: dict[str, float] = {}
    log = pd.read_csv(log_csv) if log_csv is not None and log_csv.is_file() else None
    row["epochs"] = math.nan if log is None else len(log)
    for prefix, curves, column in (("train", log, "acc_{}"), ("val", study, "val_{}")):
        for task in TASKS:
            values = None if curves is None else curves[column.format(task)]
            row[f"{prefix}_{task}"] = math.nan if values is None else 100 * float(values.iloc[-1])
            row[f"{prefix}_stop_{task}"] = math.nan if values is None else convergence.plateau_epoch(values)
    return row


def read_table2(path: str | Path) -> pd.DataFrame | None:
    """Chapter 06's ``table2.csv`` (columns ``name, setting, task, top1, top5, precision, recall``, in %), or
    ``None`` when it has not been written."""
    path = Path(path)
    if not path.exists():
        return None
    table = pd.read_csv(path)
    missing = {"name", "setting", "task", "top1"} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; fix the chapter that writes it")
    table["name"] = table["name"].astype(str).str.lower().str.replace(" ", "", regex=False)  # "Ensemble 1"
    table["setting"] = table["setting"].astype(str).str.upper()
    return table


def read_epic100_table(path: str | Path) -> pd.DataFrame | None:
    """Chapter 06's ``epic100_metrics.csv`` (indexed by name; ``overall <task> top1/top5``, ``tail <task> top1``,
    ``unseen <task> top1``, in %), or ``None`` when it has not been written."""
    path = Path(path)
    if not path.exists():
        return None
    table = pd.read_csv(path, index_col="name")
    missing = {f"{subset} action top1" for subset in ("overall", "tail", "unseen")} - set(table.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(sorted(missing))}; fix the chapter that writes it")
    return table


# --------------------------------------------------------------------------------------------------
# the claims


def _pct(value: float, unit: str = "%", digits: int = 1) -> str:
    """``41.3 %``, with a no-break space so that a narrow table column never separates the number from its unit."""
    return f"{value:.{digits}f}\u00a0{unit}".rstrip()


def _report(value: float) -> str:
    """One of the report's numbers, as precise as the report gives it."""
    return _pct(value, digits=2)


def _variant_name(method: str, backbone: str, pretrain: str) -> str:
    return f"{METHOD_NAMES[method]} {BACKBONE_NAMES[backbone]} ({PRETRAIN_NAMES[pretrain]})"


def _claim(words: str, measured: str, report: str, verdict: verdicts.Verdict, chapter: str) -> Claim:
    return Claim(words, measured, report, verdict.outcome, chapter, verdict.text(), verdict.criterion)


def _not_measured(words: str, report: str, chapter: str, criterion: str) -> Claim:
    return Claim(words, NOT_MEASURED, report, NOT_MEASURED, chapter, "", criterion)


def _csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def _split_name(split: str) -> str:
    return {"s1": "S1", "s2": "S2"}.get(split, split)


def claim_gsm_models_time(folder: Path | None) -> Claim:
    """Chapter 04's order probe (``order_predictions.csv`` in ``folder``): GSM follows the order of the clip more
    than TSN (``verdicts.gsm_models_time``)."""
    words = "GSM models time: it tells apart verbs that differ only in their temporal order"
    report = "the reason for GSM {cite:p}`sudhakaran2020gsm`; no number in the report"
    predictions = _csv(folder / "order_predictions.csv") if folder else None
    if predictions is None:
        return _not_measured(words, report, "04_gsm_gates", verdicts.GSM_MODELS_TIME)
    verdict = verdicts.gsm_models_time(predictions)
    scored = predictions.assign(order=verdicts.order_scores(predictions), right=predictions.forward == predictions.verb)
    by_model = scored.groupby("model")[["order", "right"]].mean() * 100  # % of clips
    measured = "; ".join(f"{label}: GSM {_pct(by_model.loc['GSM', column])}, TSN {_pct(by_model.loc['TSN', column])}"
                         for column, label in (("order", "mean order score"), ("right", "verb top-1 forward")))
    return _claim(words, measured, report, verdict, "04_gsm_gates")


def claim_egoaco_attends_to_object(folder: Path | None) -> Claim:
    """Chapter 05's pointing game (``pointing_frames.csv`` in ``folder``): the object branch's attention peak lands
    on the active object more often than a centre prior and than random peaks, on every labelled split
    (``verdicts.egoaco_attends_to_object``). The LSTA (act) attention's hits are shown beside it for context; the
    verdict is the object branch's, the branch built for the object."""
    words = "EgoACO attends to the active object"
    report = "the object branch's purpose {cite:p}`sudhakaran2021egoaco`; no number in the report"
    frames = _csv(folder / "pointing_frames.csv") if folder else None
    if frames is None:
        return _not_measured(words, report, "05_lsta_attention", verdicts.EGOACO_ATTENDS)
    verdict = verdicts.egoaco_attends_to_object(frames)
    hits = frames.groupby("split", sort=False)[["hit_obj", "hit_act", "hit_centre", "hit_random"]].mean() * 100
    parts = [f"{label} " + ", ".join(f"{_split_name(s)} {_pct(hits.loc[s, column])}" for s in hits.index)
             for column, label in (("hit_obj", "object branch"), ("hit_act", "LSTA (act) attention"),
                                   ("hit_centre", "centre prior"), ("hit_random", "random peaks"))]
    return _claim(words, "pointing-game hits: " + "; ".join(parts), report, verdict, "05_lsta_attention")


def _primary(correct: pd.DataFrame) -> pd.DataFrame:
    """The rows of the first labelled split of an ``action_correct.csv`` (S1; EPIC-100: validation)."""
    return correct[correct["split"] == correct["split"].iloc[0]]


def claim_ensembles_beat_members(folder: Path | None) -> Claim:
    """Chapter 06 (``beats_best_member.csv`` and ``action_correct.csv`` in ``folder``): each ensemble beats its best
    direct member on action top-1 of the first labelled split (``verdicts.ensemble_beats_best_member``)."""
    words = "An ensemble beats its best member"
    report = (f"Ensemble 3 {_report(paper.BEST_ENSEMBLE['s1'])} vs the best single model "
              f"{_report(paper.BEST_SINGLE['s1'])} (S1 action top-1)")
    beats, correct = (_csv(folder / f) if folder else None for f in ("beats_best_member.csv", "action_correct.csv"))
    if beats is None or correct is None:
        return _not_measured(words, report, "06_ensembles", verdicts.BEATS_BEST_MEMBER)
    primary = _primary(correct)
    best = dict(zip(beats["ensemble"], beats["best_member"], strict=True))
    verdict = verdicts.ensemble_beats_best_member(primary, best)
    acc = primary.drop(columns=["split", "uid"]).mean() * 100
    measured = "; ".join(f"{e} {_pct(acc[e])} vs {m} {_pct(acc[m])}" for e, m in best.items())
    return _claim(words, f"{measured} ({_split_name(primary['split'].iloc[0])} action top-1)", report, verdict,
                  "06_ensembles")


def claim_best_ensemble(folder: Path | None) -> Claim:
    """Chapter 06 (``action_correct.csv`` in ``folder``): Ensemble 3 has the best action top-1 of the ensembles on
    the first labelled split (``verdicts.best_is``)."""
    best = paper.BEST_ENSEMBLE
    words = "The best ensemble is Ensemble 3"
    report = f"Ensemble 3: S1 {_report(best['s1'])}, S2 {_report(best['s2'])} (action top-1)"
    correct = _csv(folder / "action_correct.csv") if folder else None
    names = list(dict.fromkeys(n for _, n in paper.TABLE2))
    if correct is None or not set(names) <= set(correct.columns):
        return _not_measured(words, report, "06_ensembles", verdicts.BEST_IS)
    verdict = verdicts.best_is(_primary(correct)[names], best["name"])
    acc = correct.groupby("split", sort=False)[names].mean() * 100
    measured = "; ".join(f"{n}: " + ", ".join(f"{_split_name(s)} {_pct(acc.loc[s, n])}" for s in acc.index)
                         for n in names)
    return _claim(words, measured + " (action top-1)", report, verdict, "06_ensembles")


def _run_correct(runs_root: str | Path, names: Sequence[str], dataset: str) -> dict[str, pd.DataFrame]:
    """Right or wrong (1/0) action top-1 per segment of each labelled split of the runs ``names``:
    ``{split: DataFrame(uid index, one column per run)}`` (``egolib.ensemble.correct_table``)."""
    from egolib import ensemble  # torch-free at import for the book driver

    table = ensemble.correct_table({n: ensemble.load_run(Path(runs_root) / n, dataset) for n in names})
    return {split: part.drop(columns="split").set_index("uid") for split, part in table.groupby("split", sort=False)}


def _unseen_participants(run_dir: Path, uids: Sequence[str]) -> np.ndarray:
    """(N,) bool: whether each EPIC-100 validation segment's participant is unseen in training, from the annotations
    of the run's dataset (``RunConfig.dataset_path``; a relative one is tried from the working directory, then from
    the folder that holds the runs root)."""
    from egolib import ensemble, epic

    root = ensemble.run_config(run_dir).dataset_path
    if not root.is_absolute() and not (root / "annotations").is_dir():
        root = run_dir.resolve().parent.parent / root
    annotations = epic.load_epic100(root / "annotations")
    if annotations.validation is None or annotations.unseen_validation is None:
        raise FileNotFoundError(f"{root / 'annotations'} lacks the EPIC-100 validation labels or the unseen "
                                "participant list that the unseen-kitchens claim reads")
    participant = annotations.validation.set_index("narration_id").loc[list(uids), "participant_id"].astype(str)
    return participant.isin({str(p) for p in annotations.unseen_validation}).to_numpy()


def claim_unseen_harder(runs_root: str | Path, runs: pd.DataFrame, dataset: str = "epic55") -> Claim:
    """Run folders: action top-1 on the unseen setting of ``SPLIT_COLUMNS`` below the primary one (EPIC-55: S2,
    unseen kitchens, below S1; EPIC-100: validation's unseen participants below validation overall), decided on
    the per-segment outcomes of every complete run (``verdicts.unseen_harder``, ``verdicts.unseen_harder_subset``)."""
    (first, first_name), (second, second_name) = SPLIT_COLUMNS[dataset]
    words = {"epic55": "Unseen kitchens (S2) are harder than seen kitchens (S1)",
             "epic100": "Unseen kitchens are harder than seen ones (on EPIC-100: the unseen participants of "
                        "validation against validation overall)"}[dataset]
    report = "; ".join(f"Ensemble {k} {_report(paper.action_top1('S1', f'ensemble{k}'))} → "
                       f"{_report(paper.action_top1('S2', f'ensemble{k}'))}" for k in (1, 2, 3)) + \
        {"epic55": " (action top-1)",
         "epic100": " (EPIC-55 S1 → S2 action top-1; the report has no EPIC-100 numbers)"}[dataset]
    criterion = verdicts.UNSEEN_HARDER_55 if dataset == "epic55" else verdicts.UNSEEN_HARDER_100
    a, b = f"{first}_action", f"{second}_action"
    done = runs[runs["complete"] & runs[a].notna() & runs[b].notna()]
    if done.empty:
        return _not_measured(words, report, "03_train_runs", criterion)
    correct = _run_correct(runs_root, list(done["name"]), dataset)
    if dataset == "epic55":
        verdict = verdicts.unseen_harder(correct["s1"].to_numpy().T, correct["s2"].to_numpy().T)
    else:
        val = correct["validation"]
        verdict = verdicts.unseen_harder_subset(val.to_numpy().T,
                                                _unseen_participants(Path(runs_root) / done["name"].iloc[0],
                                                                     list(val.index)))
    lower = int((done[b] < done[a]).sum())
    measured = (f"{second_name} below {first_name} in {lower} of {len(done)} runs; mean action top-1 {first_name} "
                f"{_pct(done[a].mean())}, {second_name} {_pct(done[b].mean())}")
    return _claim(words, measured, report, verdict, "03_train_runs")


def claim_best_single(runs_root: str | Path, runs: pd.DataFrame, dataset: str = "epic55") -> Claim:
    """Run folders: the Table 1 variant with the best S1 (EPIC-100: validation) action top-1 is the report's, decided
    on the per-segment outcomes of the complete variants (``verdicts.best_is``)."""
    best = paper.BEST_SINGLE
    words = "The best single model is EgoACO on R(2+1)D-34 (IG-65M + Kinetics)"
    report = (f"{_variant_name(best['method'], best['backbone'], best['pretrain'])}: S1 {_report(best['s1'])}, "
              f"S2 {_report(best['s2'])} (action top-1)")
    (first, first_name), (second, second_name) = SPLIT_COLUMNS[dataset]
    done = runs[runs["complete"] & ~runs["baseline"] & runs[f"{first}_action"].notna()]
    claimed = done[(done["method"] == best["method"]) & (done["backbone"] == best["backbone"])
                   & (done["pretrain"] == best["pretrain"])]
    if len(done) < 2 or claimed.empty:
        return _not_measured(words, report, "03_train_runs", verdicts.BEST_IS)
    verdict = verdicts.best_is(_run_correct(runs_root, list(done["name"]), dataset)[first], claimed["name"].iloc[0])
    top = done.loc[done[f"{first}_action"].idxmax()]
    measured = (f"best: {_variant_name(top['method'], top['backbone'], top['pretrain'])}: {first_name} "
                f"{_pct(top[f'{first}_action'])}, {second_name} {_pct(top[f'{second}_action'])} (action top-1)")
    return _claim(words, measured, report, verdict, "03_train_runs")


def ensembles_table(runs_root: str | Path, dataset: str = "epic55") -> pd.DataFrame | None:
    """Chapter 06's metrics table of ``dataset``: Table 2 (``read_table2``) or the EPIC-100 one
    (``read_epic100_table``); None when it has not been written."""
    folder = Path(runs_root) / "book" / "06_ensembles"
    return read_epic100_table(folder / EPIC100_TABLE) if dataset == "epic100" else read_table2(folder / "table2.csv")


def claims(runs_root: str | Path, runs: pd.DataFrame, measured: Sequence[str], dataset: str = "epic55"
           ) -> list[Claim]:
    """Every claim, from the run folders and the outputs of the chapters in ``measured`` (stems executed for this
    build; the outputs of any other chapter are ignored, they may be left over from another preset)."""
    book = Path(runs_root) / "book"

    def folder(stem: str) -> Path | None:
        return book / stem if stem in measured else None

    return [
        claim_gsm_models_time(folder("04_gsm_gates")),
        claim_egoaco_attends_to_object(folder("05_lsta_attention")),
        claim_ensembles_beat_members(folder("06_ensembles")),
        claim_unseen_harder(runs_root, runs, dataset),
        claim_best_ensemble(folder("06_ensembles")),
        claim_best_single(runs_root, runs, dataset),
    ]


# --------------------------------------------------------------------------------------------------
# the pages (MyST markdown, written into runs/book/ beside the executed chapters)

CHAPTER_TITLES = {
    "01_data_prep": "1. Data", "02_pretrain": "2. Pre-training", "03_train_runs": "3. Training runs",
    "04_gsm_gates": "4. GSM gates", "05_lsta_attention": "5. LSTA and EgoACO attention",
    "06_ensembles": "6. Ensembles", "07_efficiency": "7. Efficiency",
}


def _chapter_link(stem: str, in_book: set[str]) -> str:
    title = CHAPTER_TITLES.get(stem, stem)
    if stem not in in_book:
        return f"{title} (not in this build)"
    target = "../../book/03_train_runs.md" if stem == "03_train_runs" else f"{stem}.ipynb"
    return f"[{title}]({target})"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def results_page(found: Sequence[Claim], runs: pd.DataFrame, table2: pd.DataFrame | None, *, preset: str,
                 seed: int, in_book: set[str], dataset: str = "epic55") -> str:
    """The results page: the claims table, then Table 2's action top-1 here and in the report (EPIC-100: the
    ensembles' EPIC-100 action top-1, ``table2`` being chapter 06's ``epic100_metrics.csv``)."""
    caveat = ("At the `smoke` preset the models train for one epoch on a tiny dataset: the numbers below test the "
              "pipeline and mean nothing." if preset == "smoke" else
              "The numbers measured here come from SynthKitchens and narrow networks; they are not comparable "
              "with the report's, which come from EPIC-Kitchens-55 and full networks. A verdict compares numbers "
              "within one column: does the claim hold *here*?")
    if dataset == "epic100":
        caveat += (" This build is on EPIC-100's layout: its labelled split is validation, so the claims that the "
                   "report makes on S1 and S2 are checked on validation, with its unseen participants standing in "
                   "for S2's unseen kitchens.")
    lines = [
        "# The report's claims, checked",
        "",
        f"Each row is a claim of the report {{cite:p}}`{paper.CITATION}`, the number this book measured "
        f"(preset `{preset}`, seed {seed}), the report's number, and the chapter that measures it. The page is "
        "written by `make book` from the run folders and the chapters' outputs; a claim whose chapter has not "
        "produced numbers says *not measured*. " + caveat,
        "",
        "| claim | measured here | the report (EPIC-Kitchens-55 test server) | difference (points) and interval "
        "| verdict here | measured in |",
        "|---|---|---|---|---|---|",
    ]
    for c in found:
        lines.append(f"| {_cell(c.claim)} | {_cell(c.measured)} | {_cell(c.report)} | {_cell(c.difference) or '–'} "
                     f"| {c.verdict} | {_chapter_link(c.chapter, in_book)} |")
    lines += ["", "## How each verdict is decided", "",
              "Each verdict reads a difference in percentage points between two scores, with a "
              f"{100 * verdicts.CONFIDENCE:.0f} % confidence interval from a bootstrap over the test segments "
              f"(`scipy.stats.bootstrap`, percentile interval, {verdicts.N_RESAMPLES} resamples, seed "
              f"{verdicts.SEED}; paired where both scores are on the same segments). *holds*: the whole interval "
              "lies on the side the claim predicts; *does not hold*: it lies wholly on the other side; *cannot tell "
              "at this size*: it contains zero. A claim made of several comparisons holds when all hold and does "
              "not hold when any does not. The chapter that measures a claim calls the same function "
              "(`egolib.verdicts`) on the same files.", ""]
    lines += [f"- **{c.claim}.** {c.criterion}" for c in found]
    lines += _epic100_section(table2, in_book) if dataset == "epic100" else _table2_section(table2, in_book)
    complete = runs[runs["complete"]]
    lines += ["", f"{len(complete)} of {len(runs)} runs of this build are complete; the "
              "[run index](appendix_runs.md) lists them.", ""]
    return "\n".join(lines)


def _epic100_section(table: pd.DataFrame | None, in_book: set[str]) -> list[str]:
    """The results page's EPIC-100 metrics of the ensembles (in place of Table 2): validation action top-1."""
    lines = ["", "## EPIC-100 metrics, action top-1", "",
             "Action top-1 accuracy (%) of the three ensembles on validation (overall, tail classes, unseen "
             f"participants), recomputed here from the members' score files (chapter "
             f"{_chapter_link('06_ensembles', in_book)}). The report gives no EPIC-100 numbers: its Table 2 is "
             "EPIC-Kitchens-55's test server.", "",
             "| ensemble | overall (%) | tail classes (%) | unseen participants (%) |", "|---|---|---|---|"]
    for name in dict.fromkeys(n for _, n in paper.TABLE2):
        cells = [NOT_MEASURED] * 3
        if table is not None and name in table.index:
            cells = [f"{table.loc[name, f'{subset} action top1']:.2f}" for subset in ("overall", "tail", "unseen")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _table2_section(table2: pd.DataFrame | None, in_book: set[str]) -> list[str]:
    """The results page's Table 2 action top-1, here and in the report."""
    lines = ["", "## Table 2, action top-1", "",
             "Action top-1 accuracy (%) of the three ensembles: recomputed here from the members' score files "
             f"(chapter {_chapter_link('06_ensembles', in_book)}) and as the report gives it.", "",
             "| setting | ensemble | here (%) | the report (%) |", "|---|---|---|---|"]
    for setting, name in paper.TABLE2:
        here = NOT_MEASURED
        if table2 is not None:
            row = table2[(table2["setting"] == setting) & (table2["name"] == name) & (table2["task"] == "action")]
            here = f"{row['top1'].iloc[0]:.2f}" if len(row) else NOT_MEASURED
        lines.append(f"| {setting} | {name} | {here} | {paper.action_top1(setting, name):.2f} |")
    return lines


def run_index_page(runs: pd.DataFrame, *, preset: str, seed: int, pages: set[str], dataset: str = "epic55") -> str:
    """The appendix's run index: every run of the build, what it used, what it scored (S1 and S2; EPIC-100:
    validation overall and its unseen participants), what it cost."""
    (first, first_name), (second, second_name) = SPLIT_COLUMNS[dataset]
    versions = sorted({v for v in runs["code_version"] if v})
    lines = [
        "# Run index",
        "",
        f"Every training run of this build (preset `{preset}`, seed {seed}"
        + ("" if dataset == "epic55" else f", dataset `{dataset}`") + "): the Table 1 variants, then the "
        "baselines. Each run folder `runs/<name>/` holds `config.json` (the full configuration, the library's code "
        "version and the git commit), `log.csv`, `checkpoint.pt`, the score files, `metrics.json` and `DONE`. "
        "Top-1 accuracies are in % (verb / noun / action), training time in minutes, peak memory in MiB (resident "
        "set of the process that trained). "
        + (f"Training code version: `{', '.join(versions)}`." if versions else ""),
        "",
        f"| run | model | pre-training, as used | {first_name} top-1 (%) | {second_name} top-1 (%) | training (min) | "
        "peak memory (MiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in runs.itertuples():
        name = f"[{r.name}](../{r.name}/train.ipynb)" if r.name in pages else f"{r.name} (not trained)"
        accs = [" / ".join("–" if math.isnan(getattr(r, f"{s}_{t}")) else f"{getattr(r, f'{s}_{t}'):.1f}"
                           for t in TASKS) for s in (first, second)]
        cost = " | ".join("–" if math.isnan(v) else f"{v:.{d}f}" for v, d in ((r.train_min, 1), (r.peak_mib, 0)))
        pre = PRETRAIN_NAMES[r.pretrain] + (f" ({r.pretrain_source})" if r.pretrain_source else "")
        model = f"{METHOD_NAMES[r.method]}, {BACKBONE_NAMES[r.backbone]}" + (" (baseline)" if r.baseline else "")
        lines.append(f"| {name} | {model} | {_cell(pre)} | {accs[0]} | {accs[1]} | {cost} |")
    lines += [
        "",
        "## Convergence",
        "",
        "Has each run learned what the data holds? Training accuracy is measured on the augmented clips of the last "
        "epoch (% of clips; augmentation and dropout keep it below test accuracy); \"stops improving\" is the first "
        "epoch whose 3-epoch mean is within one point of its best (the last epoch: still improving at the end). The "
        "validation columns come from the recorded convergence study of the run's recipe (`convergence/`: the same "
        "parameters trained without the last training video of every kitchen and scored on those videos after every "
        "epoch, one clip per segment), where there is one; the test splits play no part in them.",
        "",
        "| run | epochs | training verb / noun, last epoch (%) | training stops improving at (verb / noun) | "
        "validation verb / noun / action, last epoch (%) | validation stops improving at (verb / noun / action) |",
        "|---|---|---|---|---|---|",
    ]
    for r in runs.itertuples():
        lines.append(f"| {r.name} | {_number(r.epochs)} | {_values(r, 'train', TASKS[:2], '.1f')} | "
                     f"{_values(r, 'train_stop', TASKS[:2], '.0f')} | {_values(r, 'val', TASKS, '.1f')} | "
                     f"{_values(r, 'val_stop', TASKS, '.0f')} |")
    return "\n".join(lines) + "\n"


def _number(value: float, fmt: str = ".0f") -> str:
    return "–" if math.isnan(value) else format(value, fmt)


def _values(row: Any, prefix: str, tasks: Sequence[str], fmt: str) -> str:
    """``a / b / c`` of ``<prefix>_<task>`` columns of a run table row, "–" where missing."""
    return " / ".join(_number(getattr(row, f"{prefix}_{t}"), fmt) for t in tasks)
