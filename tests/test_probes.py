"""egolib.probes: capture leaves outputs unchanged, gate and attention shapes, the pointing game on hand-made
maps, the order probe on hand-made models, gate statistics and the box geometry of the test view."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from egolib import gsm, probes
from egolib.config import RunConfig
from egolib.models import build_model

T = 4


def randomise_gates(model: nn.Module) -> None:
    """Give every GSM non-zero gates (they are zero at initialisation)."""
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, gsm.GateShift):
            nn.init.normal_(m.conv3D.weight, std=0.5)
            nn.init.normal_(m.conv3D.bias, std=0.5)


def tiny(method: str, backbone: str) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(method, backbone, 5, 6, 7, width=0.125, num_segments=T, lsta_memory=16, lsta_pool=8)
    randomise_gates(model)
    return model.eval()


# --------------------------------------------------------------------------------------------------
# capture


@pytest.mark.parametrize(
    ("method", "backbone", "size", "n_gsm"), [("gsm", "res34", 64, 16), ("gsm_egoaco", "bninc", 80, 14)]
)
def test_capture_leaves_outputs_equal_and_records_every_gate(method, backbone, size, n_gsm):
    # GSM + EgoACO on BN-Inception: 8 GSMs in the shared trunk, 2 in each of the three cloned top stages
    model = tiny(method, backbone)
    clip = torch.randn(2, T, 3, size, size)
    inputs = {}

    def keep_input(m, i, o) -> None:  # returns None: a hook that returns a value would replace the output
        inputs[m] = i[0]

    hooks = [m.register_forward_hook(keep_input) for m in model.modules() if isinstance(m, gsm.GateShift)]
    cap = probes.capture(model, clip)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        out = model(clip)
    assert cap.outputs.keys() == out.keys() and all(torch.equal(cap.outputs[k], out[k]) for k in out)
    assert len(cap.gates) == len(cap.gate_names) == n_gsm
    modules = [model.get_submodule(n) for n in cap.gate_names]
    assert all(isinstance(m, gsm.GateShift) for m in modules)
    for g, m in zip(cap.gates, modules, strict=True):
        x = inputs[m]  # (B*T, C, h, w)
        assert g.shape == (2, T, 2, *x.shape[-2:])
        torch.testing.assert_close(g, m.gate(x), atol=1e-4, rtol=1e-4)  # its own gate (conv2d path)
        assert g.abs().max() > 0.01  # randomised gates, not the zero init
    if method == "gsm_egoaco":
        assert set(cap.attention) == {"act", "obj", "ctx"}


def test_capture_in_train_mode_updates_batchnorm_statistics_once():
    a, b = tiny("gsm", "res34").train(), tiny("gsm", "res34").train()
    clip = torch.randn(2, T, 3, 64, 64)
    probes.capture(a, clip)
    with torch.no_grad():
        b(clip)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_attention_maps_of_egoaco_sum_to_one_and_other_models_have_none():
    model = tiny("egoaco", "res34")
    clip = torch.randn(3, T, 3, 96, 96)
    cap = probes.capture(model, clip)
    assert cap.gates == [] and set(cap.attention) == {"act", "obj", "ctx"}
    for b, att in cap.attention.items():
        assert att.shape == (3, T, 3, 3), b
        assert (att >= 0).all()
        torch.testing.assert_close(att.sum((2, 3)), torch.ones(3, T))
    assert not torch.equal(cap.attention["obj"], cap.attention["ctx"])
    tsn = probes.capture(tiny("tsn", "res34"), clip)
    assert tsn.gates == [] and tsn.attention == {} and tsn.outputs["verb"].shape == (3, 5)


# --------------------------------------------------------------------------------------------------
# the pointing game


def test_pointing_game_peak_ties_edges_and_tolerance():
    flat = np.zeros((1, 2, 2))  # all tied: the first cell, centre (0.25, 0.25)
    assert probes.peak_centres(flat).tolist() == [[0.25, 0.25]]
    assert probes.pointing_game(flat, [[0.0, 0.0, 0.25, 0.25]]) == 1.0  # centre on the box corner: inside
    assert probes.pointing_game(flat, [[0.26, 0.0, 1.0, 1.0]]) == 0.0
    assert probes.pointing_game(flat, [[0.26, 0.0, 1.0, 1.0]], tolerance=0.01) == 1.0  # grown to 0.25
    assert probes.pointing_game(flat, [[0.0, 0.0, 0.2, 0.2]], tolerance=0.05) == 1.0  # grown to 0.25: the edge
    tie = np.array([[[0.0, 1.0], [1.0, 0.0]]])  # two maxima: the first in row-major order, (row 0, col 1)
    assert probes.peak_centres(tie).tolist() == [[0.75, 0.25]]
    wide = np.zeros((1, 2, 4))
    wide[0, 1, 3] = 1.0
    assert probes.peak_centres(wide).tolist() == [[0.875, 0.75]]
    last = np.array([[[0.0, 0.0], [0.0, 1.0]]])
    maps = np.concatenate([flat, tie, last])  # peaks (.25, .25), (.75, .25), (.75, .75)
    boxes = np.array([[0, 0, 0.5, 0.5], [0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1]])
    assert probes.pointing_hits(maps, boxes).tolist() == [True, False, True]
    assert probes.pointing_game(maps, boxes) == pytest.approx(2 / 3)


def test_pointing_game_rejects_bad_input():
    with pytest.raises(ValueError, match="maps must be"):
        probes.pointing_game(np.zeros((2, 2)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="boxes must be"):
        probes.pointing_game(np.zeros((2, 2, 2)), np.zeros((3, 4)))
    with pytest.raises(ValueError, match="at least one map"):
        probes.pointing_game(np.zeros((0, 2, 2)), np.zeros((0, 4)))


def test_baselines_centre_prior_and_seeded_random_peaks():
    assert probes.peak_centres(probes.centre_prior(2, 3, 5)).tolist() == [[0.5, 0.5]] * 2
    assert probes.peak_centres(probes.centre_prior(1, 2, 2)).tolist() == [[0.25, 0.25]]  # first of the tied four
    a, b = probes.random_peaks(4000, 4, 4, seed=3), probes.random_peaks(4000, 4, 4, seed=3)
    assert np.array_equal(a, b) and not np.array_equal(a, probes.random_peaks(4000, 4, 4, seed=4))
    assert (a.sum((1, 2)) == 1).all()
    left_half = np.tile([0.0, 0.0, 0.5, 1.0], (4000, 1))
    assert probes.pointing_game(a, left_half) == pytest.approx(0.5, abs=0.03)


def test_baseline_hits_are_the_pointing_table_s_baselines_frame_by_frame():
    rng = np.random.default_rng(0)
    x0, y0 = rng.random(50) * 0.5, rng.random(50) * 0.5
    frames = pd.DataFrame({"x0": x0, "y0": y0, "x1": x0 + 0.5, "y1": y0 + 0.5, "h": 4, "w": 4,
                           **{f"hit_{b}": rng.random(50) < 0.3 for b in probes.BRANCHES}})
    hits = probes.baseline_hits(frames, seed=5)
    centre = probes.pointing_hits(probes.centre_prior(50, 4, 4), frames[["x0", "y0", "x1", "y1"]].to_numpy())
    assert np.array_equal(hits["hit_centre"], centre) and list(hits.columns[:len(frames.columns)]) == list(frames)
    table = probes.pointing_table(frames, seed=5)
    assert table["centre"] == pytest.approx(100 * centre.mean())
    assert table["random"] == pytest.approx(100 * hits["hit_random"].mean())
    assert not hits["hit_random"].equals(probes.baseline_hits(frames, seed=6)["hit_random"])


# --------------------------------------------------------------------------------------------------
# the order probe


class OrderBlind(nn.Module):
    """Averages the frames, then a linear verb classifier: it cannot see the order of the frames."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(3, 4)

    def forward(self, x):
        return {"verb": self.fc(x.mean((1, 3, 4)))}  # (B, T, C, H, W) -> (B, C) -> (B, V)


