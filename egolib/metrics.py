"""EPIC-Kitchens action recognition metrics, computed as the official code computes them.

EPIC-55 follows ``epic_kitchens.metrics.compute_metrics`` (epic-lib 1.7.1, the organisers' published
implementation of the 2019/2020 leaderboard metrics); EPIC-100 follows ``utils/metrics.py`` and ``evaluate.py``
of ``epic-kitchens/C1-Action-Recognition``. Read top-down:

    ranks (dense scores, sparse action dicts)  ->  top-k accuracy, many-shot precision/recall
    action scores from verb x noun (top-100 verbs and nouns, softmax, product, top-100 actions)
    epic55_metrics, epic100_metrics

Quirks of the official code, kept on purpose:
    - a many-shot class that is never predicted has precision 0 (sklearn's 0/0), and that 0 stays in the mean;
    - many-shot classes (and actions) absent from the evaluated ground truth are dropped before averaging;
    - supplied action scores replace the verb x noun product entirely; a ground-truth action missing from a
      segment's dict is never a hit; every segment's dict must have the same number of entries;
    - EPIC-100 tail action = the verb OR the noun is a tail class; no unseen segments -> the ``unseen`` key is
      omitted (with a warning), as C1 does.

Deliberate differences from the reference (all invisible for ordinary logits):
    - Ties. The reference reverses numpy's default ``argsort``, whose tie order is implementation-defined (stable
      for short rows, platform-dependent SIMD sorts for long ones). Here every sort is stable, which fixes the tie
      order to what the reference gives whenever its sort happens to be stable: equal class scores rank the
      higher class id first; equal entries of a supplied action dict rank the later-inserted key first; equal
      verb x noun products rank the pair whose verb, then noun, comes earlier in the top-100 lists first, and at
      the 100th place the pair later in those lists is kept (the reference sorts twice, so the two rules differ).
    - Softmax is per row in float64 whatever the input dtype (C1 applies ``scipy.special.softmax`` without an axis
      over the whole float32 matrix, which can underflow for very large logit gaps; ranks are otherwise equal).
    - Inputs are validated (shapes, finite scores, labels in range) and never mutated; the reference adds an
      ``action_class`` column and an ``'action'`` entry to its caller's objects, and ranks NaN scores first.
    - An empty set of many-shot classes gives ``nan`` (the reference's mean of an empty array) with a logged
      warning instead of a RuntimeWarning.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

LOG = logging.getLogger(__name__)

TOP_K = (1, 5)
ACTION_TOP_K = 100  # actions kept per segment, and verbs/nouns kept before the product (the official top_k)
_CHUNK = 512  # segments per block when forming verb x noun products: (512, 100 * 100) float64 = 41 MB

ActionKey = tuple[int, int]


# ---------------------------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------------------------


def _scores(x: Any, name: str) -> np.ndarray:
    """A float64 copy of a (N, C) score matrix (numpy array, CPU tensor or nested list), checked finite."""
    a = np.array(x, dtype=np.float64)  # always a copy: the caller's array is never touched
    if a.ndim != 2 or a.shape[1] == 0:
        raise ValueError(f"{name} must be a 2D (N, num_classes) array, got shape {a.shape}")
    bad = ~np.isfinite(a)
    if bad.any():
        row = int(np.argwhere(bad)[0, 0])
        raise ValueError(f"{name} has a non-finite score in row {row} (segment {row}); scores must be finite logits")
    return a


def _labels(x: Any, n: int, num_classes: int, name: str) -> np.ndarray:
    """An int64 copy of a (N,) label vector with every label in [0, num_classes)."""
    a = np.array(x)
    if a.ndim != 1 or len(a) != n:
        raise ValueError(f"{name} must be a 1D vector of {n} labels (one per score row), got shape {a.shape}")
    if n and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class ids, got dtype {a.dtype}")
    a = a.astype(np.int64)
    out = (a < 0) | (a >= num_classes)
    if out.any():
        row = int(np.argmax(out))
        raise ValueError(f"{name}[{row}] = {a[row]} is outside [0, {num_classes}) (the score matrix has "
                         f"{num_classes} columns)")
    return a


def _class_list(x: Sequence[int], num_classes: int, name: str) -> np.ndarray:
    """A sorted unique int64 array of class ids, each in [0, num_classes)."""
    a = np.unique(np.array(list(x), dtype=np.int64))
    if a.size and (a[0] < 0 or a[-1] >= num_classes):
        raise ValueError(f"{name} holds class ids outside [0, {num_classes}): {a[(a < 0) | (a >= num_classes)]}")
    return a


def _check_lengths(n: int, **vectors: Sequence[Any]) -> None:
    for name, v in vectors.items():
        if len(v) != n:
            raise ValueError(f"{name} has {len(v)} entries but the score matrices have {n} rows")


# ---------------------------------------------------------------------------------------------------------------
# Ranks
# ---------------------------------------------------------------------------------------------------------------


def rank_classes(scores: np.ndarray) -> np.ndarray:
    """Class ids of each row from best to worst, as the reference's reversed ``argsort`` (ties: higher id first).

    Args:
        scores: (N, C) finite scores.

    Returns:
        (N, C) int64 class ids, column 0 the best.
    """
    return np.argsort(scores, axis=1, kind="stable")[:, ::-1]


def rank_action_dicts(action_scores: Sequence[Mapping[ActionKey, float]], num_verbs: int,
                      num_nouns: int) -> np.ndarray:
    """Rank sparse per-segment action scores as the reference ``_scores_dict_to_ranks`` does.

    Each dict is sorted by value, descending; equal values rank the later-inserted key first (reversed stable
    sort). Actions are encoded as ``verb * num_nouns + noun``.

    Args:
        action_scores: N dicts ``{(verb, noun): score}``, all with the same number of entries (the reference
            stacks the rows and fails on a ragged list).
        num_verbs: number of verb classes; every key's verb must be in [0, num_verbs).
        num_nouns: number of noun classes; every key's noun must be in [0, num_nouns).

    Returns:
        (N, K) int64 encoded action ids, column 0 the best, K the common dict size.
    """
    sizes = {len(d) for d in action_scores}
    if len(sizes) > 1:
        first = len(action_scores[0])
        row = next(i for i, d in enumerate(action_scores) if len(d) != first)
        raise ValueError(f"every segment's action dict must have the same number of entries (the official "
                         f"ranking stacks them): segment 0 has {first}, segment {row} has {len(action_scores[row])}")
    if sizes == {0}:
        raise ValueError("action_scores dicts are empty: each segment needs at least one (verb, noun) score")
    rows = []
    for i, d in enumerate(action_scores):
        keys = np.array([_action_key(k, num_verbs, num_nouns, i) for k in d], dtype=np.int64)
        vals = np.array([float(v) for v in d.values()], dtype=np.float64)
        if not np.isfinite(vals).all():
            raise ValueError(f"action_scores[{i}] has a non-finite score")
        rows.append(keys[np.argsort(vals, kind="stable")[::-1]])
    return np.stack(rows) if rows else np.zeros((0, 1), dtype=np.int64)


def _action_key(key: Any, num_verbs: int, num_nouns: int, row: int) -> int:
    try:
        verb, noun = (int(k) for k in key)
    except (TypeError, ValueError):
        raise ValueError(f"action_scores[{row}] has key {key!r}; keys must be (verb, noun) pairs of ints") from None
    if not (0 <= verb < num_verbs and 0 <= noun < num_nouns):
        raise ValueError(f"action_scores[{row}] has key {key!r} outside {num_verbs} verbs x {num_nouns} nouns")
    return verb * num_nouns + noun


# ---------------------------------------------------------------------------------------------------------------
# Accuracy, precision, recall
# ---------------------------------------------------------------------------------------------------------------


def topk_accuracy(ranks: np.ndarray, labels: np.ndarray, ks: Sequence[int] = TOP_K) -> list[float]:
    """Fraction of rows whose label is among the first k ranked classes, for each k.

    A k larger than the number of ranked entries means "anywhere in the row" (sparse action lists).

    Args:
        ranks: (N, C) class ids, best first.
        labels: (N,) true class ids.
        ks: the k values.

    Returns:
        One fraction per k.
    """
    if len(labels) == 0:
        raise ValueError("need at least one segment to compute accuracy (the official code raises too)")
    hits = ranks[:, : max(ks)] == labels[:, None]  # (N, min(C, max k))
    return [float(hits[:, :k].any(axis=1).mean()) for k in ks]


def precision_recall(predictions: np.ndarray, labels: np.ndarray, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class precision and recall, as ``sklearn.metrics.precision_recall_fscore_support(average=None)``.

    All segments count: predicting class c on a segment whose label is outside ``classes`` is still a false
    positive for c. A class that is never predicted has precision 0 (sklearn reports 0/0 as 0).

    Args:
        predictions: (N,) top-1 predicted class ids.
        labels: (N,) true class ids.
        classes: (K,) the classes to score, each present in ``labels``.

    Returns:
        ``(precision, recall)``, each (K,) float64.
    """
    hit = predictions == labels  # (N,)
    tp = np.array([np.sum(hit & (labels == c)) for c in classes], dtype=np.float64)  # (K,)
    predicted = np.array([np.sum(predictions == c) for c in classes], dtype=np.float64)
    actual = np.array([np.sum(labels == c) for c in classes], dtype=np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    return precision, recall


def _many_shot_precision_recall(ranks: np.ndarray, labels: np.ndarray, many_shot: np.ndarray,
                                task: str) -> tuple[float, float]:
    """Macro-averaged precision and recall over the many-shot classes present in ``labels``."""
    classes = np.intersect1d(many_shot, np.unique(labels))  # many-shot classes absent from this split are dropped
    dropped = len(many_shot) - len(classes)
    LOG.debug("%s: %d many-shot classes, %d present in the ground truth", task, len(many_shot), len(classes))
    if len(classes) == 0:
        LOG.warning("%s: none of the %d many-shot classes occurs in the ground truth; precision and recall are nan",
                    task, len(many_shot))
        return float("nan"), float("nan")
    if dropped:
        LOG.info("%s: %d of %d many-shot classes are absent from the ground truth and are not averaged", task,
                 dropped, len(many_shot))
    precision, recall = precision_recall(ranks[:, 0], labels, classes)
    return float(precision.mean()), float(recall.mean())


# ---------------------------------------------------------------------------------------------------------------
# Action scores from verb and noun scores
# ---------------------------------------------------------------------------------------------------------------


def _softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, as epic-lib's ``scoring.softmax``: (N, K) -> (N, K)."""
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _top_flat(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest entries of each row, in the order the official metrics rank them.

    The reference keeps the first k of a reversed stable argsort (so among values tied at the k-th place the
    highest indices are kept) and then ranks that list again with a reversed stable sort (so tied values end up
    lowest index first). Same result, without sorting all 10,000 products of every row.

    Args:
        values: (R, M) finite values.
        k: how many to keep.

    Returns:
        (R, min(k, M)) int64 column indices, best first.
    """
    R, M = values.shape
    if M > k:
        kth = np.partition(values, M - k, axis=1)[:, M - k : M - k + 1]  # (R, 1) the k-th largest value
        above = values > kth  # (R, M)
        tied = values == kth
        need = k - above.sum(axis=1, keepdims=True)  # (R, 1) places left for tied values
        keep = above | tied
        crowded = np.flatnonzero(tied.sum(axis=1) > need[:, 0])  # rows with more ties than places
        if crowded.size:
            t = tied[crowded]
            from_right = np.cumsum(t[:, ::-1], axis=1)[:, ::-1]  # tied entries at or right of each column
            keep[crowded] = above[crowded] | (t & (from_right <= need[crowded]))  # exactly k per row
        idx = np.nonzero(keep)[1].reshape(R, k)  # (R, k) ascending column index
    else:
        idx = np.broadcast_to(np.arange(M), (R, M))
    kept = np.take_along_axis(values, idx, axis=1)
    order = np.argsort(-kept, axis=1, kind="stable")  # descending; ties: lower index first
    return np.take_along_axis(idx, order, axis=1)


def _staircase(Kv: int, Kn: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where the k largest of a (Kv, Kn) outer product of two descending vectors can be, and the cells that bound
    the rest.

    A cell (i, j) with (i + 1)(j + 1) > k is dominated by at least k cells that are >= it, so without ties the top
    k lie in the staircase (i + 1)(j + 1) <= k (about k ln k cells). Outside it, row i is largest at its first
    cell (i, k // (i + 1)).

    Returns:
        ``(inside, corner_i, corner_j)``: ascending flat indices (i * Kn + j) of the staircase, and the first
        outside cell of every row that has one.
    """
    i, j = np.arange(Kv)[:, None], np.arange(Kn)[None, :]
    inside = np.flatnonzero((i + 1) * (j + 1) <= k)
    corner_i = np.arange(Kv)
    corner_j = k // (corner_i + 1)
    has = corner_j < Kn
    return inside, corner_i[has], corner_j[has]


def _top_products(p_verb: np.ndarray, p_noun: np.ndarray, k: int) -> np.ndarray:
    """Flat indices (i * Kn + j) of the k largest p_verb[i] * p_noun[j] per row, ranked as ``_top_flat`` ranks the
    full (R, Kv * Kn) product, for descending p_verb and p_noun.

    Only the staircase is formed. A row whose best cell outside it comes within a relative 1e-12 of its k-th
    largest staircase value (ties at the cut, or exp rounding) falls back to the full product, so the result is
    always the full-product one.

    Args:
        p_verb: (R, Kv) descending probabilities.
        p_noun: (R, Kn) descending probabilities.
        k: how many to keep.

    Returns:
        (R, min(k, Kv * Kn)) int64 flat indices, best first.
    """
    R, Kv = p_verb.shape
    Kn = p_noun.shape[1]
    inside, corner_i, corner_j = _staircase(Kv, Kn, k)
    if Kv * Kn <= k or len(inside) < k:
        return _top_flat((p_verb[:, :, None] * p_noun[:, None, :]).reshape(R, Kv * Kn), k)
    values = p_verb[:, inside // Kn] * p_noun[:, inside % Kn]  # (R, S) the staircase cells
    local = _top_flat(values, k)  # (R, k) positions in `inside`, best first
    best = inside[local]  # (R, k) flat indices
    kth = np.take_along_axis(values, local[:, -1:], axis=1)[:, 0]  # (R,) the k-th largest
    outside = (p_verb[:, corner_i] * p_noun[:, corner_j]).max(axis=1) if len(corner_i) else np.zeros(R)  # (R,)
    unsure = np.flatnonzero(outside >= kth * (1 - 1e-12))
    if unsure.size:
        full = (p_verb[unsure, :, None] * p_noun[unsure, None, :]).reshape(len(unsure), Kv * Kn)
        best[unsure] = _top_flat(full, k)
    return best


def _action_top_k(verb: np.ndarray, noun: np.ndarray, verb_ranks: np.ndarray, noun_ranks: np.ndarray, top_k: int,
                  priors: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``compute_action_scores`` on checked float64 scores whose class ranks are already known."""
    N = len(verb)
    top_verbs = verb_ranks[:, :top_k]  # (N, Kv) ties: higher id first
    top_nouns = noun_ranks[:, :top_k]  # (N, Kn)
    Kv, Kn = top_verbs.shape[1], top_nouns.shape[1]
    p_verb = _softmax(np.take_along_axis(verb, top_verbs, axis=1))  # (N, Kv) descending
    p_noun = _softmax(np.take_along_axis(noun, top_nouns, axis=1))  # (N, Kn) descending
    K = min(top_k, Kv * Kn)
    verbs, nouns = np.empty((N, K), dtype=np.int64), np.empty((N, K), dtype=np.int64)
    scores = np.empty((N, K), dtype=np.float64)
    for s in range(0, N, _CHUNK):
        rows = slice(s, s + _CHUNK)
        if priors is None:
            best = _top_products(p_verb[rows], p_noun[rows], top_k)  # (R, K) flat = verb pos * Kn + noun pos
        else:  # priors break the monotone structure: rank the whole (R, Kv * Kn) product
            prod = p_verb[rows, :, None] * p_noun[rows, None, :]  # (R, Kv, Kn)
            prod = prod * priors[top_verbs[rows, :, None], top_nouns[rows, None, :]]
            best = _top_flat(prod.reshape(len(prod), Kv * Kn), top_k)
        vpos, npos = best // Kn, best % Kn  # (R, K) positions in the top-verb / top-noun lists
        verbs[rows] = np.take_along_axis(top_verbs[rows], vpos, axis=1)
        nouns[rows] = np.take_along_axis(top_nouns[rows], npos, axis=1)
        scores[rows] = np.take_along_axis(p_verb[rows], vpos, axis=1) * np.take_along_axis(p_noun[rows], npos, axis=1)
        if priors is not None:
            scores[rows] *= priors[verbs[rows], nouns[rows]]
    return verbs, nouns, scores


def compute_action_scores(verb_scores: Any, noun_scores: Any, top_k: int = ACTION_TOP_K,
                          action_priors: Any | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-k actions per segment from p(verb) * p(noun), as epic-lib ``scoring.compute_action_scores``.

    The top-k verbs and nouns by raw score are each softmaxed (per row, float64), their outer product is
    optionally multiplied by ``action_priors[verb, noun]``, and the k largest products are kept. Truncating to the
    top-k verbs and nouns is exact for ranking; it only rescales the values.

    Args:
        verb_scores: (N, V) verb logits.
        noun_scores: (N, Nn) noun logits.
        top_k: verbs, nouns and actions kept per segment (100 in the challenge).
        action_priors: optional (V, Nn) non-negative weights (e.g. training co-occurrence counts; 0 removes a pair).

    Returns:
        ``(verbs, nouns, scores)``, each (N, min(top_k, top_k_v * top_k_n)): the action pairs and their product,
        best first, in the order the official metrics rank them.
    """
    verb = _scores(verb_scores, "verb_scores")
    noun = _scores(noun_scores, "noun_scores")
    if len(verb) != len(noun):
        raise ValueError(f"verb_scores has {len(verb)} rows but noun_scores has {len(noun)}")
    return _action_top_k(verb, noun, rank_classes(verb), rank_classes(noun), top_k, _priors(action_priors, verb, noun))


def _priors(action_priors: Any | None, verb: np.ndarray, noun: np.ndarray) -> np.ndarray | None:
    if action_priors is None:
        return None
    priors = np.array(action_priors, dtype=np.float64)
    if priors.shape != (verb.shape[1], noun.shape[1]):
        raise ValueError(f"action_priors must have shape (num_verbs, num_nouns) = {(verb.shape[1], noun.shape[1])}, "
                         f"got {priors.shape}")
    if not (np.isfinite(priors).all() and (priors >= 0).all()):
        raise ValueError("action_priors must be finite and non-negative")
    return priors


# ---------------------------------------------------------------------------------------------------------------
# EPIC-55 and EPIC-100
# ---------------------------------------------------------------------------------------------------------------


def _action_ranks(verb: np.ndarray, noun: np.ndarray, ranks: dict[str, np.ndarray],
                  action_scores: Sequence[Mapping[ActionKey, float]] | None, action_priors: Any | None) -> np.ndarray:
    """(N, K) encoded action ids (verb * num_nouns + noun), best first: supplied dicts, else verb x noun."""
    num_verbs, num_nouns = verb.shape[1], noun.shape[1]
    if action_scores is not None:  # supplied scores are used as they are; verb/noun scores play no part
        _check_lengths(len(verb), action_scores=action_scores)
        return rank_action_dicts(action_scores, num_verbs, num_nouns)
    priors = _priors(action_priors, verb, noun)
    verbs, nouns, _ = _action_top_k(verb, noun, ranks["verb"], ranks["noun"], ACTION_TOP_K, priors)
    return verbs * num_nouns + nouns


def epic55_metrics(verb_scores: Any, noun_scores: Any, verb_labels: Any, noun_labels: Any,
                   many_shot_verbs: Sequence[int], many_shot_nouns: Sequence[int],
                   many_shot_actions: Sequence[ActionKey],
                   action_scores: Sequence[Mapping[ActionKey, float]] | None = None,
                   action_priors: Any | None = None) -> dict[str, dict[str, float]]:
    """EPIC-55 challenge metrics for one test split (S1 or S2), as epic-lib ``compute_metrics``.

    Top-1/top-5 accuracy over all segments; precision and recall macro-averaged over the many-shot classes that
    occur in this split's ground truth (absent ones are dropped; a never-predicted one counts with precision 0).
    Actions are ranked from ``action_scores`` when given, else from the top-100 actions of the verb x noun
    softmax product (optionally weighted by ``action_priors``).

    Args:
        verb_scores: (N, V) verb logits (125 on EPIC-55).
        noun_scores: (N, Nn) noun logits (352 on EPIC-55).
        verb_labels: (N,) true verb classes.
        noun_labels: (N,) true noun classes.
        many_shot_verbs: many-shot verb class ids.
        many_shot_nouns: many-shot noun class ids.
        many_shot_actions: many-shot actions as (verb, noun) pairs.
        action_scores: optional N dicts ``{(verb, noun): score}`` of equal size (the submission's 100 actions).
        action_priors: optional (V, Nn) weights of the verb x noun product (ignored with ``action_scores``).

    Returns:
        ``{"verb" | "noun" | "action": {"top1", "top5", "precision", "recall"}}``, all fractions in [0, 1]
        (precision/recall ``nan`` when no many-shot class of that task occurs in the ground truth).
    """
    verb = _scores(verb_scores, "verb_scores")
    noun = _scores(noun_scores, "noun_scores")
    N, num_verbs, num_nouns = len(verb), verb.shape[1], noun.shape[1]
    if len(noun) != N:
        raise ValueError(f"verb_scores has {N} rows but noun_scores has {len(noun)}")
    labels = {
        "verb": _labels(verb_labels, N, num_verbs, "verb_labels"),
        "noun": _labels(noun_labels, N, num_nouns, "noun_labels"),
    }
    labels["action"] = labels["verb"] * num_nouns + labels["noun"]  # (N,) the same encoding as the ranks
    pairs = np.array(list(many_shot_actions), dtype=np.int64).reshape(-1, 2)  # (A, 2) (verb, noun)
    _class_list(pairs[:, 0], num_verbs, "many_shot_actions (verbs)")
    _class_list(pairs[:, 1], num_nouns, "many_shot_actions (nouns)")
    many_shot = {
        "verb": _class_list(many_shot_verbs, num_verbs, "many_shot_verbs"),
        "noun": _class_list(many_shot_nouns, num_nouns, "many_shot_nouns"),
        "action": np.unique(pairs[:, 0] * num_nouns + pairs[:, 1]),
    }
    ranks = {"verb": rank_classes(verb), "noun": rank_classes(noun)}
    ranks["action"] = _action_ranks(verb, noun, ranks, action_scores, action_priors)
    out = {}
    for task in ("verb", "noun", "action"):
        top1, top5 = topk_accuracy(ranks[task], labels[task], TOP_K)
        precision, recall = _many_shot_precision_recall(ranks[task], labels[task], many_shot[task], task)
        out[task] = {"top1": top1, "top5": top5, "precision": precision, "recall": recall}
    return out


def epic100_metrics(verb_scores: Any, noun_scores: Any, verb_labels: Any, noun_labels: Any,
                    participant_ids: Sequence[str], tail_verbs: Sequence[int], tail_nouns: Sequence[int],
                    unseen_participants: Sequence[str]) -> dict[str, dict[str, Any]]:
    """EPIC-100 action recognition metrics, as C1-Action-Recognition ``evaluate.py``.

    ``overall``: top-1/top-5 over all segments. ``tail``: top-1 over the segments whose verb is a tail verb
    (verb), whose noun is a tail noun (noun), whose verb OR noun is tail (action). ``unseen``: top-1 over the
    segments of unseen participants; when there are none the key is omitted and a warning is logged (C1 does
    the same; e.g. validation labels with the *test* unseen list). Actions always come
    from the top-100 verb x noun softmax product (C1 has no other path).

    Args:
        verb_scores: (N, V) verb logits (97 on EPIC-100).
        noun_scores: (N, Nn) noun logits (300 on EPIC-100).
        verb_labels: (N,) true verb classes.
        noun_labels: (N,) true noun classes.
        participant_ids: (N,) participant of each segment, e.g. ``"P01"``.
        tail_verbs: tail verb class ids (``EPIC_100_tail_verbs.csv``).
        tail_nouns: tail noun class ids (``EPIC_100_tail_nouns.csv``).
        unseen_participants: participant ids absent from training
            (``EPIC_100_unseen_participant_ids_{validation,test}.csv``).

    Returns:
        ``{"overall": {task: {"top1", "top5"}}, "tail": {task: top1}, "unseen": {task: top1}}`` for task in
        verb, noun, action, as fractions.
    """
    verb = _scores(verb_scores, "verb_scores")
    noun = _scores(noun_scores, "noun_scores")
    N, num_verbs, num_nouns = len(verb), verb.shape[1], noun.shape[1]
    if len(noun) != N:
        raise ValueError(f"verb_scores has {N} rows but noun_scores has {len(noun)}")
    _check_lengths(N, participant_ids=participant_ids)
    labels = {
        "verb": _labels(verb_labels, N, num_verbs, "verb_labels"),
        "noun": _labels(noun_labels, N, num_nouns, "noun_labels"),
    }
    labels["action"] = labels["verb"] * num_nouns + labels["noun"]
    ranks = {"verb": rank_classes(verb), "noun": rank_classes(noun)}
    ranks["action"] = _action_ranks(verb, noun, ranks, None, None)

    tail_verb = np.isin(labels["verb"], np.array(list(tail_verbs), dtype=np.int64))  # (N,)
    tail_noun = np.isin(labels["noun"], np.array(list(tail_nouns), dtype=np.int64))
    subsets = {"verb": tail_verb, "noun": tail_noun, "action": tail_verb | tail_noun}
    unseen = np.isin(np.array([str(p) for p in participant_ids]), np.array([str(p) for p in unseen_participants]))

    out: dict[str, dict[str, Any]] = {"overall": {}, "tail": {}}
    for task in ("verb", "noun", "action"):
        top1, top5 = topk_accuracy(ranks[task], labels[task], TOP_K)
        out["overall"][task] = {"top1": top1, "top5": top5}
        rows = subsets[task]
        if not rows.any():
            raise ValueError(f"no segment has a tail {task}: check tail_verbs/tail_nouns (the official code raises)")
        out["tail"][task] = topk_accuracy(ranks[task][rows], labels[task][rows], (1,))[0]
    if unseen.any():
        out["unseen"] = {task: topk_accuracy(ranks[task][unseen], labels[task][unseen], (1,))[0]
                         for task in ("verb", "noun", "action")}
    else:
        LOG.warning("there are no unseen segments to evaluate (none of the %d participants is in %s); the 'unseen' "
                    "metrics are omitted", len(set(map(str, participant_ids))), sorted(map(str, unseen_participants)))
    return out


def epic100_table(results: Mapping[str, Mapping[str, Any]]) -> Any:
    """The EPIC-100 leaderboard table, in percent, one row per model (or ensemble) of ``epic100_metrics`` results.

    Columns follow the leaderboard: ``overall`` top-1 and top-5, ``tail`` top-1 and ``unseen`` top-1, each for
    verb, noun and action (an ``unseen`` column is NaN where its result has no unseen segments).

    Args:
        results: ``{name: epic100_metrics(...)}``, e.g. ``{"GSM BN-Inception": ..., "ensemble": ...}``.

    Returns:
        A ``pandas.DataFrame`` indexed by name, columns ``"<subset> <task> top<k>"``.
    """
    import pandas as pd  # the metrics themselves need only numpy

    rows = {}
    for name, m in results.items():
        row = {}
        for task in ("verb", "noun", "action"):
            row[f"overall {task} top1"] = 100 * m["overall"][task]["top1"]
            row[f"overall {task} top5"] = 100 * m["overall"][task]["top5"]
        for subset in ("tail", "unseen"):
            for task in ("verb", "noun", "action"):
                value = m.get(subset, {}).get(task)
                row[f"{subset} {task} top1"] = float("nan") if value is None else 100 * value
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index")
