"""Channels-last weights (``models.to_channels_last``, the ``channels_last`` run parameter): 2D and 3D kernels both
convert (``Module.to`` fails on the 3D ones of R(2+1)D and of every GSM gate), a training step computes what the
contiguous model computes, and the parameter says where a run executes, not what it is (it stays out of the run's
name)."""

from __future__ import annotations

import pytest
import torch

from egolib import models, runs, train
from egolib.config import RunConfig
from egolib.synthetic_render import NOUNS, VERBS


def smoke_model(cfg: RunConfig) -> models.StagedModel:
    torch.manual_seed(0)
    V, N = len(VERBS), len(NOUNS)
    model = models.build_model(cfg.method, cfg.backbone, V, N, V * N, width=cfg.width, num_segments=cfg.num_segments,
                               snippet_length=cfg.snippet_length, dropout=0.0, lsta_memory=cfg.lsta_memory,
                               lsta_pool=cfg.lsta_pool)
    model.set_stage(model.num_stages)
    return model


def step(model: models.StagedModel, x: torch.Tensor, labels: dict[str, torch.Tensor]):
    """One forward and backward: the loss and the gradient of every trained parameter."""
    model.train()
    model.zero_grad(set_to_none=True)
    loss, _ = train.multitask_loss(model(x), labels)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("member", [("egoaco", "r2p1d34"), ("gsm", "bninc")])
def test_a_channels_last_step_computes_what_the_contiguous_step_does(member):
    cfg = RunConfig.from_params({"method": member[0], "backbone": member[1], "preset": "smoke"})
    # float64: the two layouts then agree to rounding (in float32 another summation order, amplified through a deep
    # random network with train-mode BatchNorm over a batch of 2, moves single gradients by up to a few percent)
    plain, last = smoke_model(cfg).double(), smoke_model(cfg).double()
    with pytest.raises(RuntimeError, match="rank 4"):  # what the CUDA path did before: one format for all ranks
        smoke_model(cfg).to(memory_format=torch.channels_last)
    models.to_channels_last(last)
    kernels = [p for p in last.parameters() if p.dim() in (4, 5)]
    fmt = {4: torch.channels_last, 5: torch.channels_last_3d}
    assert all(p.is_contiguous(memory_format=fmt[p.dim()]) for p in kernels)
    assert any(not p.is_contiguous() for p in kernels)  # the layout changed
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, cfg.num_segments * cfg.snippet_length, 3, cfg.input_size, cfg.input_size, generator=g,
                    dtype=torch.float64)
    labels = {"verb": torch.tensor([0, 1]), "noun": torch.tensor([2, 3]), "action": torch.tensor([4, 5])}
    loss_a, grads_a = step(plain, x, labels)
    loss_b, grads_b = step(last, x, labels)
    torch.testing.assert_close(loss_b, loss_a, rtol=1e-12, atol=1e-12)
    assert grads_a.keys() == grads_b.keys() and grads_a
    a = torch.cat([grads_a[n].flatten() for n in grads_a])
    b = torch.cat([grads_b[n].flatten() for n in grads_a])
    assert (b - a).norm() / a.norm() < 1e-10


def test_the_parameter_defaults_to_cuda_only_and_stays_out_of_the_name():
    base = RunConfig.from_params({"preset": "smoke"})
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert base.channels_last == "auto" and not train.channels_last(base, cpu) and train.channels_last(base, cuda)
    on = RunConfig.from_params({"preset": "smoke", "channels_last": "on"})
    off = RunConfig.from_params({"preset": "smoke", "channels_last": "off"})
    assert train.channels_last(on, cpu) and not train.channels_last(off, cuda)
    assert on.name == off.name == base.name
    with pytest.raises(ValueError, match="channels_last"):
        RunConfig.from_params({"channels_last": "yes"})
    model = train.place(smoke_model(on), on, cpu)
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)


def test_a_run_folder_holds_the_same_run_whatever_its_weights_layout():
    cfg = RunConfig.from_params({"preset": "smoke"}).to_dict()
    older = {k: v for k, v in cfg.items() if k != "channels_last"}  # a config.json written before the field
    assert runs.differences(older, cfg) == {}
    assert runs.differences({**cfg, "channels_last": "on"}, cfg) == {}
    assert runs.differences({**cfg, "lr": 0.5}, cfg) == {"lr": (0.5, cfg["lr"])}  # what the run computes still counts
