"""Score files: one split's scores of one run or one ensemble, self-describing, in one ``.npz``.

A score file says everything needed to rank, combine and evaluate it without the data set or the model:

    uid                (N,)    segment ids (strings), in test-set order
    verb, noun, action (N, V), (N, Nn), (N, A)  a run's raw logits (averaged over its test clips); an
                       ensemble's averaged scores (softmax probabilities or logits, see ``average``)
    action_pairs       (A, 2)  int: the (verb, noun) of each action class (the training split's vocabulary)
    verb_label, noun_label (N,) int: the true classes, -1 where the test labels are hidden (EPIC-55 test)
    many_shot_verbs, many_shot_nouns (K,) int, many_shot_actions (M, 2) int: the many-shot lists the
                       EPIC-55 precision and recall average over
    dataset            ()      "SynthKitchens <preset> seed <seed>" (the draw) or "EPIC-Kitchens-55"
    average            ()      "none" (one run's logits), "softmax" or "logits" (an ensemble's averaging)
    members            (m,)    an ensemble's members (run folder names or ensemble names); empty for a run
    format_version     ()      int, ``FORMAT_VERSION``

Runs write ``runs/<name>/scores_s1.npz`` and ``scores_s2.npz`` (``egolib.train.evaluate``); ensembles write
``<out>/<ensemble>_s1.npz`` (``egolib.ensemble``). A file written before this format (``uid``, ``verb``,
``noun``, ``action`` only) is refused with the command that rewrites it from the run's checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from egolib import metrics, runs

FORMAT_VERSION = 1
TASKS = ("verb", "noun", "action")
AVERAGES = ("none", "softmax", "logits")
RESCORE_COMMAND = "python -m egolib.ensemble rescore {run}"


class ScoreFileError(ValueError):
    """A score file that cannot be used: missing fields, inconsistent shapes, or the format before this one."""


@dataclass(frozen=True, eq=False)
class Scores:
    """One split's scores of a run or an ensemble (see the module docstring for every field)."""

    uid: np.ndarray  # (N,) str
    verb: np.ndarray  # (N, V) float
    noun: np.ndarray  # (N, Nn) float
    action: np.ndarray  # (N, A) float
    action_pairs: np.ndarray  # (A, 2) int64
    verb_label: np.ndarray  # (N,) int64, -1 hidden
    noun_label: np.ndarray  # (N,) int64, -1 hidden
    many_shot_verbs: np.ndarray  # (K,) int64
    many_shot_nouns: np.ndarray  # (K',) int64
    many_shot_actions: np.ndarray  # (M, 2) int64
    dataset: str
    average: str = "none"
    members: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        validate(self)

    @property
    def labelled(self) -> bool:
        """True when every segment has its verb and noun label (False on a hidden test set)."""
        return bool((self.verb_label >= 0).all() and (self.noun_label >= 0).all())

    @property
    def num_classes(self) -> dict[str, int]:
        return {t: getattr(self, t).shape[1] for t in TASKS}

    def replace(self, **changes: Any) -> Scores:
        return dataclasses.replace(self, **changes)

    def action_ranks(self, k: int = metrics.ACTION_TOP_K) -> list[dict[tuple[int, int], float]]:
        """The top-``k`` (verb, noun) pairs per segment from the action scores, as the metrics' action dicts."""
        return action_dicts(self.action, self.action_pairs, k)

    def metrics(self) -> dict[str, dict[str, float]]:
        """EPIC-55 metrics (``egolib.metrics.epic55_metrics``); actions ranked by the top-100 action scores.

        Returns:
            ``{task: {"top1", "top5", "precision", "recall"}}`` as fractions.
        """
        if not self.labelled:
            raise ValueError("these scores have no test labels (hidden test set): no metrics can be computed")
        return metrics.epic55_metrics(
            self.verb, self.noun, self.verb_label, self.noun_label, self.many_shot_verbs.tolist(),
            self.many_shot_nouns.tolist(), [tuple(p) for p in self.many_shot_actions.tolist()],
            action_scores=self.action_ranks(),
        )


def action_dicts(action_scores: np.ndarray, actions: Sequence[tuple[int, int]] | np.ndarray,
                 k: int = metrics.ACTION_TOP_K) -> list[dict[tuple[int, int], float]]:
    """The top-``k`` (verb, noun) pairs of the action scores per segment, as the metrics' action dicts.

    Args:
        action_scores: ``(N, A)`` scores over ``actions``.
        actions: the A (verb, noun) pairs.
        k: pairs kept per segment.

    Returns:
        N dicts ``{(verb, noun): score}`` of ``min(k, A)`` entries each, best first.
    """
    pairs = [(int(v), int(n)) for v, n in np.asarray(actions).reshape(-1, 2)]
    k = min(k, action_scores.shape[1])
    top = np.argsort(-action_scores, axis=1, kind="stable")[:, :k]  # (N, k) best first
    return [{pairs[j]: float(row[j]) for j in idx} for row, idx in zip(action_scores, top, strict=True)]


# --------------------------------------------------------------------------------------------------
# Building and checking


