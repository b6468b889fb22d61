"""Video models of the FBK-HUPBA entry: TSN, GSM, EgoACO and GSM+EgoACO, their registry, checkpoints and cost.

Every model maps a clip batch ``(B, T*L, C, H, W)`` (T segments of L frames; L = 1 for 2D backbones, 3 for
R(2+1)D snippets) to raw logits ``dict(verb=(B, V), noun=(B, N), action=(B, A))``.

::

    tsn / gsm:    frames (B*T, C, H, W) -> backbone [GSMs inside for gsm] -> adaptive GAP -> dropout
                  -> ActionBiasHead per frame -> mean over T
    egoaco:       frames -> shared trunk -> three cloned top stages -> X_act, X_obj, X_ctx (B, T, C, h, w)
                  X_act -> LSTA -> d_act;  X_obj -> temporally coherent attention -> d_obj;  X_ctx -> CAP -> d_ctx
                  verb <- d_act, noun <- d_obj, action <- [d_act; d_obj; d_ctx]  (+ action -> verb/noun biases)
    gsm_egoaco:   egoaco on a GSM backbone

Adaptive global average pooling makes the TSN/GSM models fully convolutional: full frames of any H x W work
(the report's "spatially fully-convolutional inference").

EgoACO is a reconstruction: its code was never released. Each reconstructed choice
is a named option of ``build_model``:
    * ``egoaco_clone``: ``"top_stage"`` clones the top conv stage (``spec.top``) three times (default);
      ``"fc"`` shares the whole trunk and clones only the pretrained classifier into three dictionaries;
    * ``egoaco_wiring``: ``"report"`` (verb <- d_act, noun <- d_obj, action <- all three; the report),
      ``"context"`` (verb <- [d_act; d_ctx], noun <- [d_obj; d_ctx]),
      ``"concat"`` (all three heads on [d_act; d_obj; d_ctx]);
    * ``cap_selection``: hard top-1 (LSTA) or soft dictionary selection;
    * the three stages of ``set_stage`` (the report: backbone frozen; + the cloned heads; + conv4_x / the
      last three Inception layers).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.utils.flop_counter import FlopCounterMode

from egolib import backbones, gsm, runs
from egolib.config import EGOACO_CLONES, EGOACO_WIRINGS, VALID_BACKBONES
from egolib.heads import ActionBiasHead
from egolib.lsta import (
    LSTA,
    AttentionRecurrence,
    ClassActivationPooling,
    Dictionary,
    LSTACell,
    TemporallyCoherentAttention,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------
# Helpers: folding clips into backbone batches


def fold_clip(x: Tensor, snippet_length: int, is_3d: bool) -> Tensor:
    """Fold a clip batch into a backbone batch, segments of one video contiguous (GSM needs this).

    Args:
        x: ``(B, T*L, C, H, W)``.
        snippet_length: L.
        is_3d: the backbone takes snippets ``(N, C, L, H, W)``.

    Returns:
        ``(B*T, C, H, W)`` for 2D backbones (L must be 1), ``(B*T, C, L, H, W)`` for 3D ones.
    """
    B, TL, C, H, W = x.shape
    L = snippet_length
    if TL % L:
        raise ValueError(f"clip has {TL} frames, not a multiple of snippet_length {L}")
    if not is_3d:
        if L != 1:
            raise ValueError(f"a 2D backbone takes single frames; got snippet_length {L}")
        return x.reshape(B * TL, C, H, W)  # (B, T, C, H, W) -> (B*T, C, H, W)
    return x.reshape(B * TL // L, L, C, H, W).transpose(1, 2)  # (B*T, L, C, H, W) -> (B*T, C, L, H, W)


def set_requires_grad(modules: list[nn.Module], flag: bool) -> None:
    """Set ``requires_grad`` of every parameter of ``modules``."""
    for m in modules:
        for p in m.parameters():
            p.requires_grad_(flag)


# --------------------------------------------------------------------------------------------------
# Staged training: which parameters train at which stage, frozen BN in eval mode


class StagedModel(nn.Module):
    """Base of the video models: ``set_stage`` freezes what the recipe freezes, ``train()`` keeps frozen BN in eval.

    Subclasses implement ``stage_groups() -> list[list[nn.Module]]``: group ``i`` becomes trainable at stage
    ``i + 1`` and stays trainable after; parameters outside every group are never trained.
    """

    backbone: nn.Module
    model_args: dict[str, Any]
    snippet_length: int
    num_segments: int | None

    def segments(self, x: Tensor) -> tuple[int, int]:
        """``(B, T)`` of a clip batch ``(B, T*L, C, H, W)``; a GSM model (built for T) refuses another T."""
        B, T = x.shape[0], x.shape[1] // self.snippet_length
        if self.num_segments is not None and T != self.num_segments:
            raise ValueError(f"this GSM model was built for num_segments={self.num_segments}, got a clip of T={T}")
        return B, T

    def stage_groups(self) -> list[list[nn.Module]]:
        raise NotImplementedError

    @property
    def num_stages(self) -> int:
        return len(self.stage_groups())

    def set_stage(self, stage: int) -> None:
        """Make exactly the recipe's parameters of ``stage`` (1-based) trainable; frozen BN goes to eval mode."""
        groups = self.stage_groups()
        if not 1 <= stage <= len(groups):
            raise ValueError(f"stage must be in 1..{len(groups)} for {type(self).__name__}, got {stage}")
        set_requires_grad([self], False)
        for group in groups[:stage]:
            set_requires_grad(group, True)
        self.stage = stage
        self.train(self.training)

    def train(self, mode: bool = True) -> StagedModel:
        """As ``nn.Module.train``, but BatchNorm layers whose parameters are all frozen stay in eval mode."""
        super().train(mode)
        if mode:
            for m in self.modules():
                params = list(m.parameters(recurse=False))
                if isinstance(m, _BatchNorm) and params and not any(p.requires_grad for p in params):
                    m.eval()
        return self


