"""egolib's shape: imports run one way (no cycle, function-level imports included), and every registry names
exactly the vocabulary of ``egolib.config``."""

import ast
import dataclasses
import itertools
from pathlib import Path

import pytest

from egolib import backbones, config, models, pretrain, train
from egolib.config import RunConfig

PACKAGE = Path(__file__).resolve().parents[1] / "egolib"

# --------------------------------------------------------------------------------------------------
# Imports


def egolib_imports(source: str) -> set[str]:
    """The egolib modules a module's source imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("egolib.")}
        elif isinstance(node, ast.ImportFrom) and node.module == "egolib":
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("egolib."):
            found.add(node.module.split(".")[1])
    return found


def import_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {m: egolib_imports((PACKAGE / f"{m}.py").read_text()) & modules for m in modules}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None (depth-first search with a path stack)."""
    state: dict[str, str] = {}  # "open" on the current path, "done" when fully explored

    def visit(node: str, path: list[str]) -> list[str] | None:  # path: the import chain ending at node
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt, path + [nxt])):
                return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [start])):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles_through_function_level_imports():
    source = "import torch\nfrom egolib import runs\n\ndef f():\n    from egolib.train import fit\n"
    source += "    import egolib.models\n"
    assert egolib_imports(source) == {"runs", "train", "models"}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_egolib_imports_have_no_cycle():
    graph = import_graph()
    assert {"train", "pretrain", "models", "runs", "config"} <= set(graph)  # the walk sees the package
    assert "pretrain" in graph["train"]  # and the edges inside it
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle)}"


def test_the_lower_layers_import_no_training_code():
    graph = import_graph()
    assert graph["codehash"] == set()  # a leaf: stdlib only
    assert graph["runs"] <= {"codehash"} and graph["config"] == set() and graph["optim"] == set()
    assert "train" not in graph["pretrain"] and "runs" not in graph["backbones"]


# --------------------------------------------------------------------------------------------------
# One vocabulary: config.py names it, every registry agrees


def test_method_registries_name_config_methods():
    assert tuple(models.MODELS) == config.METHODS
    assert tuple(train.RECIPES) == config.METHODS
    assert tuple(config.VALID_BACKBONES) == config.METHODS


def test_backbone_registries_name_config_backbones():
    assert tuple(backbones.BACKBONES) == config.BACKBONES
    assert tuple(backbones.INPUTS) == tuple(backbones.NORMALIZATION) == config.BACKBONES
    assert set(backbones.PRETRAINED_FILES) <= set(config.BACKBONES)
    aliases = {p for files in backbones.PRETRAINED_FILES.values() for p in files}
    # every alias is a pretrain name, except the IG-65M file before Kinetics fine-tuning (build_backbone only)
    assert aliases - set(config.PRETRAINS) == {"ig65m"}
    assert all(set(valid) <= set(config.BACKBONES) for valid in config.VALID_BACKBONES.values())


def test_paper_input_sizes_are_the_backbone_tables():
    for backbone in config.BACKBONES:
        cfg = RunConfig.from_params({"method": "tsn", "backbone": backbone, "preset": "paper", "data_root": "/x"})
        facts = backbones.INPUTS[backbone]
        assert cfg.input_size == facts.input_size and cfg.snippet_length == (3 if facts.is_3d else 1)
        assert train.scale_size(cfg) == backbones.scale_size(facts.input_size) == build_spec(backbone).scale_size
        assert train.normalization(cfg) is build_spec(backbone).norm is facts.norm


def build_spec(backbone: str) -> backbones.BackboneSpec:
    return backbones.build_backbone(backbone, width=0.125).spec


def test_recipes_and_presets_name_config_presets():
    assert tuple(pretrain.STANDIN_RECIPES) == config.PRESETS
    assert config.CHOICES["preset"] is config.PRESETS


def test_egoaco_options_are_named_once():
    assert models.EGOACO_CLONES is config.EGOACO_CLONES is config.CHOICES["egoaco_clone"]
    assert models.EGOACO_WIRINGS is config.EGOACO_WIRINGS


@pytest.mark.parametrize("preset", config.PRESETS)
def test_every_preset_fills_every_field_of_every_valid_pair(preset):
    extra = {"data_root": "/nonexistent/EPIC"} if preset == "paper" else {}
    for method in config.METHODS:
        for backbone in config.VALID_BACKBONES[method]:
            cfg = RunConfig.from_params({"method": method, "backbone": backbone, "preset": preset, **extra})
            unset = [f.name for f in dataclasses.fields(cfg) if getattr(cfg, f.name) is None]
            assert set(unset) <= {"data_root", "run_dir"}, (method, backbone, unset)
            assert len(train.recipe(cfg)) == cfg.stages
            assert cfg.pretrain in config.PRETRAINS and cfg.test_crop in config.TEST_CROPS


def test_invalid_pairs_are_refused_by_config_and_models_alike():
    for method, backbone in itertools.product(config.METHODS, config.BACKBONES):
        if backbone in config.VALID_BACKBONES[method]:
            continue
        with pytest.raises(ValueError, match="does not take backbone"):
            RunConfig.from_params({"method": method, "backbone": backbone})
        with pytest.raises(ValueError, match="does not take backbone"):
            models.build_model(method, backbone, 3, 4, 5, width=0.125)
