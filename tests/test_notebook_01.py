"""book/01_data_prep runs under papermill at the smoke preset (in a scratch folder, never the checkout's data/),
generating SynthKitchens and checking a copy."""

from pathlib import Path

import nbformat
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "book" / "01_data_prep.ipynb"


@pytest.mark.slow
def test_data_prep_notebook_generates_smoke_and_checks_a_copy(tmp_path):
    params = {"preset": "smoke", "seed": 0}
    assert set(params) | {"data_root"} <= set(pm.inspect_notebook(str(NOTEBOOK)))  # papermill only warns on typos
    out = tmp_path / "01_data_prep.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out), parameters=params, cwd=str(tmp_path), kernel_name="python3",
                        progress_bar=False)
    nb = nbformat.read(out, as_version=4)
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "every referenced frame is present" in text
    assert "many-shot threshold" in text
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert images >= 5  # distributions, co-occurrence, kitchens, strips, reversal pair

    # the data_root branch (the one that checks a real EPIC-Kitchens-55 copy), pointed at the set just made
    copy = tmp_path / "data" / "synthkitchens-smoke-s0"
    assert (copy / "DONE").exists()
    out2 = tmp_path / "01_check.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out2), parameters={"data_root": str(copy)}, cwd=str(tmp_path),
                        kernel_name="python3", progress_bar=False)
    nb2 = nbformat.read(out2, as_version=4)
    text2 = "\n".join(o.get("text", "") for c in nb2.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert f"checking the EPIC-Kitchens-55 copy in {copy}" in text2 and "every referenced frame is present" in text2


@pytest.mark.slow
def test_data_prep_on_an_epic100_copy_without_its_tail_classes_names_the_file(tmp_path):
    from egolib import synthetic

    data = synthetic.generate(tmp_path / "data", preset="smoke", layout="epic100", progress=False)
    copy = tmp_path / "EPIC-KITCHENS"
    (copy / "annotations").mkdir(parents=True)
    for csv in (data / "annotations").glob("*.csv"):
        if csv.name != "EPIC_100_tail_verbs.csv":
            (copy / "annotations" / csv.name).symlink_to(csv)
    with pytest.raises(pm.PapermillExecutionError, match="lacks EPIC_100_tail_verbs.csv"):
        pm.execute_notebook(str(NOTEBOOK), str(tmp_path / "out.ipynb"), cwd=str(tmp_path), kernel_name="python3",
                            parameters={"dataset": "epic100", "data_root": str(copy)}, progress_bar=False)