def make(uid: Sequence[Any], logits: Mapping[str, np.ndarray], action_pairs: Sequence[tuple[int, int]],
         verb_label: Sequence[int] | None, noun_label: Sequence[int] | None, many_shot: Any, dataset: str) -> Scores:
    """A run's score file content from its averaged test logits.

    Args:
        uid: N segment ids.
        logits: ``verb (N, V)``, ``noun (N, Nn)``, ``action (N, A)``.
        action_pairs: the A (verb, noun) pairs of the action head.
        verb_label: N true verbs, or None when the test labels are hidden.
        noun_label: N true nouns, or None.
        many_shot: an ``egolib.epic.ManyShot`` (``verbs``, ``nouns``, ``actions``).
        dataset: ``"SynthKitchens <preset> seed <seed>"`` or ``"EPIC-Kitchens-55"``.
    """
    n = len(uid)
    hidden = np.full(n, -1, dtype=np.int64)
    return Scores(
        uid=np.array([str(u) for u in uid]),
        **{t: np.asarray(logits[t], dtype=np.float32) for t in TASKS},
        action_pairs=np.asarray(action_pairs, dtype=np.int64).reshape(-1, 2),
        verb_label=hidden if verb_label is None else np.asarray(verb_label, dtype=np.int64),
        noun_label=hidden if noun_label is None else np.asarray(noun_label, dtype=np.int64),
        many_shot_verbs=np.asarray(many_shot.verbs, dtype=np.int64),
        many_shot_nouns=np.asarray(many_shot.nouns, dtype=np.int64),
        many_shot_actions=np.asarray(many_shot.actions, dtype=np.int64).reshape(-1, 2),
        dataset=dataset,
    )


def validate(s: Scores, where: str = "scores") -> None:
    """Shapes, ranges and finiteness of every field; raises ``ScoreFileError`` naming ``where`` and the field."""
    def bad(msg: str) -> ScoreFileError:
        return ScoreFileError(f"{where}: {msg}")

    N = len(s.uid)
    if s.uid.ndim != 1 or N == 0:
        raise bad(f"uid must be a non-empty 1D array, got shape {s.uid.shape}")
    if len(set(s.uid.tolist())) != N:
        raise bad("uid holds duplicate segment ids")
    for t in TASKS:
        a = getattr(s, t)
        if a.ndim != 2 or a.shape[0] != N or a.shape[1] == 0:
            raise bad(f"{t} must have shape (N={N}, classes), got {a.shape}")
        if not np.isfinite(a).all():
            raise bad(f"{t} holds non-finite scores")
    V, Nn, A = s.verb.shape[1], s.noun.shape[1], s.action.shape[1]
    if s.action_pairs.shape != (A, 2):
        raise bad(f"action_pairs must have shape (A={A}, 2), got {s.action_pairs.shape}")
    if len(s.action_pairs) and not ((0 <= s.action_pairs[:, 0]).all() and (s.action_pairs[:, 0] < V).all()
                                    and (0 <= s.action_pairs[:, 1]).all() and (s.action_pairs[:, 1] < Nn).all()):
        raise bad(f"action_pairs holds a (verb, noun) outside {V} verbs x {Nn} nouns")
    for name, size in (("verb_label", V), ("noun_label", Nn)):
        a = getattr(s, name)
        if a.shape != (N,) or (a < -1).any() or (a >= size).any():
            raise bad(f"{name} must be (N={N},) ints in [-1, {size}), got shape {a.shape}")
    if s.average not in AVERAGES:
        raise bad(f"average must be one of {', '.join(AVERAGES)}, got {s.average!r}")


def write(path: str | Path, s: Scores) -> Path:
    """Write ``s`` to ``path`` (``.npz``, atomically)."""
    path = Path(path)
    fields = {f.name: getattr(s, f.name) for f in dataclasses.fields(s)}
    fields["members"] = np.array(list(s.members), dtype=str)
    with runs.atomic_open(path, "wb") as f:
        np.savez(f, format_version=np.int64(FORMAT_VERSION), **fields)
    return path


def rescore_hint(path: Path) -> str:
    """The command that rewrites a run's score files from its checkpoint (no retraining)."""
    return RESCORE_COMMAND.format(run=path.parent)


def read(path: str | Path) -> Scores:
    """Read and check a score file.

    Raises:
        FileNotFoundError: no such file.
        ScoreFileError: a file in the format before this one (with the command that rewrites it from the
            run's checkpoint), a missing field or inconsistent shapes.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no score file {path}")
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    if "format_version" not in data or "action_pairs" not in data:
        raise ScoreFileError(
            f"{path} was written before score files described themselves (it holds only "
            f"{', '.join(sorted(data))}: no action vocabulary, labels or many-shot lists). Rewrite the run's score "
            f"files from its checkpoint, without retraining: {rescore_hint(path)}"
        )
    if int(data["format_version"]) > FORMAT_VERSION:
        raise ScoreFileError(f"{path} has score-file format {int(data['format_version'])}; this library reads "
                             f"format {FORMAT_VERSION}: update egobook")
    names = [f.name for f in dataclasses.fields(Scores)]
    missing = [n for n in names if n not in data]
    if missing:
        raise ScoreFileError(f"{path} lacks {', '.join(missing)}; rewrite it: {rescore_hint(path)}")
    values: dict[str, Any] = {n: data[n] for n in names}
    values["dataset"], values["average"] = str(values["dataset"]), str(values["average"])
    values["members"] = tuple(str(m) for m in values["members"].tolist())
    for n in ("action_pairs", "verb_label", "noun_label", "many_shot_verbs", "many_shot_nouns",
              "many_shot_actions"):
        values[n] = values[n].astype(np.int64)
    values["many_shot_actions"] = values["many_shot_actions"].reshape(-1, 2)
    try:
        return Scores(**values)
    except ScoreFileError as err:
        raise ScoreFileError(f"{path}: {err}") from None
