"""The multi-task verb/noun/action head: action scores become data-dependent biases of verb and noun.

The report: "action scores are linearly mapped into data-dependent biases for the verb and
noun classifiers". The exact form was never released; this is the reconstruction used here:

::

    z_a = W_a f_a + b_a                          (B, A)
    z_v = W_v f_v + b_v + M_v g(z_a)             (B, V)      g = identity ("logits") or softmax ("softmax")
    z_n = W_n f_n + b_n + M_n g(z_a)             (B, N)

Open choices, all named options: the input ``g`` of the bias maps (default raw logits), whether ``M`` has a
bias (default no), stop-gradient on ``z_a`` into ``M`` (default no), and the initialisation of ``M`` (default
zero, i.e. the head starts as three independent classifiers; ``init_bias_from_pairs`` sets the action ->
verb/noun composition matrix instead). With the defaults the head is linear in its inputs, so applying it per
frame and then averaging over time equals averaging the features and then applying it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

BIAS_INPUTS = ("logits", "softmax")


class ActionBiasHead(nn.Module):
    """Verb, noun and action classifiers with action logits mapped into verb/noun biases.

    Args:
        verb_dim: channels of the verb feature ``f_v``.
        noun_dim: channels of the noun feature ``f_n``.
        action_dim: channels of the action feature ``f_a``.
        num_verbs: V.
        num_nouns: N.
        num_actions: A.
        bias_input: ``"logits"`` (raw ``z_a``, default) or ``"softmax"`` (``softmax(z_a)``) into ``M``.
        bias_affine: give the maps ``M_v, M_n`` their own bias (default False).
        detach_action: stop the gradient of the verb/noun losses into ``z_a`` (default False).
        init_std: std of the normal init of the classifier weights (GSM reference: 0.001; biases 0).
    """

    def __init__(
        self,
        verb_dim: int,
        noun_dim: int,
        action_dim: int,
        num_verbs: int,
        num_nouns: int,
        num_actions: int,
        *,
        bias_input: str = "logits",
        bias_affine: bool = False,
        detach_action: bool = False,
        init_std: float = 0.001,
    ) -> None:
        super().__init__()
        if bias_input not in BIAS_INPUTS:
            raise ValueError(f"unknown head bias_input {bias_input!r}; choose one of {', '.join(BIAS_INPUTS)}")
        for name, n in (("num_verbs", num_verbs), ("num_nouns", num_nouns), ("num_actions", num_actions)):
            if n < 1:
                raise ValueError(f"{name} must be >= 1, got {n}")
        self.bias_input = bias_input
        self.detach_action = detach_action
        self.verb = nn.Linear(verb_dim, num_verbs)
        self.noun = nn.Linear(noun_dim, num_nouns)
        self.action = nn.Linear(action_dim, num_actions)
        self.action_to_verb = nn.Linear(num_actions, num_verbs, bias=bias_affine)  # M_v
        self.action_to_noun = nn.Linear(num_actions, num_nouns, bias=bias_affine)  # M_n
        for fc in (self.verb, self.noun, self.action):
            nn.init.normal_(fc.weight, 0.0, init_std)
            nn.init.zeros_(fc.bias)
        for m in (self.action_to_verb, self.action_to_noun):
            nn.init.zeros_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.no_grad()
    def init_bias_from_pairs(self, pairs: Sequence[tuple[int, int]], scale: float = 1.0) -> None:
        """Set ``M_v[v, a] = M_n[n, a] = scale`` for each action ``a = (v, n)``, zero elsewhere.

        Args:
            pairs: the (verb, noun) pair of each action class, in action-index order (``epic.action_classes``).
            scale: the value of the composition entries.
        """
        A = self.action.out_features
        if len(pairs) != A:
            raise ValueError(f"init_bias_from_pairs got {len(pairs)} pairs but the head has {A} action classes")
        self.action_to_verb.weight.zero_()
        self.action_to_noun.weight.zero_()
        for a, (v, n) in enumerate(pairs):
            self.action_to_verb.weight[v, a] = scale
            self.action_to_noun.weight[n, a] = scale

    def forward(self, f_verb: Tensor, f_noun: Tensor, f_action: Tensor) -> dict[str, Tensor]:
        """Logits of the three tasks.

        Args:
            f_verb: ``(..., verb_dim)``; any leading dims (e.g. ``(B, T, C)`` for a per-frame head).
            f_noun: ``(..., noun_dim)``.
            f_action: ``(..., action_dim)``.

        Returns:
            ``dict(verb=(..., V), noun=(..., N), action=(..., A))`` raw logits.
        """
        z_a = self.action(f_action)
        g = z_a.detach() if self.detach_action else z_a
        if self.bias_input == "softmax":
            g = g.softmax(-1)
        return {
            "verb": self.verb(f_verb) + self.action_to_verb(g),
            "noun": self.noun(f_noun) + self.action_to_noun(g),
            "action": z_a,
        }