class ArrowOfTime(nn.Module):
    """Verb 0 when the clip gets brighter over time, verb 1 when it gets darker (verbs 0/1 are a pair)."""

    def forward(self, x):
        trend = x[:, -1].mean((1, 2, 3)) - x[:, 0].mean((1, 2, 3))  # (B,)
        return {"verb": torch.stack([trend, -trend, trend * 0 - 9, trend * 0 - 9], 1)}


def clips(n: int = 40):
    g = torch.Generator().manual_seed(0)
    return [{"clip": torch.randn(T, 3, 4, 4, generator=g), "verb": i % 4, "uid": str(i)} for i in range(n)]


def test_order_probe_of_an_order_blind_model_has_equal_forward_and_backward_accuracy():
    pred = probes.order_predictions(OrderBlind(), clips(), batch_size=7)
    assert len(pred) == 40 and (pred.forward == pred.backward).all()
    table = probes.order_table(pred, [(0, 1), (2, 3)], ["take", "put", "open", "close"])
    assert list(table.index) == ["take/put", "open/close", "all pairs"]
    assert (table.clips == [20, 20, 40]).all()
    assert np.allclose(table.acc_forward, table.acc_backward) and (table.flip == 0).all()
    assert np.allclose(table.partner_forward, table.acc_backward_swapped)
    assert table.acc_forward.between(0, 100).all() and table.acc_forward.iloc[-1] > 0  # a real accuracy, not 0


