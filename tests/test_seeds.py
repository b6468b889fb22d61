"""egolib.seeds on hand-made Table 2s: seed lists, stacking (run names lose their seed), mean ± std per row,
paired differences, and the spread figure."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from egolib import figures, seeds

COLUMNS = ["name", "setting", "task", "top1", "top5", "precision", "recall"]


def table2(seed: int, values: dict[str, float]) -> pd.DataFrame:
    """A Table 2 of one seed: each name's action top-1 on S1 is ``values[name]``, S2 is 10 lower; verb top-1 50."""
    rows = []
    for name, v in values.items():
        full = f"{name}-smoke-s{seed}" if name.startswith("gsm") else name  # run folders carry the seed
        for setting, shift in (("S1", 0.0), ("S2", -10.0)):
            rows.append([full, setting, "action", v + shift, 2 * v, v / 2, v / 3])
            rows.append([full, setting, "verb", 50.0, 80.0, 40.0, 30.0])
    return pd.DataFrame(rows, columns=COLUMNS)


TABLES = {
    0: table2(0, {"gsm-bninc-epic": 10.0, "gsm-incv3-imagenet": 12.0, "ensemble1": 14.0}),
    1: table2(1, {"gsm-bninc-epic": 12.0, "gsm-incv3-imagenet": 11.0, "ensemble1": 15.0}),
    2: table2(2, {"gsm-bninc-epic": 14.0, "gsm-incv3-imagenet": 16.0, "ensemble1": 19.0}),
}


def test_parse_seeds():
    assert seeds.parse_seeds("0,1,2") == [0, 1, 2]
    assert seeds.parse_seeds(" 3, 1 ,") == [3, 1]
    assert seeds.parse_seeds(7) == [7]  # papermill turns "-p seeds 7" into an int
    for bad, message in (("", "no seeds"), ("0,x", "non-negative integers"), ("1,-2", "non-negative"),
                         ("0,1,0", "given twice")):
        with pytest.raises(ValueError, match=message):
            seeds.parse_seeds(bad)


def test_stack_drops_the_run_seed_and_keeps_the_first_seeds_order():
    stacked = seeds.stack(TABLES)
    assert list(stacked.columns) == ["name", "setting", "task", "seed", "top1", "top5", "precision", "recall"]
    assert list(dict.fromkeys(stacked["name"])) == ["gsm-bninc-epic-smoke", "gsm-incv3-imagenet-smoke", "ensemble1"]
    assert stacked["seed"].tolist()[:3] == [0, 1, 2] and len(stacked) == 3 * 3 * 2 * 2
    assert seeds.row_name("gsm-bninc-epic-demo-s12", 12) == "gsm-bninc-epic-demo"
    assert seeds.row_name("gsm-bninc-epic-demo-s12", 1) == "gsm-bninc-epic-demo-s12"  # only its own seed
    assert seeds.row_name("ensemble3", 3) == "ensemble3"


def test_spread_is_mean_and_sample_std_per_row(tmp_path):
    paths = {}
    for seed, table in TABLES.items():  # the same tables as table2.csv files
        paths[seed] = tmp_path / f"table2-s{seed}.csv"
        table.to_csv(paths[seed], index=False)
    out = seeds.table2_spread(paths).set_index(["name", "setting", "task"])
    row = out.loc[("gsm-bninc-epic-smoke", "S1", "action")]
    assert row["seeds"] == 3 and row["top1_mean"] == pytest.approx(12.0)
    assert row["top1_std"] == pytest.approx(2.0)  # values 10, 12, 14: sample std 2
    assert row["top5_mean"] == pytest.approx(24.0) and row["top5_std"] == pytest.approx(4.0)
    s2 = out.loc[("ensemble1", "S2", "action")]
    assert s2["top1_mean"] == pytest.approx(6.0) and s2["top1_std"] == pytest.approx(np.std([14, 15, 19], ddof=1))
    verb = out.loc[("ensemble1", "S1", "verb")]
    assert verb["top1_std"] == 0.0 and verb["recall_mean"] == 30.0

    one = seeds.table2_spread({5: table2(5, {"gsm-bninc-epic": 10.0})})
    assert one["seeds"].eq(1).all() and one["top1_std"].isna().all()  # one seed: no spread, not a zero one
    cells = seeds.spread_table(one)
    assert cells.loc[("S1", "gsm-bninc-epic-smoke"), "action"] == "10.0"


def test_spread_table_lays_out_mean_and_std():
    cells = seeds.spread_table(seeds.table2_spread(TABLES), metric="top1")
    assert cells.loc[("S1", "gsm-bninc-epic-smoke"), "action"] == "12.0 ± 2.0"
    assert cells.loc[("S2", "ensemble1"), "verb"] == "50.0 ± 0.0"
    assert list(cells.index.get_level_values("setting")[:3]) == ["S1"] * 3
    with pytest.raises(ValueError, match="no metric 'accuracy'"):
        seeds.spread_table(seeds.table2_spread(TABLES), metric="accuracy")


