"""One verdict per claim of the report, with its uncertainty: the criterion that the chapter measuring a claim and the
claims page both call.

Every claim compares two scores on the same test segments (GSM and TSN on the same clips, an ensemble and its best
member on the same segments, ...), or, for "unseen kitchens are harder", one model's scores on two sets of
segments. The difference is in percentage points, with a confidence interval from a bootstrap over the segments
(``scipy.stats.bootstrap``, percentile interval, seeded; paired where both scores come from the same segments). The
verdict reads the interval:

- **holds**: the whole interval lies on the side of zero that the claim predicts;
- **does not hold**: the whole interval lies on the other side;
- **cannot tell at this size**: the interval contains zero; more test segments would be needed to decide.

A claim made of several comparisons (on S1 and on S2, against two baselines, for three ensembles) holds when every
comparison holds, does not hold when any comparison does not hold, and otherwise cannot be told.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

HOLDS = "holds"
DOES_NOT_HOLD = "does not hold"
CANNOT_TELL = "cannot tell at this size"
N_RESAMPLES = 9999
CONFIDENCE = 0.95
SEED = 0


@dataclass(frozen=True)
class Difference:
    """One comparison: ``value`` (percentage points) with its bootstrap interval ``[low, high]``."""

    label: str  # what minus what, e.g. "GSM - TSN"
    value: float  # points
    low: float  # points
    high: float  # points
    n: int  # units resampled (segments, clips)
    unit: str  # what a resampled unit is: "segments", "clips"
    n_resamples: int
    confidence: float
    seed: int

    @property
    def outcome(self) -> str:
        """``HOLDS`` when the interval lies above zero, ``DOES_NOT_HOLD`` below it, else ``CANNOT_TELL``."""
        if self.low > 0:
            return HOLDS
        return DOES_NOT_HOLD if self.high < 0 else CANNOT_TELL

    def text(self) -> str:
        """``GSM - TSN +3.2 points (95 % CI +1.0 to +5.1; 9999 resamples of 412 clips, seed 0)``."""
        if math.isnan(self.low):
            return f"{self.label} {self.value:+.1f} points (no interval: {self.n} {self.unit}, too few to resample)"
        return (f"{self.label} {self.value:+.1f} points ({100 * self.confidence:.0f}\u00a0% CI {self.low:+.1f} to "
                f"{self.high:+.1f}; {self.n_resamples} resamples of {self.n} {self.unit}, seed {self.seed})")


@dataclass(frozen=True)
class Verdict:
    """A claim's outcome, the criterion in words, and the comparisons it was decided on."""

    outcome: str  # HOLDS, DOES_NOT_HOLD or CANNOT_TELL
    criterion: str
    differences: tuple[Difference, ...]

    def text(self) -> str:
        """The comparisons, ``; ``-joined."""
        return "; ".join(d.text() for d in self.differences)


def combine(outcomes: Sequence[str]) -> str:
    """Several comparisons of one claim: holds if all hold, does not hold if any does not, else cannot tell."""
    if not outcomes:
        raise ValueError("a claim needs at least one comparison")
    if all(o == HOLDS for o in outcomes):
        return HOLDS
    return DOES_NOT_HOLD if DOES_NOT_HOLD in outcomes else CANNOT_TELL


def _interval(data: tuple[np.ndarray, ...], statistic, *, paired: bool, n_resamples: int, confidence: float,
              seed: int) -> tuple[float, float]:
    if any(len(d) < 2 for d in data):  # nothing to resample: no interval, and the verdict cannot tell
        return math.nan, math.nan
    result = stats.bootstrap(data, statistic, n_resamples=n_resamples, paired=paired, vectorized=True, axis=-1,
                             confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)


