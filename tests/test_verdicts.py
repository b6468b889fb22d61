"""egolib.verdicts: each claim's criterion on hand-built scores that must hold, must not hold, and cannot be told."""

import numpy as np
import pandas as pd
import pytest

from egolib import verdicts
from egolib.verdicts import CANNOT_TELL, DOES_NOT_HOLD, HOLDS


def _flags(n: int, k: int) -> np.ndarray:
    """(n,) 0/1 with the first k set."""
    return (np.arange(n) < k).astype(int)


def test_a_paired_difference_is_the_hand_worked_one():
    d = verdicts.paired_difference([1, 1, 0, 0], [0, 1, 0, 1], "a - b", n_resamples=999)
    assert d.value == 0.0 and d.low < 0 < d.high and d.outcome == CANNOT_TELL
    counts = verdicts.paired_difference([3, 1], [1, 1], "hits", trials=[4, 4], n_resamples=999)
    assert counts.value == pytest.approx(100 * 2 / 8)  # (3 + 1 - 1 - 1) hits of 8 frames
    assert counts.n == 2 and counts.n_resamples == 999 and counts.seed == verdicts.SEED


def test_the_interval_is_seeded_and_the_text_reports_it():
    rng = np.random.default_rng(3)
    a, b = rng.random(300), rng.random(300) * 0.9  # scores in [0, 1]: every resample's mean differs
    first, again = (verdicts.paired_difference(a, b, "a - b", seed=7) for _ in range(2))
    assert (first.low, first.high) == (again.low, again.high) and first.low < first.value < first.high
    other = verdicts.paired_difference(a, b, "a - b", seed=8)
    assert (other.low, other.high) != (first.low, first.high)
    text = first.text().replace("\u00a0", " ")
    assert f"95 % CI {first.low:+.1f} to {first.high:+.1f}" in text
    assert f"{verdicts.N_RESAMPLES} resamples of 300 segments, seed 7" in text


def test_a_difference_of_identical_scores_cannot_be_told():
    a = _flags(50, 20)
    assert verdicts.paired_difference(a, a, "same").outcome == CANNOT_TELL


def test_too_few_units_give_no_interval_and_cannot_tell():
    one = verdicts.paired_difference([1], [0], "a - b")
    assert one.value == 100.0 and one.outcome == CANNOT_TELL and "no interval: 1 segments" in one.text()
    assert verdicts.gsm_models_time(_order([(0, 1)], 1)).outcome == CANNOT_TELL  # one clip


def test_combining_comparisons():
    assert verdicts.combine([HOLDS, HOLDS]) == HOLDS
    assert verdicts.combine([HOLDS, CANNOT_TELL]) == CANNOT_TELL
    assert verdicts.combine([HOLDS, CANNOT_TELL, DOES_NOT_HOLD]) == DOES_NOT_HOLD
    with pytest.raises(ValueError, match="at least one comparison"):
        verdicts.combine([])


# --------------------------------------------------------------------------------------------------
# GSM models time


def _order(gsm: list[tuple[int, int]], n: int) -> pd.DataFrame:
    """Order predictions of n clips of verb 0 (partner 1): TSN names verb 0 both ways (order-blind); GSM's
    (forward, backward) are ``gsm`` on the first clips, (0, 0) on the rest."""
    rows = []
    for i in range(n):
        f, b = gsm[i] if i < len(gsm) else (0, 0)
        rows += [{"model": "GSM", "split": "s1", "uid": str(i), "verb": 0, "partner": 1, "forward": f, "backward": b},
                 {"model": "TSN", "split": "s1", "uid": str(i), "verb": 0, "partner": 1, "forward": 0, "backward": 0}]
    return pd.DataFrame(rows)


def test_order_scores_by_hand():
    p = pd.DataFrame({"verb": [0, 0, 0, 0], "partner": [1, 1, 1, 1], "forward": [0, 1, 0, 2],
                      "backward": [1, 0, 0, 2]})
    assert verdicts.order_scores(p).tolist() == [1.0, -1.0, 0.0, 0.0]  # follows, reversed, blind, elsewhere


def test_gsm_models_time_holds_does_not_hold_and_cannot_tell():
    assert verdicts.gsm_models_time(_order([(0, 1)] * 60, 200)).outcome == HOLDS
    assert verdicts.gsm_models_time(_order([(1, 0)] * 60, 200)).outcome == DOES_NOT_HOLD
    # one clip of 200 flips the right way (0.5 % of the clips): no evidence either way
    few = verdicts.gsm_models_time(_order([(0, 1)], 200))
    assert few.outcome == CANNOT_TELL and few.differences[0].value == pytest.approx(0.5)
    assert few.differences[0].unit == "clips" and few.criterion == verdicts.GSM_MODELS_TIME


def test_an_accurate_order_blind_model_does_not_model_time():
    p = _order([], 100).assign(forward=0, backward=0)  # both right forward on every clip, both order-blind
    assert verdicts.gsm_models_time(p).outcome == CANNOT_TELL