# --------------------------------------------------------------------------------------------------
# TSN / GSM: per-frame head and average consensus


class ConsensusModel(StagedModel):
    """TSN-style video model: a (GSM-)backbone per frame, adaptive GAP, the head per frame, mean over T.

    The backbone's own classifier (``spec.classifier``) stays in place, frozen and unused, so that
    ``model.backbone.state_dict()`` is a plain backbone state dict (what pretraining saves).

    Args:
        backbone: an ``egolib.backbones`` backbone (GSMs already inserted for GSM models).
        head: the ``ActionBiasHead`` over ``spec.feature_dim`` channels.
        snippet_length: frames per segment (1 for 2D backbones).
        dropout: dropout on the pooled per-frame features.
        num_segments: T the GSMs were built for, or None (TSN: any T).
    """

    def __init__(
        self,
        backbone: nn.Module,
        head: ActionBiasHead,
        *,
        snippet_length: int = 1,
        dropout: float = 0.5,
        num_segments: int | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.dropout = nn.Dropout(dropout)
        self.snippet_length = snippet_length
        self.num_segments = num_segments

    def stage_groups(self) -> list[list[nn.Module]]:
        trunk = [getattr(self.backbone, name) for name in self.backbone.spec.trunk]
        return [[*trunk, self.head]]

    def frame_features(self, x: Tensor) -> Tensor:
        """Feature maps per segment.

        Args:
            x: ``(B, T*L, C, H, W)``.

        Returns:
            ``(B, T, C', h, w)``.
        """
        B, T = self.segments(x)
        z = backbones.forward_features(self.backbone, fold_clip(x, self.snippet_length, self.backbone.spec.is_3d))
        return z.view(B, T, *z.shape[1:])  # (B*T, C', h, w) -> (B, T, C', h, w)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Logits.

        Args:
            x: ``(B, T*L, C, H, W)`` float; any H, W (fully-convolutional).

        Returns:
            ``dict(verb=(B, V), noun=(B, N), action=(B, A))``.
        """
        f = self.dropout(self.frame_features(x).mean((3, 4)))  # (B, T, C', h, w) -> (B, T, C')
        return {k: v.mean(1) for k, v in self.head(f, f, f).items()}  # per-frame logits, mean over T


# --------------------------------------------------------------------------------------------------
# EgoACO (reconstruction)


class EgoACO(StagedModel):
    """EgoACO: action, object and context descriptors from three cloned top stages. Reconstruction.

    ::

        x (B, T*L, 3, H, W) -> fold -> shared trunk (B*T, C3, h', w')
            -> top_act / top_obj / top_ctx (clones of spec.top; identity in "fc" mode) -> (B, T, C, h, w) each
            X_act -> LSTA (dictionary_act)                       -> d_act (B, M)
            X_obj -> TemporallyCoherentAttention (dictionary_obj) -> d_obj (B, C)
            X_ctx -> ClassActivationPooling (dictionary_ctx)     -> d_ctx (B, C)
            dropout -> ActionBiasHead (wiring) -> verb, noun, action

    Stages (the report's; reconstruction of what "frozen" covers): 1 trains LSTA, the attention recurrence
    and the head; 2 adds the cloned heads (the three top stages, or in "fc" mode the shared top stage, and the
    three dictionaries, which LSTA's stage 2 also unfreezes); 3 adds ``spec.stage3`` (conv4_x of ResNets, the
    last three Inception layers). The rest of the trunk stays frozen, its BN in eval mode.

    Args:
        backbone: the backbone, its top stage replaced by ``nn.Identity`` when the tops are cloned.
        shared: names of the backbone children that form the shared trunk, in order.
        tops: ``nn.ModuleDict(act=, obj=, ctx=)`` of cloned top stages, or None ("fc" mode).
        lsta: the action branch.
        obj_pool: the object branch.
        ctx_pool: the context branch.
        head: the ``ActionBiasHead`` with input sizes matching ``wiring``.
        wiring: ``"report"``, ``"context"`` or ``"concat"`` (module docstring).
        stage3: backbone children that stage 3 unfreezes.
        top_names: backbone children of the top stage (trained from stage 2 in "fc" mode).
        snippet_length: frames per segment.
        dropout: dropout on the three descriptors.
        num_segments: T the GSMs were built for, or None.
    """

    def __init__(
        self,
        backbone: nn.Module,
        shared: tuple[str, ...],
        tops: nn.ModuleDict | None,
        lsta: LSTA,
        obj_pool: TemporallyCoherentAttention,
        ctx_pool: ClassActivationPooling,
        head: ActionBiasHead,
        *,
        wiring: str = "report",
        stage3: tuple[str, ...] = (),
        top_names: tuple[str, ...] = (),
        snippet_length: int = 1,
        dropout: float = 0.5,
        num_segments: int | None = None,
    ) -> None:
        super().__init__()
        if wiring not in EGOACO_WIRINGS:
            raise ValueError(f"unknown egoaco_wiring {wiring!r}; choose one of {', '.join(EGOACO_WIRINGS)}")
        self.backbone = backbone
        self.shared = shared
        self.tops = tops
        self.lsta = lsta
        self.obj_pool = obj_pool
        self.ctx_pool = ctx_pool
        self.head = head
        self.wiring = wiring
        self.stage3 = stage3
        self.top_names = top_names
        self.dropout = nn.Dropout(dropout)
        self.snippet_length = snippet_length
        self.num_segments = num_segments

    def stage_groups(self) -> list[list[nn.Module]]:
        dictionaries = [self.lsta.dictionary, self.obj_pool.dictionary, self.ctx_pool.dictionary]
        new = [self.lsta.cell, self.obj_pool.attention, self.head]
        if self.tops is not None:
            heads = [self.tops, *dictionaries]
        else:
            heads = [*(getattr(self.backbone, n) for n in self.top_names), *dictionaries]
        return [new, heads, [getattr(self.backbone, n) for n in self.stage3]]

    def trunk_maps(self, x: Tensor) -> Tensor:
        """The shared trunk's output (what the cloned top stages read), per clip.

        Args:
            x: ``(B, T*L, C, H, W)``.

        Returns:
            ``(B, T, C'', h', w')`` (3D backbones ``(B, T, C'', t, h', w')``).
        """
        B, T = self.segments(x)
        z = backbones.run_children(self.backbone, self.shared,
                                   fold_clip(x, self.snippet_length, self.backbone.spec.is_3d))
        return z.view(B, T, *z.shape[1:])  # (B*T, ...) -> (B, T, ...)

    def branch_maps(self, x: Tensor | None = None, *, trunk: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """The three branches' feature maps.

        Args:
            x: ``(B, T*L, C, H, W)``.
            trunk: the clip's ``trunk_maps`` computed earlier, in place of ``x`` (``egolib.feature_cache``).

        Returns:
            ``(X_act, X_obj, X_ctx)``, each ``(B, T, C', h, w)``.
        """
        if trunk is None:
            trunk = self.trunk_maps(x)
        B, T = trunk.shape[:2]
        z = trunk.reshape(B * T, *trunk.shape[2:])  # (B, T, ...) -> (B*T, ...)
        if self.tops is None:
            maps = (backbones.squeeze_time(z),) * 3
        else:
            maps = tuple(backbones.squeeze_time(self.tops[k](z)) for k in ("act", "obj", "ctx"))
        return tuple(m.view(B, T, *m.shape[1:]) for m in maps)  # (B*T, C', h, w) -> (B, T, C', h, w)

    def descriptors(self, x: Tensor | None = None, *, maps: tuple[Tensor, Tensor, Tensor] | None = None,
                    trunk: Tensor | None = None) -> dict[str, Tensor]:
        """The three clip descriptors and their attention maps.

        Args:
            x: ``(B, T*L, C, H, W)``.
            maps: ``branch_maps`` of the clip computed earlier, in place of ``x`` (``egolib.feature_cache``);
                only at stage 1, where nothing that makes them trains.
            trunk: ``trunk_maps`` of the clip computed earlier, in place of ``x``; only at stages 1 and 2, where
                the shared trunk is frozen, and with cloned tops (in "fc" mode stage 2 trains the top stage, which
                is part of the trunk).

        Returns:
            ``dict(act=(B, M), obj=(B, C'), ctx=(B, C'), att_act=, att_obj=, att_ctx=)`` with attention maps
            ``(B, T, h, w)``, each summing to 1 over ``h*w``.
        """
        if sum(v is not None for v in (x, maps, trunk)) != 1:
            raise ValueError("give EgoACO one of a clip x, its branch maps or its trunk maps")
        stage = getattr(self, "stage", 1)
        if maps is not None and stage != 1:
            raise ValueError(f"branch maps computed earlier stand in for the clip only at stage 1 (the backbone "
                             f"and the cloned tops frozen); this model is at stage {stage}")
        if trunk is not None and (stage > 2 or self.tops is None):
            raise ValueError(f"trunk maps computed earlier stand in for the clip only at stages 1 and 2 with cloned "
                             f"tops (the shared trunk frozen); this model is at stage {stage}"
                             + ("" if self.tops is not None else ", in 'fc' mode"))
        x_act, x_obj, x_ctx = self.branch_maps(x, trunk=trunk) if maps is None else maps
        d_act, att_act = self.lsta(x_act)
        d_obj, att_obj = self.obj_pool(x_obj)
        d_ctx, att_ctx = self.ctx_pool(x_ctx)
        return {"act": d_act, "obj": d_obj, "ctx": d_ctx, "att_act": att_act, "att_obj": att_obj, "att_ctx": att_ctx}

    def forward(self, x: Tensor | None = None, *, maps: tuple[Tensor, Tensor, Tensor] | None = None,
                trunk: Tensor | None = None) -> dict[str, Tensor]:
        """Logits.

        Args:
            x: ``(B, T*L, C, H, W)`` float.
            maps: at stage 1, the clip's ``branch_maps`` (three ``(B, T, C', h, w)``) in place of ``x``.
            trunk: at stages 1 and 2, the clip's ``trunk_maps`` in place of ``x``.

        Returns:
            ``dict(verb=(B, V), noun=(B, N), action=(B, A))``.
        """
        d = self.descriptors(x, maps=maps, trunk=trunk)
        act, obj, ctx = (self.dropout(d[k]) for k in ("act", "obj", "ctx"))
        everything = torch.cat([act, obj, ctx], 1)  # (B, M + 2C')
        if self.wiring == "report":
            return self.head(act, obj, everything)
        if self.wiring == "context":
            return self.head(torch.cat([act, ctx], 1), torch.cat([obj, ctx], 1), everything)
        return self.head(everything, everything, everything)


ATTENTION_BRANCHES = ("act", "obj", "ctx")  # EgoACO's attention maps: LSTA, the object branch, the context branch


@contextlib.contextmanager
def attention_taps(model: EgoACO) -> Iterator[dict[str, list[Tensor]]]:
    """Forward hooks that record EgoACO's attention maps while the block runs; the hooks only read.

    Yields:
        ``{branch: [maps of each forward pass, (B, T, h, w) detached]}`` for the branches ``ATTENTION_BRANCHES``
        (each map sums to 1 over ``h*w``).
    """
    maps: dict[str, list[Tensor]] = {b: [] for b in ATTENTION_BRANCHES}

    def tap(branch: str):
        def hook(_m: nn.Module, _inp: tuple, out: tuple[Tensor, Tensor]) -> None:
            maps[branch].append(out[1].detach())  # (descriptor, attention (B, T, h, w))

        return hook

    modules = (model.lsta, model.obj_pool, model.ctx_pool)
    handles = [m.register_forward_hook(tap(b)) for b, m in zip(ATTENTION_BRANCHES, modules, strict=True)]
    try:
        yield maps
    finally:
        for h in handles:
            h.remove()


def egoaco_head_dims(wiring: str, memory: int, channels: int) -> tuple[int, int, int]:
    """Input sizes (verb, noun, action) of the EgoACO head for a wiring."""
    total = memory + 2 * channels
    return {
        "report": (memory, channels, total),
        "context": (memory + channels, 2 * channels, total),
        "concat": (total, total, total),
    }[wiring]


# --------------------------------------------------------------------------------------------------
# Builders: one per method, each says only what differs


def _classifier(backbone: nn.Module) -> nn.Module:
    return getattr(backbone, backbone.spec.classifier)


def _insert_gsm(backbone: nn.Module, *, num_segments: int, gsm_options: dict[str, Any],
                backbone_weights: str | None) -> None:
    n = gsm.insert_gsm(backbone, num_segments, **gsm_options)
    if n < 1:
        raise ValueError(f"insert_gsm placed no GSM into {backbone.spec.name!r}")
    log.info("inserted %d GSMs into %s (num_segments=%d)", n, backbone.spec.name, num_segments)
    if backbone_weights is not None:
        path = backbones.resolve_weights(backbone.spec.name, backbone_weights)
        if has_gsm_keys(path):
            backbones.load_weights(backbone, path)  # a GSM-trained backbone, gates included


def has_gsm_keys(path: str | Path) -> bool:
    """True when the backbone state dict in ``path`` was saved from a GSM backbone (it has GSM gate weights).

    Such a file (e.g. the backbone of a trained ``gsm`` run, which the report's GSM + EgoACO starts from) loads
    after the GSMs are inserted; a plain backbone file loads before."""
    return any(".gsm." in k for k in backbones.read_state_dict(path))


def build_tsn(
    backbone: nn.Module,
    classes: tuple[int, int, int],
    *,
    snippet_length: int = 1,
    dropout: float = 0.5,
    head_bias_input: str = "logits",
    head_bias_affine: bool = False,
    head_detach_action: bool = False,
    num_segments: int | None = None,
) -> ConsensusModel:
    """TSN baseline: the plain backbone, per-frame head, average consensus (any T unless ``num_segments``)."""
    C = backbone.spec.feature_dim
    head = ActionBiasHead(C, C, C, *classes, bias_input=head_bias_input, bias_affine=head_bias_affine,
                          detach_action=head_detach_action)
    return ConsensusModel(backbone, head, snippet_length=snippet_length, dropout=dropout, num_segments=num_segments)


def build_gsm(
    backbone: nn.Module,
    classes: tuple[int, int, int],
    *,
    num_segments: int,
    gsm_options: dict[str, Any],
    backbone_weights: str | None = None,
    **head: Any,
) -> ConsensusModel:
    """GSM: TSN with Gate-Shift Modules inside the backbone (fixed T = num_segments).

    ``head``: ``build_tsn``'s keyword arguments (snippet length, dropout, head options).
    """
    _insert_gsm(backbone, num_segments=num_segments, gsm_options=gsm_options, backbone_weights=backbone_weights)
    return build_tsn(backbone, classes, num_segments=num_segments, **head)


def build_egoaco(
    backbone: nn.Module,
    classes: tuple[int, int, int],
    *,
    lsta_memory: int,
    lsta_pool: int,
    dictionary_size: int,
    lsta_kernel: int = 3,
    egoaco_clone: str = "top_stage",
    egoaco_wiring: str = "report",
    cap_selection: str = "hard",
    snippet_length: int = 1,
    dropout: float = 0.5,
    head_bias_input: str = "logits",
    head_bias_affine: bool = False,
    head_detach_action: bool = False,
    num_segments: int | None = None,
) -> EgoACO:
    """EgoACO (reconstruction): clone the top stage or the classifier, three descriptors, the action-bias head."""
    spec = backbone.spec
    C, M, K = spec.feature_dim, lsta_memory, dictionary_size
    fc = _classifier(backbone)
    dictionaries = [Dictionary(C, K, selection=cap_selection) for _ in range(3)]
    if isinstance(fc, nn.Linear) and tuple(fc.weight.shape) == (K, C):
        for d in dictionaries:
            d.copy_from_linear(fc)  # the pretrained classifier, cloned three times
    setattr(backbone, spec.classifier, nn.Identity())  # replaced by the three dictionaries
    if spec.trunk[-len(spec.top) :] != spec.top:
        raise ValueError(f"{spec.name}: spec.top {spec.top} must be the last children of spec.trunk {spec.trunk}")
    tops = None
    if egoaco_clone == "top_stage":
        clone = [(n, getattr(backbone, n)) for n in spec.top]
        tops = nn.ModuleDict({k: nn.Sequential(OrderedDict(copy.deepcopy(clone))) for k in ("act", "obj", "ctx")})
        for n in spec.top:
            setattr(backbone, n, nn.Identity())
    # built in this order (LSTA, object attention, context pooling, head): the order of their random inits
    lsta = LSTA(LSTACell(C, M, lsta_pool, kernel_size=lsta_kernel), dictionaries[0])
    obj_pool = TemporallyCoherentAttention(dictionaries[1], AttentionRecurrence())
    ctx_pool = ClassActivationPooling(dictionaries[2])
    head = ActionBiasHead(*egoaco_head_dims(egoaco_wiring, M, C), *classes, bias_input=head_bias_input,
                          bias_affine=head_bias_affine, detach_action=head_detach_action)
    return EgoACO(
        backbone,
        spec.trunk[: -len(spec.top)] if tops is not None else spec.trunk,
        tops,
        lsta,
        obj_pool,
        ctx_pool,
        head,
        wiring=egoaco_wiring,
        stage3=tuple(n for n in spec.stage3 if tops is None or n not in spec.top),
        top_names=spec.top if tops is None else (),
        snippet_length=snippet_length,
        dropout=dropout,
        num_segments=num_segments,
    )


def build_gsm_egoaco(
    backbone: nn.Module,
    classes: tuple[int, int, int],
    *,
    num_segments: int,
    gsm_options: dict[str, Any],
    backbone_weights: str | None = None,
    **egoaco: Any,
) -> EgoACO:
    """EgoACO on a GSM backbone (GSMs inserted before the top stage is cloned, so each clone has its own).

    ``egoaco``: ``build_egoaco``'s keyword arguments.
    """
    _insert_gsm(backbone, num_segments=num_segments, gsm_options=gsm_options, backbone_weights=backbone_weights)
    return build_egoaco(backbone, classes, num_segments=num_segments, **egoaco)


MODELS: dict[str, Callable[..., StagedModel]] = {
    "tsn": build_tsn,
    "gsm": build_gsm,
    "egoaco": build_egoaco,
    "gsm_egoaco": build_gsm_egoaco,
}


def build_model(
    method: str,
    backbone: str,
    num_verbs: int,
    num_nouns: int,
    num_actions: int,
    *,
    width: float = 1.0,
    num_segments: int = 8,
    snippet_length: int = 1,
    pretrain: str = "scratch",
    backbone_weights: str | None = None,
    dropout: float = 0.5,
    lsta_memory: int = 512,
    lsta_pool: int = 300,
    lsta_kernel: int = 3,
    egoaco_clone: str = "top_stage",
    egoaco_wiring: str = "report",
    cap_selection: str = "hard",
    dictionary_size: int | None = None,
    head_bias_input: str = "logits",
    head_bias_affine: bool = False,
    head_detach_action: bool = False,
    gsm_options: dict[str, Any] | None = None,
) -> StagedModel:
    """Build a video model from the registry ``MODELS``.

    Args:
        method: ``tsn``, ``gsm``, ``egoaco`` or ``gsm_egoaco``.
        backbone: a name valid for the method (``config.VALID_BACKBONES``).
        num_verbs: V. num_nouns: N. num_actions: A (distinct training (verb, noun) pairs).
        width: channel-width multiplier of the backbone.
        num_segments: T (GSM models need clips of exactly T segments; TSN/EgoACO take any T).
        snippet_length: L frames per segment (3 for ``r2p1d34``, 1 for 2D backbones).
        pretrain: where ``backbone_weights`` come from (recorded in ``model_args``; the file decides).
        backbone_weights: a backbone state dict file, loaded before cloning: a plain backbone's before GSM
            insertion, a GSM backbone's (``has_gsm_keys``; GSM models only) after it.
        dropout: dropout before the classifiers.
        lsta_memory: LSTA memory channels M (report: 512).
        lsta_pool: LSTA output-pooling classes K (report: 300).
        lsta_kernel: LSTA memory ConvLSTM gate kernel (reference 3; 1 for final maps <= 3x3, faster on a CPU).
        egoaco_clone: ``top_stage`` or ``fc`` (reconstruction, see the module docstring).
        egoaco_wiring: ``report``, ``context`` or ``concat`` (reconstruction).
        cap_selection: ``hard`` or ``soft`` dictionary selection (reconstruction).
        dictionary_size: rows of the EgoACO dictionaries; None: the backbone classifier's classes (its weights
            initialise the dictionaries). Stored resolved in ``model_args``.
        head_bias_input: ``logits`` or ``softmax`` into the action -> verb/noun bias maps.
        head_bias_affine: bias maps with their own bias.
        head_detach_action: stop-gradient on the action logits into the bias maps.
        gsm_options: keyword options of ``gsm.insert_gsm`` (GSM models only).

    Returns:
        The model (EgoACO models at stage 1), with ``model_args`` (JSON-serialisable, enough for ``load_model``).

    Raises:
        ValueError: unknown method or option, or a backbone the method does not take.
    """
    model_args = {k: v for k, v in locals().items()}
    if method not in MODELS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(MODELS)}")
    if backbone not in VALID_BACKBONES[method]:
        raise ValueError(
            f"method {method!r} does not take backbone {backbone!r}; choose one of {', '.join(VALID_BACKBONES[method])}"
        )
    if egoaco_clone not in EGOACO_CLONES:
        raise ValueError(f"unknown egoaco_clone {egoaco_clone!r}; choose one of {', '.join(EGOACO_CLONES)}")
    if egoaco_wiring not in EGOACO_WIRINGS:
        raise ValueError(f"unknown egoaco_wiring {egoaco_wiring!r}; choose one of {', '.join(EGOACO_WIRINGS)}")
    if gsm_options and "gsm" not in method:
        raise ValueError(f"gsm_options given for method {method!r}, which has no GSM")
    gsm_keyed = backbone_weights is not None and has_gsm_keys(backbones.resolve_weights(backbone, backbone_weights))
    if gsm_keyed and "gsm" not in method:
        raise ValueError(f"{backbone_weights} holds a GSM backbone; method {method!r} has no GSM to load it into")
    net = backbones.build_backbone(backbone, width=width, weights=None if gsm_keyed else backbone_weights)
    if "egoaco" in method and dictionary_size is None:
        fc = _classifier(net)
        dictionary_size = fc.out_features if isinstance(fc, nn.Linear) else 1000
    model_args.update(dictionary_size=dictionary_size, gsm_options=dict(gsm_options or {}))
    json.dumps(model_args)  # must be serialisable: it travels in every checkpoint
    kwargs = {"snippet_length": snippet_length, "dropout": dropout, "head_bias_input": head_bias_input,
              "head_bias_affine": head_bias_affine, "head_detach_action": head_detach_action}
    if "egoaco" in method:
        kwargs |= {"lsta_memory": lsta_memory, "lsta_pool": lsta_pool, "lsta_kernel": lsta_kernel,
                   "dictionary_size": dictionary_size, "egoaco_clone": egoaco_clone,
                   "egoaco_wiring": egoaco_wiring, "cap_selection": cap_selection}
    if "gsm" in method:
        kwargs |= {"num_segments": num_segments, "gsm_options": dict(gsm_options or {}),
                   "backbone_weights": backbone_weights}
    model = MODELS[method](net, (num_verbs, num_nouns, num_actions), **kwargs)
    model.model_args = model_args
    model.set_stage(1)
    log.info(
        "built %s/%s: %.3f M params (%.3f M trainable at stage 1)",
        method,
        backbone,
        count_params(model) / 1e6,
        count_params(model, trainable=True) / 1e6,
    )
    return model


# --------------------------------------------------------------------------------------------------
# Checkpoints and cost


def to_channels_last(model: nn.Module) -> nn.Module:
    """Channels-last convolution weights, in place: 2D kernels ``channels_last``, 3D kernels ``channels_last_3d``
    (``Module.to(memory_format=...)`` takes one format and fails on the other rank: R(2+1)D and every GSM gate have
    3D kernels). A convolution runs channels-last when its weight is; the clips stay as they are."""
    for p in model.parameters():
        if p.dim() in (4, 5):
            p.data = p.data.contiguous(memory_format=torch.channels_last if p.dim() == 4 else torch.channels_last_3d)
    return model


def count_params(model: nn.Module, *, trainable: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` when ``trainable``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable)


def flops_per_clip(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Forward FLOPs (1 multiply-add = 2 FLOPs) of one clip, counted by ``torch.utils.flop_counter``.

    Args:
        model: a video model.
        input_shape: one clip ``(T*L, C, H, W)``.

    Returns:
        Total FLOPs of ``model`` on a zero clip of that shape (eval mode, no grad).
    """
    p = next(model.parameters())
    x = torch.zeros(1, *input_shape, device=p.device, dtype=p.dtype)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def checkpoint_state(model: StagedModel) -> dict[str, Any]:
    """The two keys every checkpoint holds: ``model_args`` and the state dict ``model`` (plus ``stage``).

    The state dict is on the CPU in the contiguous format (channels-last weights are saved as plain ones).
    """
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    return {"model_args": model.model_args, "model": state, "stage": getattr(model, "stage", 1)}


def save_model(path: str | Path, model: StagedModel, **extra: Any) -> None:
    """Write ``checkpoint_state(model) | extra`` atomically."""
    runs.save_torch(path, checkpoint_state(model) | extra)


def _adopt_classifier(model: StagedModel, state: dict[str, Tensor]) -> None:
    """Give the backbone's kept classifier the checkpoint's class count (e.g. an 11-class stand-in or a 359-class
    IG-65M fc loaded through ``backbone_weights``): ``build_model`` without weights builds the default size."""
    name = model.backbone.spec.classifier
    fc = getattr(model.backbone, name)
    w = state.get(f"backbone.{name}.weight")
    if isinstance(fc, nn.Linear) and w is not None and w.shape != fc.weight.shape:
        setattr(model.backbone, name, nn.Linear(w.shape[1], w.shape[0], bias=fc.bias is not None))


def load_model(path: str | Path, *, map_location: str | torch.device = "cpu") -> StagedModel:
    """Rebuild a model from a checkpoint's ``model_args`` alone and load its weights (``weights_only=True``).

    Returns:
        The model in eval mode, at the checkpoint's stage.

    Raises:
        egolib.runs.CorruptFile: the file is truncated, unreadable or differs from the hash recorded when written.
    """
    ckpt = runs.load_torch(path, map_location=map_location)
    for key in ("model_args", "model"):
        if key not in ckpt:
            raise ValueError(f"{path}: not a model checkpoint (no {key!r} key); keys are {sorted(ckpt)}")
    args = dict(ckpt["model_args"]) | {"backbone_weights": None}  # the state dict replaces every weight
    model = build_model(**args)
    _adopt_classifier(model, ckpt["model"])
    model.load_state_dict(ckpt["model"], strict=True)
    model.set_stage(max(1, int(ckpt.get("stage", 1))))  # stage 0: saved before training
    return model.eval()