def paired_difference(a: Sequence[float], b: Sequence[float], label: str, *, trials: Sequence[float] | None = None,
                      unit: str = "segments", n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE,
                      seed: int = SEED) -> Difference:
    """100 * (sum(a) - sum(b)) / sum(trials), in points, with a paired bootstrap interval over the units.

    Args:
        a, b: (N,) per unit, the two scores on the same units: 0/1 (right or wrong), or counts of hits.
        label: what is compared ("GSM - TSN").
        trials: (N,) the trials each count is out of (frames of a clip); None: 1 per unit, a difference of means.
        unit: what a unit is, for the text.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    w = np.ones_like(a) if trials is None else np.asarray(trials, dtype=float)
    if not (a.shape == b.shape == w.shape and a.ndim == 1):
        raise ValueError(f"{label}: a, b and trials must be (N,) on the same units, got {a.shape}, {b.shape}, "
                         f"{w.shape}")

    def statistic(x, y, n, axis=-1):
        return 100 * (x.sum(axis) - y.sum(axis)) / n.sum(axis)

    low, high = _interval((a, b, w), statistic, paired=True, n_resamples=n_resamples, confidence=confidence,
                          seed=seed)
    with np.errstate(invalid="ignore", divide="ignore"):  # no unit at all: NaN
        value = float(statistic(a, b, w))
    return Difference(label, value, low, high, len(a), unit, n_resamples, confidence, seed)


def independent_difference(a: Sequence[float], b: Sequence[float], label: str, *, unit: str = "segments",
                           n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = SEED
                           ) -> Difference:
    """100 * (mean(a) - mean(b)), in points, a and b on different units (S1 and S2 segments): each resampled on
    its own."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)

    def statistic(x, y, axis=-1):
        return 100 * (x.mean(axis) - y.mean(axis))

    low, high = _interval((a, b), statistic, paired=False, n_resamples=n_resamples, confidence=confidence, seed=seed)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = float(statistic(a, b))
    return Difference(label, value, low, high, len(a) + len(b), unit, n_resamples, confidence, seed)


def subset_difference(x: Sequence[float], in_subset: Sequence[bool], label: str, *, unit: str = "segments",
                      n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = SEED) -> Difference:
    """100 * (mean(x) - mean(x[in_subset])), in points: all units against a subset of them, resampled together."""
    x, s = np.asarray(x, dtype=float), np.asarray(in_subset, dtype=float)
    if x.shape != s.shape or not s.any():
        raise ValueError(f"{label}: in_subset must be (N,) like x and select at least one unit")

    def statistic(v, m, axis=-1):
        with np.errstate(invalid="ignore", divide="ignore"):  # a resample without the subset: NaN, left out
            return 100 * (v.mean(axis) - (v * m).sum(axis) / m.sum(axis))

    low, high = _interval((x, s), statistic, paired=True, n_resamples=n_resamples, confidence=confidence, seed=seed)
    return Difference(label, float(statistic(x, s)), low, high, len(x), unit, n_resamples, confidence, seed)


# --------------------------------------------------------------------------------------------------
# the claims

GSM_MODELS_TIME = (
    "Each reversal-pair clip gets an order score: half of (forward play named as its verb + backward play named as "
    "the pair's other verb - forward play named as the other verb - backward play named as its own verb). An "
    "order-blind model, whose prediction is the same both ways, scores 0 on every clip, whatever its accuracy. "
    "The claim holds when GSM's mean order score minus TSN's, paired by clip, has its interval above 0.")
EGOACO_ATTENDS = (
    "The object branch's pointing-game hits minus those of the centre prior, and minus those of random peaks, on "
    "the same frames, per labelled split; clips are resampled (their frames go together). The claim holds when "
    "every difference has its interval above 0.")
BEATS_BEST_MEMBER = (
    "Each ensemble's action top-1 minus that of its best direct member (the member with the highest top-1 on the "
    "same segments), paired by segment. The claim holds when every ensemble's difference has its interval above 0.")
BEST_IS = (
    "The claimed model's action top-1 minus that of the best other one (the runner-up when the claimed model is "
    "first), paired by segment. The claim holds when the interval lies above 0, does not hold when it lies below.")
UNSEEN_HARDER_55 = (
    "Action top-1 on S1 minus action top-1 on S2, each the mean over the complete runs; S1 and S2 segments are "
    "resampled separately. The claim holds when the interval lies above 0.")
UNSEEN_HARDER_100 = (
    "Action top-1 on validation overall minus action top-1 on its unseen participants' segments, each the mean over "
    "the complete runs; validation segments are resampled. The claim holds when the interval lies above 0.")


def order_scores(predictions: pd.DataFrame) -> pd.Series:
    """Each clip's order score in [-1, 1] (``GSM_MODELS_TIME``), from rows ``verb, partner, forward, backward``."""
    missing = {"verb", "partner", "forward", "backward"} - set(predictions.columns)
    if missing:
        raise ValueError(f"order predictions lack column(s) {', '.join(sorted(missing))}: rerun chapter 04")
    p = predictions
    return ((p.forward == p.verb).astype(int) + (p.backward == p.partner).astype(int)
            - (p.forward == p.partner).astype(int) - (p.backward == p.verb).astype(int)) / 2