# --------------------------------------------------------------------------------------------------
# EgoACO attends to the active object


def _frames(obj: float, centre: float, random: float, clips: int = 60, per_clip: int = 4) -> pd.DataFrame:
    """Pointing frames of S1 and S2: each hit column right on its share of the clips (all their frames)."""
    rows = []
    for split in ("s1", "s2"):
        for c in range(clips):
            for _ in range(per_clip):
                rows.append({"split": split, "uid": f"{split}-{c}", "hit_obj": c < obj * clips,
                             "hit_act": False, "hit_centre": c < centre * clips, "hit_random": c < random * clips})
    return pd.DataFrame(rows)


def test_egoaco_attends_holds_does_not_hold_and_cannot_tell():
    held = verdicts.egoaco_attends_to_object(_frames(0.8, 0.3, 0.1))
    assert held.outcome == HOLDS and len(held.differences) == 4  # two baselines on two splits
    assert held.differences[0].value == pytest.approx(50.0) and held.differences[0].n == 60
    assert verdicts.egoaco_attends_to_object(_frames(0.2, 0.6, 0.1)).outcome == DOES_NOT_HOLD
    assert verdicts.egoaco_attends_to_object(_frames(0.5, 0.5, 0.1)).outcome == CANNOT_TELL


def test_pointing_frames_without_the_baselines_name_the_chapter():
    with pytest.raises(ValueError, match="hit_centre, hit_random: rerun chapter 05"):
        verdicts.egoaco_attends_to_object(_frames(0.5, 0.5, 0.1).drop(columns=["hit_centre", "hit_random"]))


# --------------------------------------------------------------------------------------------------
# ensembles


def test_an_ensemble_beats_its_best_member_or_not():
    n = 300
    table = pd.DataFrame({"ens": _flags(n, 180), "member": _flags(n, 120), "same": _flags(n, 180)})
    held = verdicts.ensemble_beats_best_member(table, {"ens": "member"})
    assert held.outcome == HOLDS and held.differences[0].value == pytest.approx(20.0)
    assert verdicts.ensemble_beats_best_member(table, {"member": "ens"}).outcome == DOES_NOT_HOLD
    assert verdicts.ensemble_beats_best_member(table, {"ens": "same"}).outcome == CANNOT_TELL
    both = verdicts.ensemble_beats_best_member(table, {"ens": "member", "same": "ens"})
    assert both.outcome == CANNOT_TELL and [d.label for d in both.differences] == ["ens - member", "same - ens"]


def test_best_is_compares_with_the_runner_up_or_the_winner():
    n = 300
    table = pd.DataFrame({"a": _flags(n, 200), "b": _flags(n, 100), "c": _flags(n, 150), "d": _flags(n, 201)})
    first = verdicts.best_is(table[["a", "b", "c"]], "a")
    assert first.outcome == HOLDS and first.differences[0].label == "a - c"
    assert verdicts.best_is(table[["a", "b", "c"]], "b").outcome == DOES_NOT_HOLD
    assert verdicts.best_is(table, "a").outcome == CANNOT_TELL  # d is right on one more segment of 300
    with pytest.raises(ValueError, match="one of at least two columns"):
        verdicts.best_is(table[["a"]], "a")


# --------------------------------------------------------------------------------------------------
# unseen kitchens


def test_unseen_harder_on_two_sets_of_segments():
    runs = 3
    seen, unseen = np.tile(_flags(400, 240), (runs, 1)), np.tile(_flags(300, 90), (runs, 1))
    held = verdicts.unseen_harder(seen, unseen)
    assert held.outcome == HOLDS and held.differences[0].value == pytest.approx(60.0 - 30.0)
    assert verdicts.unseen_harder(unseen, seen).outcome == DOES_NOT_HOLD
    assert verdicts.unseen_harder(seen, np.tile(_flags(300, 180), (runs, 1))).outcome == CANNOT_TELL
    # one run in three far below S1 on S2 does not make the claim: the mean over runs is what is resampled
    mixed = np.stack([_flags(300, 0), _flags(300, 270), _flags(300, 270)])
    assert verdicts.unseen_harder(seen, mixed).outcome == CANNOT_TELL


def test_unseen_harder_on_a_subset_of_the_segments():
    n = 600
    unseen = np.arange(n) % 3 == 0  # every third segment: an unseen participant's
    right = np.tile(~unseen & (np.arange(n) % 2 == 0), (2, 1))  # seen: half right; unseen: none
    held = verdicts.unseen_harder_subset(right, unseen)
    assert held.outcome == HOLDS and held.differences[0].value == pytest.approx(100 * right[0].mean())
    assert verdicts.unseen_harder_subset(~right, unseen).outcome == DOES_NOT_HOLD
    flat = np.tile(np.arange(n) % 2 == 0, (2, 1))  # half right everywhere
    assert verdicts.unseen_harder_subset(flat, unseen).outcome == CANNOT_TELL
    with pytest.raises(ValueError, match="select at least one unit"):
        verdicts.unseen_harder_subset(flat, np.zeros(n, bool))