def test_stack_refuses_seeds_with_different_rows_and_bad_tables():
    short = TABLES[1][~TABLES[1]["name"].str.startswith("gsm-incv3")]
    with pytest.raises(ValueError, match=r"only in seed 0: gsm-incv3-imagenet-smoke · S1 · action"):
        seeds.stack({0: TABLES[0], 1: short})
    with pytest.raises(ValueError, match="holds rows twice"):
        seeds.stack({0: pd.concat([TABLES[0], TABLES[0].head(1)])})
    with pytest.raises(ValueError, match="lacks column"):
        seeds.stack({0: TABLES[0].drop(columns="recall")})
    with pytest.raises(ValueError, match="no Table 2"):
        seeds.stack({})


def test_paired_differences_remove_the_draws_difficulty():
    stacked = seeds.stack(TABLES)
    d = seeds.differences(stacked, "gsm-bninc-epic-smoke").set_index(["setting", "name"])
    ens = d.loc[("S1", "ensemble1")]  # 14-10, 15-12, 19-14 = 4, 3, 5
    assert ens["seeds"] == 3 and ens["diff_mean"] == pytest.approx(4.0) and ens["diff_std"] == pytest.approx(1.0)
    assert ens["same_sign"]
    other = d.loc[("S1", "gsm-incv3-imagenet-smoke")]  # 2, -1, 2: flips on seed 1
    assert other["diff_mean"] == pytest.approx(1.0) and not other["same_sign"]
    # unpaired, the ensemble's gap (mean 4) would sit inside two stds of the member (2) and of itself
    spread = seeds.spread(stacked).set_index(["name", "setting", "task"])
    assert spread.loc[("ensemble1", "S1", "action"), "top1_std"] > ens["diff_std"]
    with pytest.raises(ValueError, match="no row named 'tsn'"):
        seeds.differences(stacked, "tsn")
    assert math.isnan(seeds.differences(seeds.stack({0: TABLES[0]}), "ensemble1")["diff_std"].iloc[0])


def test_spread_figure_has_a_dot_per_seed_and_a_mean_per_row():
    stacked = seeds.stack(TABLES)
    fig = figures.seed_spread_figure(stacked, metric="top1", task="action", title="spread")
    # per setting: one trace per seed + one mean ± std trace
    assert len(fig.data) == 2 * (3 + 1)
    means = [t for t in fig.data if t.name == "mean ± std"]
    assert list(means[0].y) == ["ensemble1", "gsm-incv3-imagenet-smoke", "gsm-bninc-epic-smoke"]
    assert list(means[0].x) == pytest.approx([16.0, 13.0, 12.0])
    assert list(means[0].error_x.array)[2] == pytest.approx(2.0)
    assert [t.name for t in fig.data[:3]] == ["seed 0", "seed 1", "seed 2"]
    assert "Plotly.newPlot" in fig.to_html(include_plotlyjs=False, full_html=False)
    twin = figures.seed_spread_twin(stacked, title="spread")
    assert len(twin.axes) == 2
    with pytest.raises(ValueError, match="no task 'both'"):
        figures.seed_spread_figure(stacked, task="both")


def test_table2s_reads_each_seeds_runs_as_ensemble_run_does(tmp_path):
    from egolib import ensemble, scores
    from egolib.epic import ManyShot

    members = [{"method": "gsm", "backbone": "bninc", "pretrain": "epic"},
               {"method": "egoaco", "backbone": "res34", "pretrain": "imagenet"}]
    config = tmp_path / "ensembles.yaml"
    config.write_text(yaml.safe_dump({"ensembles": {"pair": members}}))
    runs = tmp_path / "runs"
    pairs = [(v, w) for v in range(3) for w in range(2)]
    rng = np.random.default_rng(0)
    for seed in (0, 1):  # each draw: its own labels and logits
        uid = [str(10 * seed + i) for i in range(12)]
        v, w = zip(*[pairs[i] for i in rng.integers(len(pairs), size=12)], strict=True)
        for m in members:
            name = f"{m['method']}-{m['backbone']}-{m['pretrain']}-smoke-s{seed}"
            for split in ("s1", "s2"):
                logits = {"verb": rng.normal(size=(12, 3)), "noun": rng.normal(size=(12, 2)),
                          "action": rng.normal(size=(12, len(pairs)))}
                s = scores.make(uid, logits, pairs, v, w, ManyShot([0, 1], [0], pairs[:2]), f"SynthKitchens smoke "
                                f"seed {seed}")
                scores.write(runs / name / f"scores_{split}.npz", s)
    tables = seeds.table2s(runs, "smoke", [0, 1], config=config)
    for seed in (0, 1):
        expected = ensemble.run(runs, "smoke", tmp_path / f"out{seed}", seed=seed, config=config)
        pd.testing.assert_frame_equal(tables[seed], expected)
    assert not tables[0][["top1"]].equals(tables[1][["top1"]])  # two draws, two tables
    spread = seeds.table2_spread(tables)
    assert set(spread["name"]) == {"pair", "gsm-bninc-epic-smoke", "egoaco-res34-imagenet-smoke"}
    assert (spread["seeds"] == 2).all() and len(spread) == 3 * 2 * 3
    with pytest.raises(ensemble.MissingRunError):
        seeds.table2s(runs, "smoke", [0, 2], config=config)