def gsm_models_time(predictions: pd.DataFrame, *, seed: int = SEED) -> Verdict:
    """GSM against TSN on the order probe's clips (chapter 04's ``order_predictions.csv``: rows ``model`` GSM or
    TSN, ``split, uid, verb, partner, forward, backward``)."""
    scored = predictions.assign(order=order_scores(predictions))
    wide = scored.pivot_table(index=["split", "uid"], columns="model", values="order", aggfunc="first")
    if not {"GSM", "TSN"} <= set(wide.columns):
        raise ValueError(f"order predictions need models GSM and TSN, got {sorted(wide.columns)}")
    wide = wide.dropna()
    diff = paired_difference(wide["GSM"], wide["TSN"], "GSM - TSN order score", unit="clips", seed=seed)
    return Verdict(diff.outcome, GSM_MODELS_TIME, (diff,))


def egoaco_attends_to_object(frames: pd.DataFrame, *, seed: int = SEED) -> Verdict:
    """The object branch against the centre prior and random peaks (chapter 05's ``pointing_frames.csv``: one row
    per frame, ``split, uid, hit_obj, hit_centre, hit_random``)."""
    missing = {"split", "uid", "hit_obj", "hit_centre", "hit_random"} - set(frames.columns)
    if missing:
        raise ValueError(f"pointing frames lack column(s) {', '.join(sorted(missing))}: rerun chapter 05")
    diffs = []
    for split, part in frames.groupby("split", sort=False):
        clips = part.groupby("uid", sort=False)[["hit_obj", "hit_centre", "hit_random"]].agg(["sum", "count"])
        for baseline, name in (("centre", "centre prior"), ("random", "random peaks")):
            diffs.append(paired_difference(clips[("hit_obj", "sum")], clips[(f"hit_{baseline}", "sum")],
                                           f"{_split_name(split)}: object branch - {name}",
                                           trials=clips[("hit_obj", "count")], unit="clips", seed=seed))
    return Verdict(combine([d.outcome for d in diffs]), EGOACO_ATTENDS, tuple(diffs))


def ensemble_beats_best_member(correct: pd.DataFrame, best_members: Mapping[str, str], *,
                               seed: int = SEED) -> Verdict:
    """Each ensemble against its best member: ``correct`` has one 0/1 column per ensemble and run (right or wrong on
    each segment of one split), ``best_members`` maps each ensemble to its best member's column."""
    diffs = tuple(paired_difference(correct[name], correct[best], f"{name} - {best}", seed=seed)
                  for name, best in best_members.items())
    return Verdict(combine([d.outcome for d in diffs]), BEATS_BEST_MEMBER, diffs)


def best_is(correct: pd.DataFrame, claimed: str, *, seed: int = SEED) -> Verdict:
    """Whether ``claimed`` has the best top-1 among the columns of ``correct`` (0/1 per segment, one split)."""
    if claimed not in correct.columns or correct.shape[1] < 2:
        raise ValueError(f"{claimed!r} must be one of at least two columns, got {list(correct.columns)}")
    others = correct.drop(columns=claimed).mean().sort_values(ascending=False, kind="stable")
    rival = str(others.index[0])
    diff = paired_difference(correct[claimed], correct[rival], f"{claimed} - {rival}", seed=seed)
    return Verdict(diff.outcome, BEST_IS, (diff,))


def unseen_harder(seen: np.ndarray, unseen: np.ndarray, *, seed: int = SEED) -> Verdict:
    """EPIC-55: S1 against S2. ``seen`` (runs, N1) and ``unseen`` (runs, N2): 0/1 action top-1 per run and
    segment."""
    diff = independent_difference(np.mean(seen, axis=0), np.mean(unseen, axis=0), "S1 - S2", seed=seed)
    return Verdict(diff.outcome, UNSEEN_HARDER_55, (diff,))


def unseen_harder_subset(correct: np.ndarray, unseen: Sequence[bool], *, seed: int = SEED) -> Verdict:
    """EPIC-100: validation overall against its unseen participants. ``correct`` (runs, N) 0/1 action top-1,
    ``unseen`` (N,) whether each segment's participant is unseen in training."""
    diff = subset_difference(np.mean(correct, axis=0), unseen, "validation - unseen participants", seed=seed)
    return Verdict(diff.outcome, UNSEEN_HARDER_100, (diff,))


def _split_name(split: str) -> str:
    return {"s1": "S1", "s2": "S2"}.get(str(split).lower(), str(split))