def test_order_probe_sees_a_model_that_reads_time():
    pred = probes.order_predictions(ArrowOfTime(), clips(), batch_size=8)
    table = probes.order_table(pred, [(0, 1)], ["take", "put", "open", "close"])
    row = table.loc["take/put"]
    assert row.flip == 100.0  # reversing the clip reverses the trend
    assert row.acc_backward_swapped == row.acc_forward and row.acc_backward == row.partner_forward


def test_order_table_counts_by_hand():
    pred = pd.DataFrame({"verb": [0, 0, 1, 1, 2], "forward": [0, 1, 1, 1, 2], "backward": [1, 1, 1, 0, 3]})
    table = probes.order_table(pred, [(0, 1)], ["take", "put", "wash"])
    # one column per distinct quantity (backward plays named as the partner verb = acc_backward_swapped)
    assert list(table.columns) == ["clips", "acc_forward", "acc_backward", "acc_backward_swapped", "partner_forward",
                                   "flip"]
    t = table.loc["take/put"]
    assert t.clips == 4 and t.acc_forward == 75.0 and t.acc_backward == 25.0 and t.acc_backward_swapped == 75.0
    assert t.partner_forward == 25.0 and t.flip == 50.0


def test_reversal_pairs_by_class_key():
    names = ["take", "put", "open", "wash", "close", "push"]
    assert probes.reversal_pairs(names) == [(0, 1), (2, 4)]  # push has no pull: left out


# --------------------------------------------------------------------------------------------------
# gate statistics and geometry


def test_box_coverage():
    cov = probes.box_coverage(np.array([[0, 0, 0.5, 0.5], [0.25, 0, 0.75, 1], [np.nan] * 4]), 2, 2)
    np.testing.assert_allclose(cov[0], [[1, 0], [0, 0]])
    np.testing.assert_allclose(cov[1], [[0.5, 0.5], [0.5, 0.5]])
    np.testing.assert_allclose(cov[2], 0)


def test_gate_statistics_direction_motion_and_object():
    motion = torch.rand(T, 8, 8)
    pooled = torch.nn.functional.adaptive_avg_pool2d(motion[:, None], (4, 4))[:, 0]  # (T, 4, 4)
    past_only = torch.stack([torch.zeros_like(pooled), pooled], 1)[None]  # (1, T, 2, 4, 4): group 1 = motion
    box = np.tile([0.0, 0.0, 0.5, 0.5], (T, 1))
    box[1] = np.nan
    in_box = torch.from_numpy(probes.box_coverage(box, 4, 4)).float() * 0.8 + 0.1  # |gate| high on the object
    object_gate = torch.stack([in_box, -in_box], 1)[None]
    stats = probes.gate_statistics([[past_only, object_gate]], [motion], [box], ["a", "b"])
    assert list(stats.name) == ["a", "b"] and (stats.h == 4).all()
    assert stats.loc[0, "from_past"] == 1.0 and stats.loc[0, "from_future"] == 0.0
    assert stats.loc[0, "corr_motion"] == pytest.approx(1.0)  # mean over groups = motion / 2
    assert stats.loc[1, "from_past"] == pytest.approx(0.5) and stats.loc[1, "corr_object"] == pytest.approx(1.0)
    assert stats.loc[1, "mean_abs_gate"] == pytest.approx(in_box.mean().item())


