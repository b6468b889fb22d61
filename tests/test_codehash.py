"""egolib.codehash: which library code a piece of code depends on."""

import pytest

from egolib import codehash, runs


def test_imported_modules_finds_every_import_form_and_skips_magics():
    source = ("%matplotlib inline\n!ls\nimport numpy as np\nimport egolib.metrics\nfrom egolib import train, paper\n"
              "from egolib.config import RunConfig\ndef f():\n    from egolib.results import claims\n"
              "from egolib import RunConfig as R\n")
    assert codehash.imported_modules(source) == {"metrics", "train", "paper", "config", "results"}


def test_closure_is_transitive_and_training_does_not_depend_on_the_book():
    trained_by = codehash.closure(runs.TRAINED_BY)
    assert {"__init__", "train", "pretrain", "models", "gsm", "lsta", "runs", "codehash", "config"} <= set(trained_by)
    assert not {"book", "results", "paper"} & set(trained_by)  # editing the driver or the pages retrains nothing
    assert "results" in codehash.closure(["book"]) and "paper" in codehash.closure(["book"])


def test_source_hash_changes_with_the_bytes_of_a_module_in_the_closure(tmp_path, monkeypatch):
    for name, text in {"__init__": "", "a": "from egolib import b\n", "b": "X = 1\n", "c": "Y = 2\n"}.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.setattr(codehash, "PACKAGE_DIR", tmp_path)
    before = codehash.source_hash(["a"])
    (tmp_path / "c.py").write_text("Y = 3\n")  # not imported by a
    assert codehash.source_hash(["a"]) == before
    (tmp_path / "b.py").write_text("X = 2\n")
    assert codehash.source_hash(["a"]) != before


def test_unknown_module_is_a_clear_error():
    with pytest.raises(ValueError, match="no module egolib.nope"):
        codehash.closure(["nope"])
