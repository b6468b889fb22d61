"""EPIC metrics on hand-worked problems (quirks of the official code included) and on the real annotation CSVs."""

import copy
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from egolib import metrics
from egolib.metrics import epic55_metrics, epic100_metrics

ANNOTATIONS = Path(__file__).resolve().parent / "epic-annotations"  # real EPIC annotation CSVs (their README)
VERB_GAP, NOUN_GAP = 10.0, 25.0  # logit step per rank position: product order = 10 * verb pos + 25 * noun pos


def ranked(rankings: list[list[int]], gap: float) -> np.ndarray:
    """(N, C) logits whose row i ranks the classes in the order rankings[i] (first = best), `gap` apart."""
    C = len(rankings[0])
    scores = np.zeros((len(rankings), C))
    for i, order in enumerate(rankings):
        scores[i, order] = gap * np.arange(C - 1, -1, -1)
    return scores


# The EPIC-55 hand-worked problem: 3 verbs, 7 nouns, 6 segments.
#   verb   labels 0 0 1 1 2 2   predicted 0 1 1 1 0 0   (verb 2 is never predicted)
#   noun   labels 0 1 2 0 1 2   predicted 0 1 2 0 0 1   (row 4's noun is ranked 6th: a top-5 miss)
#   action labels (0,0) (0,1) (1,2) (1,0) (2,1) (2,2); with the gaps above the top-5 actions of a segment are the
#   rank-position pairs (0,0) (1,0) (2,0) (0,1) (1,1); rows 0, 2, 3 are top-1 hits, row 1 (positions (1,0)) is a
#   top-5 hit, rows 4 (1,5) and 5 (2,1) miss. Predicted actions: (0,0) (1,1) (1,2) (1,0) (0,0) (0,1).
VERB_LABELS = [0, 0, 1, 1, 2, 2]
NOUN_LABELS = [0, 1, 2, 0, 1, 2]
VERB_RANKS = [[0, 1, 2], [1, 0, 2], [1, 2, 0], [1, 2, 0], [0, 2, 1], [0, 1, 2]]
NOUN_RANKS = [[0, 1, 2, 3, 4, 5, 6], [1, 0, 2, 3, 4, 5, 6], [2, 0, 1, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5, 6],
              [0, 2, 3, 4, 5, 1, 6], [1, 2, 0, 3, 4, 5, 6]]
MANY_SHOT_VERBS = [0, 1, 2]
MANY_SHOT_NOUNS = [0, 1, 3]  # noun 3 never occurs in the labels: dropped
MANY_SHOT_ACTIONS = [(0, 0), (1, 2), (2, 3)]  # (2, 3) never occurs in the labels: dropped


def epic55_problem(**overrides):
    args = dict(verb_scores=ranked(VERB_RANKS, VERB_GAP), noun_scores=ranked(NOUN_RANKS, NOUN_GAP),
                verb_labels=VERB_LABELS, noun_labels=NOUN_LABELS, many_shot_verbs=MANY_SHOT_VERBS,
                many_shot_nouns=MANY_SHOT_NOUNS, many_shot_actions=MANY_SHOT_ACTIONS)
    return {**args, **overrides}


