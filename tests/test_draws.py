"""Several SynthKitchens draws side by side: each seed has its own data folder, its runs read it and record it,
a second draw leaves the first untouched, and pretraining caches never mix draws. Also the book driver's
``--seeds`` loop."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from egolib import book, pretrain, synthetic, train
from egolib.config import RunConfig


def checksums(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def smoke(seed: int, **params) -> RunConfig:
    """The cheapest complete run: TSN, ResNet-34 from scratch (no pretraining to make), one test clip."""
    return RunConfig.from_params({"method": "tsn", "backbone": "res34", "pretrain": "scratch", "preset": "smoke",
                                  "seed": seed, "device": "cpu", "test_clips": 1, **params})


def test_each_seed_names_its_own_data_folder_and_pretraining_cache():
    a, b = smoke(0), smoke(1)
    assert (str(a.dataset_path), str(b.dataset_path)) == ("data/synthkitchens-smoke-s0", "data/synthkitchens-smoke-s1")
    assert RunConfig.from_params({"preset": "smoke", "seed": 1, "data_root": "/x"}).dataset_path == Path("/x")
    # an EPIC backbone is trained on the run's own draw (with its seed): one cache per draw
    epic = [RunConfig.from_params({"method": "tsn", "backbone": "bninc", "preset": "smoke", "seed": s})
            for s in (0, 1)]
    keys = [pretrain.cache_key(c) for c in epic]
    assert [k["data"] for k in keys] == [{"dataset": "synthkitchens-smoke-s0", "generator_seed": 0},
                                         {"dataset": "synthkitchens-smoke-s1", "generator_seed": 1}]
    assert [k["run"]["seed"] for k in keys] == [0, 1]
    assert pretrain.resolve(epic[0]).path != pretrain.resolve(epic[1]).path
    # GSM + EgoACO starts from the GSM run of its own seed
    gsm = [pretrain.cache_key(RunConfig.from_params({"method": "gsm_egoaco", "backbone": "bninc", "preset": "smoke",
                                                     "seed": s}))["run"] for s in (0, 1)]
    assert [g["seed"] for g in gsm] == [0, 1]
    # the stand-ins play published weights: one for every seed
    standin = [RunConfig.from_params({"method": "tsn", "backbone": "res34", "preset": "smoke", "seed": s})
               for s in (0, 1)]
    assert pretrain.resolve(standin[0]).path == pretrain.resolve(standin[1]).path


@pytest.mark.slow
def test_two_seeds_generate_side_by_side_and_runs_read_their_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = smoke(0)
    train.run(first, progress=False)  # generates data/synthkitchens-smoke-s0 because it is missing
    before = {p: checksums(p) for p in (first.dataset_path, first.run_path)}

    second = smoke(1)
    train.run(second, progress=False)  # the other draw, beside the first: no "generated with other arguments"
    assert {p: checksums(p) for p in before} == before  # seed 0's data and run are untouched

    for cfg in (first, second):
        root = tmp_path / cfg.dataset_path
        draw = {"preset": "smoke", "seed": cfg.seed, "generator_version": synthetic.GENERATOR_VERSION,
                "layout": "epic55"}
        assert synthetic.read_draw(root) == draw | {"complete": True}
        metrics = json.loads((cfg.run_path / "metrics.json").read_text())
        assert metrics["data"] == {"path": str(cfg.dataset_path)} | draw
        saved = json.loads((cfg.run_path / "config.json").read_text())
        assert saved["data_path"] == str(cfg.dataset_path) and saved["seed"] == cfg.seed
        s1 = pd.read_csv(root / "annotations" / "EPIC_test_s1_labels.csv")
        assert sorted(map(int, np.load(cfg.run_path / "scores_s1.npz")["uid"])) == sorted(s1["uid"])

    labels = [pd.read_csv(tmp_path / c.dataset_path / "annotations" / "EPIC_train_action_labels.csv")
              for c in (first, second)]
    assert not labels[0][["verb_class", "noun_class"]].equals(labels[1][["verb_class", "noun_class"]])  # two draws
    s1 = [pd.read_csv(tmp_path / c.dataset_path / "annotations" / "EPIC_test_s1_labels.csv") for c in (first, second)]
    assert set(s1[0]["uid"]) != set(s1[1]["uid"])  # so the uid check above tells the draws apart


def test_book_seeds_trains_every_draw_and_builds_the_first_seeds_pages(monkeypatch, tmp_path):
    ran = []

    def fake_run_steps(steps, jobs=1):
        ran.append(steps)
        for s in steps:
            s.status = "run"
        return steps

    monkeypatch.setattr(book, "run_steps", fake_run_steps)
    monkeypatch.setattr(book, "summary_table", lambda steps: "")
    monkeypatch.setattr(book, "LEDGER", str(tmp_path / "build.json"))  # not the checkout's runs/book/
    names = {s: [RunConfig.from_params({**v, "preset": "smoke", "seed": s}).name for v in book.variants()]
             for s in (0, 2)}
    assert book.main(["--preset", "smoke", "--seeds", "0,2", "--no-html"]) == 0
    steps = {s.name: s for s in ran[-1]}
    assert len(steps) == len(ran[-1])  # every step name once
    assert {f"train {n}" for n in names[0] + names[2]} <= set(steps)  # both draws' runs
    pages = [n for n in steps if not n.startswith("train ")]
    assert "01_data_prep" in pages and all(not n.endswith("-s2") for n in pages)  # one book: the first seed's
    for n in names[2]:
        assert "01_data_prep" in steps[f"train {n}"].after  # the runs make their draw's data and pretraining
    assert set(steps["results and run index"].after).isdisjoint({f"train {n}" for n in names[2]})
    gsm_egoaco = steps["train gsm_egoaco-bninc-epic-smoke-s2"]
    assert "train gsm-bninc-epic-smoke-s2" in gsm_egoaco.after  # its own draw's GSM run

    assert book.main(["--preset", "smoke", "--seed", "1", "--no-html"]) == 0
    assert all(n.endswith("-s1") for n in (s.name for s in ran[-1]) if n.startswith("train "))
    with pytest.raises(SystemExit):
        book.main(["--preset", "smoke", "--seeds", "0,0"])


def test_book_seeds_gives_chapter_06_every_draw_and_the_others_one(monkeypatch):
    draws = book.Book(preset="smoke", seed=0, draws=(0, 2))
    steps = {s.name: s for s in draws.steps()}
    others = {f"train {n}" for n in book.Book(preset="smoke", seed=2).run_names}
    assert others <= set(steps["06_ensembles"].after)  # it averages every draw's runs
    assert others.isdisjoint(steps["04_gsm_gates"].after)  # the first draw's pages only
    ensembles, gates = (book.ROOT / "book" / f"{c}.ipynb" for c in ("06_ensembles", "04_gsm_gates"))
    assert draws.chapter_parameters(ensembles)["seeds"] == "0,2"
    assert "seeds" not in draws.chapter_parameters(gates)
    assert "seeds" not in book.Book(preset="smoke", seed=0).chapter_parameters(ensembles)  # one draw: as before
    assert {f"train {n}" for n in draws.draw_run_names()} == others
    read = []  # the run folders that 06's key hashes: every draw's
    monkeypatch.setattr(book, "run_folder_files", lambda names: read.extend(names) or [])
    monkeypatch.setattr(book.Book, "_execute_if_stale", lambda self, step, nb, out, params, key, title=None: key())
    draws.run_chapter(next(c for c in book.CHAPTERS if c.stem == "06_ensembles"), steps["06_ensembles"])
    assert set(read) == set(draws.run_names) | {n[len("train "):] for n in others}
