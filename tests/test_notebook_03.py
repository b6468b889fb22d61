"""book/02_pretrain and book/03_train: parameters in parity with RunConfig, paired with their .py, and
03_train under papermill (a smoke run; misspelt or invalid parameters fail with RunConfig's message)."""

import ast
import dataclasses
import json
import typing
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import papermill as pm
import pytest

from egolib import epic, metrics, submission
from egolib.config import RunConfig

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = [ROOT / "book" / "02_pretrain.ipynb", ROOT / "book" / "03_train.ipynb"]
TRAIN = NOTEBOOKS[1]


def annotation(hint) -> str:
    """The papermill-readable spelling of a RunConfig type: ``str``, ``Optional[int]``."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return f"Optional[{args[0].__name__}]" if args else hint.__name__


PRETRAIN_PARAMETERS = ["preset", "dataset", "data_root", "seed", "device"]  # what 02_pretrain uses


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_runconfig_fields_typed_with_help(notebook):
    params = pm.inspect_notebook(str(notebook))
    hints = typing.get_type_hints(RunConfig)
    names = PRETRAIN_PARAMETERS if notebook == NOTEBOOKS[0] else [f.name for f in dataclasses.fields(RunConfig)]
    assert list(params) == names  # 03: every field in order, 02: the ones it uses; a papermill typo cannot hide
    for f in (f for f in dataclasses.fields(RunConfig) if f.name in names):
        p = params[f.name]
        assert p["inferred_type_name"] == annotation(hints[f.name]), f.name
        assert ast.literal_eval(p["default"]) == f.default, f.name
        assert p["help"], f"{f.name} has no help comment"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_ipynb_is_the_paired_py_without_outputs(notebook):
    nb = nbformat.read(notebook, as_version=4)
    paired = jupytext.read(notebook.with_suffix(".py"))
    assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in paired.cells]
    assert nb.metadata.kernelspec.name == "python3"
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"backbne": "res152"}, "unknown parameter(s) 'backbne'"),
        ({"backbone": "res999"}, "unknown backbone 'res999'; choose one of bninc, incv3"),
        ({"seed": "zero"}, "parameter 'seed' expects int, got str 'zero'"),
    ],
    ids=["misspelt-name", "invalid-choice", "wrong-type"],
)
def test_bad_parameters_stop_the_notebook_with_runconfigs_message(tmp_path, params, message):
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(TRAIN), str(tmp_path / "out.ipynb"), parameters={"preset": "smoke", **params},
                            cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    assert err.value.ename == "ValueError" and message in err.value.evalue
    assert not (tmp_path / "runs").exists()  # it stopped before training


@pytest.mark.slow
def test_train_notebook_smoke_run_from_an_empty_folder(tmp_path):
    out = tmp_path / "train.ipynb"
    pm.execute_notebook(str(TRAIN), str(out), parameters={"preset": "smoke", "backbone": "res34"},
                        cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    run = tmp_path / "runs" / "egoaco-res34-imagenet-smoke-s0"
    mtimes = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    assert {"config.json", "checkpoint.pt", "log.csv", "scores_s1.npz", "scores_s2.npz", "metrics.json",
            "submission.zip", "DONE"} <= set(mtimes)
    assert mtimes["DONE"] == max(mtimes.values())
    assert (tmp_path / "data" / "synthkitchens-smoke-s0" / "DONE").exists()  # generated because it was missing
    metrics = json.loads((run / "metrics.json").read_text())
    assert {"s1", "s2"} <= set(metrics) and metrics["pretrain"]["source"] == "synthetic stand-in: object images"

    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "\n".join(o.get("text", "") + str(o.get("data", {}).get("text/markdown", "")) for o in outputs)
    assert "Pretraining used:** pretrain=imagenet: synthetic stand-in: object images" in text
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # learning curves, verb confusion
    assert nb.metadata.papermill.parameters == {"preset": "smoke", "backbone": "res34"}


@pytest.mark.slow
def test_pretrain_notebook_caches_every_table1_backbone_at_smoke(tmp_path):
    out = tmp_path / "pretrain.ipynb"
    pm.execute_notebook(str(NOTEBOOKS[0]), str(out), parameters={"preset": "smoke"}, cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False)
    cached = {p.name.rsplit("-", 1)[0] for p in (tmp_path / "runs" / "pretrain").iterdir() if (p / "DONE").exists()}
    assert {"imagenet-res34-w0.125-smoke", "imagenet-res152-w0.125-smoke", "ig65m_kinetics-r2p1d34-w0.125-smoke",
            "epic-bninc-w0.125-smoke", "epic-incv3-w0.125-smoke"} <= cached
    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 2  # stand-in samples, learning curves


@pytest.mark.slow
def test_train_notebook_epic100_smoke_run_scores_validation_and_writes_the_challenge_zip(tmp_path):
    out = tmp_path / "train.ipynb"
    pm.execute_notebook(str(TRAIN), str(out), parameters={"dataset": "epic100", "preset": "smoke"},
                        cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    run = tmp_path / "runs" / "egoaco-res34-imagenet-smoke-epic100-s0"
    assert {"scores_validation.npz", "scores_test.npz", "metrics.json", "submission.zip", "DONE"} <= {
        p.name for p in run.iterdir()}
    ann = epic.load_epic100(tmp_path / "data" / "synthkitchens-epic100-smoke-s0" / "annotations")
    result = json.loads((run / "metrics.json").read_text())
    assert result["dataset"] == "epic100" and {"validation"} <= set(result) and "s1" not in result
    scores = np.load(run / "scores_validation.npz")
    assert scores["uid"].tolist() == ann.validation.narration_id.tolist()
    expected = metrics.epic100_metrics(scores["verb"], scores["noun"], ann.validation.verb_class,
                                       ann.validation.noun_class, ann.validation.participant_id.tolist(),
                                       ann.tail_verbs, ann.tail_nouns, ann.unseen_validation)
    assert result["validation"] == json.loads(json.dumps(expected))  # recomputed from the score file: the same
    assert set(expected) == {"overall", "tail", "unseen"}

    problems = submission.check_submission(run / "submission.zip", fmt="epic100",
                                           expected_ids={"test.json": ann.test.narration_id.tolist()},
                                           num_verbs=len(ann.verb_classes), num_nouns=len(ann.noun_classes))
    assert problems == []
    doc = submission.read_submission(run / "submission.zip", num_verbs=len(ann.verb_classes),
                                     num_nouns=len(ann.noun_classes))["test.json"]
    assert doc["version"] == "0.2" and {"sls_pt", "sls_tl", "sls_td"} <= set(doc)

    nb = nbformat.read(out, as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    html = "\n".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "tail verb top1" in html and "unseen action top1" in html  # the EPIC-100 table is shown