def test_epic55_hand_worked_problem():
    m = epic55_metrics(**epic55_problem())
    assert m["verb"]["top1"] == pytest.approx(3 / 6)
    assert m["verb"]["top5"] == 1.0  # 3 verbs: top-5 is "anywhere"
    # verb 0 predicted on rows 0, 4, 5 (1 right), verb 1 on rows 1-3 (2 right), verb 2 never: precision 0/0 = 0,
    # and that 0 stays in the mean (the mean of the predicted classes alone would be 1/2).
    assert m["verb"]["precision"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert m["verb"]["recall"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    assert m["noun"]["top1"] == pytest.approx(4 / 6)
    assert m["noun"]["top5"] == pytest.approx(5 / 6)
    # many-shot nouns {0, 1, 3} minus the absent 3: noun 0 predicted on rows 0, 3, 4 (2 right), noun 1 on 1, 5 (1).
    assert m["noun"]["precision"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["noun"]["recall"] == pytest.approx((1 + 1 / 2) / 2)
    assert m["action"]["top1"] == pytest.approx(3 / 6)
    assert m["action"]["top5"] == pytest.approx(4 / 6)
    # many-shot actions present: (0,0) predicted on rows 0, 4 (1 right), (1,2) on row 2 (right).
    assert m["action"]["precision"] == pytest.approx((1 / 2 + 1) / 2)
    assert m["action"]["recall"] == pytest.approx(1.0)


def test_many_shot_classes_absent_from_the_ground_truth_are_dropped():
    full = epic55_metrics(**epic55_problem())
    present = epic55_metrics(**epic55_problem(many_shot_nouns=[0, 1], many_shot_actions=[(0, 0), (1, 2)]))
    assert full == present
    # ...but a present class that is never predicted is not dropped: removing verb 2 changes the mean.
    without_2 = epic55_metrics(**epic55_problem(many_shot_verbs=[0, 1]))
    assert without_2["verb"]["precision"] == pytest.approx((1 / 3 + 2 / 3) / 2)
    assert full["verb"]["precision"] != pytest.approx(without_2["verb"]["precision"])


def test_no_many_shot_class_in_the_ground_truth_gives_nan(caplog):
    with caplog.at_level(logging.WARNING, logger="egolib.metrics"):
        m = epic55_metrics(**epic55_problem(many_shot_nouns=[5, 6]))
    assert np.isnan(m["noun"]["precision"]) and np.isnan(m["noun"]["recall"])
    assert "none of the 2 many-shot classes" in caplog.text


# Supplied action scores (2 per segment). Labels as above: (0,0) (0,1) (1,2) (1,0) (2,1) (2,2).
ACTION_DICTS = [
    {(0, 0): 2.0, (1, 0): 1.0},  # top-1 hit
    {(2, 2): 3.0, (0, 1): 1.0},  # top-5 hit
    {(1, 2): 0.5, (0, 0): 0.4},  # top-1 hit
    {(0, 0): 1.0, (2, 3): 0.0},  # the true action (1,0) is not in the dict: never a hit
    {(2, 1): 5.0, (0, 0): 1.0},  # top-1 hit
    {(0, 0): 1.0, (1, 2): 0.5},  # miss
]


def test_supplied_action_scores_override_the_verb_noun_product():
    m = epic55_metrics(**epic55_problem(action_scores=ACTION_DICTS))
    assert m["action"]["top1"] == pytest.approx(3 / 6)
    assert m["action"]["top5"] == pytest.approx(4 / 6)
    # (0,0) predicted on rows 0, 3, 5 (1 right), (1,2) on row 2 (right); (2,3) is dropped.
    assert m["action"]["precision"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["action"]["recall"] == pytest.approx(1.0)
    # The verb and noun scores play no part in the action metrics any more...
    rng = np.random.default_rng(0)
    other = epic55_metrics(**epic55_problem(action_scores=ACTION_DICTS, verb_scores=rng.normal(size=(6, 3)),
                                            noun_scores=rng.normal(size=(6, 7))))
    assert other["action"] == m["action"]
    # ...and the action scores none in the verb and noun metrics.
    product = epic55_metrics(**epic55_problem())
    assert (m["verb"], m["noun"]) == (product["verb"], product["noun"])
    assert m["action"] != product["action"]


def test_ragged_action_dicts_are_refused_with_the_segment_named():
    ragged = ACTION_DICTS[:5] + [{(0, 0): 1.0}]
    with pytest.raises(ValueError, match="segment 5 has 1"):
        epic55_metrics(**epic55_problem(action_scores=ragged))


def test_ties_break_as_the_official_code_breaks_them():
    # Reversed stable argsort: equal class scores rank the higher class id first (as the official code: [2, 1, 0, 3]).
    assert metrics.rank_classes(np.array([[0.5, 0.5, 0.5, 0.1]])).tolist() == [[2, 1, 0, 3]]
    tied = np.array([[0.5, 0.5, 0.5, 0.1]])
    nouns = np.array([[1.0, 0.0]])
    top = epic55_metrics(tied, nouns, [2], [0], [2], [0], [(2, 0)])
    second = epic55_metrics(tied, nouns, [0], [0], [0], [0], [(0, 0)])
    assert (top["verb"]["top1"], second["verb"]["top1"], second["verb"]["top5"]) == (1.0, 0.0, 1.0)
    # Equal scores in an action dict: the later-inserted key ranks first.
    first_wins = [{(0, 0): 0.5, (1, 1): 0.5}]
    m = epic55_metrics(np.zeros((1, 2)), np.zeros((1, 2)), [1], [1], [1], [1], [(1, 1)], action_scores=first_wins)
    assert m["action"]["top1"] == 1.0
    m = epic55_metrics(np.zeros((1, 2)), np.zeros((1, 2)), [0], [0], [0], [0], [(0, 0)], action_scores=first_wins)
    assert (m["action"]["top1"], m["action"]["top5"]) == (0.0, 1.0)
    # Equal products: verbs 0 and 1 tie (verb 1 is ranked first), noun 0 is best, so (1,0) and (0,0) tie on top
    # and the pair whose verb comes first in the ranked verbs wins.
    verbs, nouns_, _ = metrics.compute_action_scores(np.array([[1.0, 1.0]]), np.array([[2.0, 0.0]]))
    assert list(zip(verbs[0].tolist(), nouns_[0].tolist(), strict=True)) == [(1, 0), (0, 0), (1, 1), (0, 1)]
    # 11 x 10 all-equal products: of the 110 tied pairs the reference keeps the 100 latest in its flattened
    # (verb position, noun position) order, so verb 10 (ranked first among the tied verbs) drops out entirely,
    # and then ranks them earliest first: (9, 9) is the top action.
    verbs, nouns_, _ = metrics.compute_action_scores(np.zeros((1, 11)), np.zeros((1, 10)))
    assert verbs.shape == (1, 100) and 10 not in verbs and (verbs[0, 0], nouns_[0, 0]) == (9, 9)


def test_action_top100_equals_the_full_softmax_product():
    rng = np.random.default_rng(1)
    verb, noun = rng.normal(size=(4, 125)) * 3, rng.normal(size=(4, 352)) * 3
    verbs, nouns, scores = metrics.compute_action_scores(verb, noun)
    p_verb = np.exp(verb) / np.exp(verb).sum(1, keepdims=True)  # (4, 125) full softmax, no truncation
    p_noun = np.exp(noun) / np.exp(noun).sum(1, keepdims=True)
    full = (p_verb[:, :, None] * p_noun[:, None, :]).reshape(4, -1)  # (4, 125 * 352)
    best = np.argsort(-full, axis=1)[:, :100]
    assert np.array_equal(verbs * 352 + nouns, best)  # truncating to the top-100 verbs and nouns is exact
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_action_priors_reweight_the_product():
    verb = np.array([[2.0, 1.0]])
    noun = np.array([[2.0, 1.0]])
    priors = np.array([[0.0, 1.0], [1.0, 1.0]])  # a zero prior removes (0, 0)
    verbs, nouns, _ = metrics.compute_action_scores(verb, noun, action_priors=priors)
    assert (verbs[0, 0], nouns[0, 0]) != (0, 0) and (verbs[0, -1], nouns[0, -1]) == (0, 0)
    m = epic55_metrics(verb, noun, [0], [0], [0], [0], [(0, 0)], action_priors=priors)
    assert m["action"]["top1"] == 0.0


def test_inputs_are_not_mutated():
    args = epic55_problem(action_scores=copy.deepcopy(ACTION_DICTS))
    for key in ("verb_scores", "noun_scores"):
        args[key].setflags(write=False)  # any in-place write would raise
    labels = np.array(VERB_LABELS)
    labels.setflags(write=False)
    args["verb_labels"] = labels
    before = copy.deepcopy(args)
    epic55_metrics(**args)
    epic55_metrics(**{**args, "action_scores": None})
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            assert np.array_equal(args[key], value), key
        else:
            assert args[key] == value, key
    assert [list(d) for d in args["action_scores"]] == [list(d) for d in ACTION_DICTS]  # key order too


def test_bad_inputs_are_refused_with_a_clear_message():
    with pytest.raises(ValueError, match=r"verb_labels\[1\] = 3 is outside \[0, 3\)"):
        epic55_metrics(**epic55_problem(verb_labels=[0, 3, 1, 1, 2, 2]))
    scores = ranked(VERB_RANKS, VERB_GAP)
    scores[4, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite score in row 4"):
        epic55_metrics(**epic55_problem(verb_scores=scores))
    with pytest.raises(ValueError, match="noun_scores has 5"):
        epic55_metrics(**epic55_problem(noun_scores=ranked(NOUN_RANKS[:5], NOUN_GAP)))


# EPIC-100 hand-worked problem: 3 verbs, 4 nouns, 5 segments; tail verb 2, tail noun 3, unseen participant P03.
#   verb labels 0 2 1 2 0, predicted 0 2 0 1 0;  noun labels 0 1 3 3 2, predicted 0 1 0 3 2
#   action rank positions (verb, noun): (0,0) (0,0) (1,3) (1,0) (0,0): only row 2 misses the top 5.
EK100_VERB_RANKS = [[0, 1, 2], [2, 0, 1], [0, 1, 2], [1, 2, 0], [0, 1, 2]]
EK100_NOUN_RANKS = [[0, 1, 2, 3], [1, 0, 2, 3], [0, 2, 1, 3], [3, 0, 1, 2], [2, 0, 1, 3]]
EK100_ARGS = dict(verb_labels=[0, 2, 1, 2, 0], noun_labels=[0, 1, 3, 3, 2],
                  participant_ids=["P01", "P01", "P02", "P03", "P03"], tail_verbs=[2], tail_nouns=[3])


def test_epic100_hand_worked_problem():
    m = epic100_metrics(ranked(EK100_VERB_RANKS, VERB_GAP), ranked(EK100_NOUN_RANKS, NOUN_GAP), **EK100_ARGS,
                        unseen_participants=["P03"])
    assert m["overall"]["verb"] == pytest.approx({"top1": 3 / 5, "top5": 1.0})
    assert m["overall"]["noun"] == pytest.approx({"top1": 4 / 5, "top5": 1.0})
    assert m["overall"]["action"] == pytest.approx({"top1": 3 / 5, "top5": 4 / 5})
    # tail verb rows 1, 3; tail noun rows 2, 3; tail action = verb OR noun tail: rows 1, 2, 3 (AND would be 3 only).
    assert m["tail"] == pytest.approx({"verb": 1 / 2, "noun": 1 / 2, "action": 1 / 3})
    assert m["unseen"] == pytest.approx({"verb": 1 / 2, "noun": 1.0, "action": 1 / 2})  # rows 3, 4


def test_epic100_without_unseen_segments_omits_the_key(caplog):
    with caplog.at_level(logging.WARNING, logger="egolib.metrics"):
        m = epic100_metrics(ranked(EK100_VERB_RANKS, VERB_GAP), ranked(EK100_NOUN_RANKS, NOUN_GAP), **EK100_ARGS,
                            unseen_participants=["P33", "P34", "P36"])
    assert set(m) == {"overall", "tail"}
    assert "no unseen segments" in caplog.text


def test_epic100_table_in_percent_one_row_per_model():
    from egolib.metrics import epic100_table

    scores = (ranked(EK100_VERB_RANKS, VERB_GAP), ranked(EK100_NOUN_RANKS, NOUN_GAP))
    seen_only = epic100_metrics(*scores, **EK100_ARGS, unseen_participants=["P33"])
    with_unseen = epic100_metrics(*scores, **EK100_ARGS, unseen_participants=["P03"])
    table = epic100_table({"a": with_unseen, "b": seen_only})
    assert list(table.index) == ["a", "b"] and len(table.columns) == 12
    assert table.loc["a", "overall action top5"] == pytest.approx(80.0)
    assert table.loc["a", "tail action top1"] == pytest.approx(100 / 3)
    assert table.loc["a", "unseen noun top1"] == pytest.approx(100.0)
    assert np.isnan(table.loc["b", "unseen verb top1"])  # no unseen segment: no number


# ----------------------------------------------------------------------------------------------------------------
# Real annotation files (read with plain pandas)
# ----------------------------------------------------------------------------------------------------------------

def confident(labels: np.ndarray, num_classes: int, seed: int) -> np.ndarray:
    """(N, num_classes) noisy logits with the label 20 above the rest: top-1 right, no ties."""
    scores = np.random.default_rng(seed).normal(size=(len(labels), num_classes))
    scores[np.arange(len(labels)), labels] += 20.0
    return scores


def test_epic55_real_train_labels_perfect_scores_and_shipped_many_shot_lists():
    d = ANNOTATIONS / "epic55"
    train = pd.read_csv(d / "EPIC_train_action_labels.csv", usecols=["verb_class", "noun_class"])
    verbs = pd.read_csv(d / "EPIC_many_shot_verbs.csv")["verb_class"].tolist()
    nouns = pd.read_csv(d / "EPIC_many_shot_nouns.csv")["noun_class"].tolist()
    actions_df = pd.read_csv(d / "EPIC_many_shot_actions.csv")
    actions = list(zip(actions_df["verb_class"], actions_df["noun_class"], strict=True))
    assert (len(train), len(verbs), len(nouns), len(actions)) == (28472, 26, 71, 819)
    v, n = train["verb_class"].to_numpy(), train["noun_class"].to_numpy()
    m = epic55_metrics(confident(v, 125, 0), confident(n, 352, 1), v, n, verbs, nouns, actions)
    for task in ("verb", "noun", "action"):
        assert m[task] == {"top1": 1.0, "top5": 1.0, "precision": 1.0, "recall": 1.0}, task

    # Always predict "take" (verb 0) and one action: precision is the share of verb-0 segments over the 26
    # many-shot verbs (25 zeros stay in the mean), recall 1/26; for actions 1/819 of the share of (0, 1).
    always = np.zeros((len(v), 125))
    always[:, 0] = 1.0
    m = epic55_metrics(always, confident(n, 352, 1), v, n, verbs, nouns, actions,
                       action_scores=[{(0, 1): 1.0}] * len(v))
    assert m["verb"]["precision"] == pytest.approx(np.mean(v == 0) / 26)
    assert m["verb"]["recall"] == pytest.approx(1 / 26)
    assert m["verb"]["top1"] == pytest.approx(np.mean(v == 0))
    assert m["action"]["precision"] == pytest.approx(np.mean((v == 0) & (n == 1)) / 819)
    assert m["noun"]["precision"] == 1.0


def test_epic100_real_validation_with_tail_and_unseen_files():
    d = ANNOTATIONS / "epic100"
    val = pd.read_csv(d / "EPIC_100_validation.csv", usecols=["participant_id", "verb_class", "noun_class"])
    tail_verbs = pd.read_csv(d / "EPIC_100_tail_verbs.csv")["verb"].tolist()
    tail_nouns = pd.read_csv(d / "EPIC_100_tail_nouns.csv")["noun"].tolist()
    unseen_val = pd.read_csv(d / "EPIC_100_unseen_participant_ids_validation.csv")["participant_id"].tolist()
    unseen_test = pd.read_csv(d / "EPIC_100_unseen_participant_ids_test.csv")["participant_id"].tolist()
    assert (len(val), len(tail_verbs), len(tail_nouns), sorted(unseen_val)) == (9668, 86, 228, ["P18", "P32"])
    v, n, who = val["verb_class"].to_numpy(), val["noun_class"].to_numpy(), val["participant_id"].tolist()
    verb_scores = confident(v, 97, 0)

    m = epic100_metrics(verb_scores, confident(n, 300, 1), v, n, who, tail_verbs, tail_nouns, unseen_val)
    assert m == {"overall": {t: {"top1": 1.0, "top5": 1.0} for t in ("verb", "noun", "action")},
                 "tail": {"verb": 1.0, "noun": 1.0, "action": 1.0},
                 "unseen": {"verb": 1.0, "noun": 1.0, "action": 1.0}}

    # Nouns ranked second (the next class 10 logits above), and the test split's unseen list on validation labels
    # (C1 README's example): no unseen segment, so no "unseen" key.
    noun_scores = confident((n + 1) % 300, 300, 1)
    noun_scores[np.arange(len(n)), n] += 10.0
    m = epic100_metrics(verb_scores, noun_scores, v, n, who, tail_verbs, tail_nouns, unseen_test)
    assert "unseen" not in m
    assert m["overall"]["verb"]["top1"] == 1.0 and m["overall"]["noun"] == {"top1": 0.0, "top5": 1.0}
    assert m["overall"]["action"] == {"top1": 0.0, "top5": 1.0}  # (true verb, true noun) is the 2nd action
    assert m["tail"] == {"verb": 1.0, "noun": 0.0, "action": 0.0}