def test_motion_map_is_zero_on_a_still_clip_and_marks_what_moves():
    still = torch.ones(T, 3, 6, 6)
    assert probes.motion_map(still).abs().max() == 0
    moving = still.clone()
    moving[2, :, 0, 0] = 5
    m = probes.motion_map(moving)
    assert m.shape == (T, 6, 6) and m[0, 0, 0] == 0 and m[1:, 0, 0].min() > 0 and m[:, 1:, 1:].abs().max() == 0


@pytest.mark.parametrize("method", ["gsm", "egoaco"])  # full frame / centre crop
def test_view_boxes_follow_the_test_transform(method):
    cfg = RunConfig.from_params({"method": method, "backbone": "res34", "preset": "smoke"})
    run = probes.ProbeRun(path=None, cfg=cfg, data=None, model=None, boxes=None)
    H, W = 128, 228
    box = np.array([[60.0, 30.0, 140.0, 100.0]])
    raw = torch.zeros(1, 3, H, W, dtype=torch.uint8)
    raw[:, :, 30:100, 60:140] = 255
    view = run.view(raw)[0, 0].float()  # (h, w)
    h, w = view.shape
    ys, xs = torch.nonzero(view > 127, as_tuple=True)
    expected = [xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]
    np.testing.assert_allclose(run.view_boxes(box, (H, W))[0], expected, atol=1.5 / min(h, w))
    outside = run.view_boxes(np.array([[0.0, 0.0, 3.0, 3.0]]), (H, W))
    assert np.isnan(outside).all() if method == "egoaco" else not np.isnan(outside).any()


def test_train_command_names_the_run():
    cmd = probes.train_command("gsm-bninc-epic-demo-s0")
    assert cmd == ("papermill book/03_train.ipynb runs/gsm-bninc-epic-demo-s0/train.ipynb -p method gsm "
                   "-p backbone bninc -p pretrain epic -p preset demo -p seed 0")
    assert "-p run_dir elsewhere/tsn-res34-imagenet-smoke-s1" in probes.train_command(
        "tsn-res34-imagenet-smoke-s1", "elsewhere")
    paper = probes.train_command("egoaco-res152-imagenet-paper-s0")  # real EPIC frames: the command needs them
    assert paper.endswith("-p preset paper -p seed 0 -p data_root <EPIC-Kitchens-55 root>")
    with pytest.raises(FileNotFoundError, match="papermill book/03_train.ipynb .*-p method egoaco"):
        probes.open_run("no-such-root", "egoaco-res34-imagenet-demo-s0")


def test_probes_on_a_dataset_without_public_test_labels_say_so():
    class HiddenLabels:  # real EPIC-55: S1/S2 segments, no labels
        test_splits = ("s1", "s2")

        def test_segments(self, split):
            return pd.DataFrame({"uid": [1]}), None

    run = probes.ProbeRun(Path("runs/egoaco-res34-imagenet-paper-s0"), None, HiddenLabels(), nn.Identity(), None)
    with pytest.raises(ValueError, match="no test split of its dataset has public labels"):
        _ = run.labelled_splits


def test_the_attention_probe_in_batches_gives_the_rows_of_single_clips(tmp_path):
    class Clips(probes.ProbeRun):  # six synthetic test clips, the box of one never visible
        def dataset(self, split):
            return range(6)

        def clip(self, split, index):
            g = torch.Generator().manual_seed(index)
            boxes = np.tile([0.1, 0.2, 0.6, 0.7], (T, 1)) * (1 + 0.1 * index)
            boxes[index % T] = np.nan
            if index == 4:
                boxes[:] = np.nan
            return probes.ProbeClip(f"u{index}", 0, 0, torch.randn(T, 3, 64, 64, generator=g),
                                    np.zeros((T, 64, 64, 3), np.uint8), boxes, list(range(T)))

    cfg = RunConfig.from_params({"method": "egoaco", "backbone": "res34", "preset": "smoke"})
    run = Clips(path=tmp_path, cfg=cfg, data=None, model=tiny("egoaco", "res34"), boxes=pd.DataFrame())  # no maps kept
    single = probes.attention_probe(run, "s1", batch_size=1)
    batched = probes.attention_probe(run, "s1", batch_size=4)  # a full batch and a partial one
    assert sorted(set(single.uid)) == ["u0", "u1", "u2", "u3", "u5"] and len(single) == 5 * (T - 1)
    pd.testing.assert_frame_equal(batched, single)
    assert len(probes.attention_probe(run, "s1", limit=2)) == 2 * (T - 1)
