"""Publishing the book: ``make publish`` refuses an incomplete build and puts the HTML on gh-pages; environment.yml
(conda, Binder) lists what pyproject.toml needs; _config.yml gives every notebook page its launch and download
buttons, which ``_ext/egobook_launch.py`` points at the committed notebooks in ``book/``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

from egolib import publish
from egolib.book import LEDGER

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "_ext"))

import egobook_launch  # noqa: E402

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest's own TOML reader
    import tomli as tomllib


# --------------------------------------------------------------------------------------------------
# make publish


def built_book(root: Path, steps: list[dict] | None = None, html: bool = True) -> Path:
    """A book as ``make book`` leaves it: the ledger, the finished run folders and ``_build/html``."""
    steps = steps if steps is not None else [
        {"name": "01_data_prep", "status": "reused", "error": None},
        {"name": "train gsm-bninc-epic-smoke-s0", "status": "run", "error": None},
        {"name": "html", "status": "run", "error": None},
    ]
    for step in steps:
        if step["name"].startswith("train "):
            run = root / "runs" / step["name"].removeprefix("train ")
            run.mkdir(parents=True, exist_ok=True)
            (run / "DONE").write_text("{}")
    ledger = root / LEDGER
    ledger.parent.mkdir(parents=True, exist_ok=True)
    ledger.write_text(json.dumps({"start": "2026-01-01T00:00:00+00:00", "html": html, "steps": steps}))
    (root / "_build" / "html").mkdir(parents=True, exist_ok=True)
    (root / "_build" / "html" / "index.html").write_text("<html>the book</html>")
    return root


def test_a_complete_build_can_be_published(tmp_path: Path) -> None:
    assert publish.problems(built_book(tmp_path)) == []


def test_no_build_cannot_be_published(tmp_path: Path) -> None:
    assert publish.problems(tmp_path) == [f"no build ledger at {LEDGER}: build the book first (`make book`)"]


def test_failures_and_missing_runs_are_refused(tmp_path: Path) -> None:
    root = built_book(tmp_path, [
        {"name": "04_gsm_gates", "status": "failed", "error": "CellExecutionError: KeyError 'verb'"},
        {"name": "results and run index", "status": "blocked", "error": None},
        {"name": "train egoaco-res34-imagenet-smoke-s0", "status": "reused", "error": None},
    ])
    (root / "runs" / "egoaco-res34-imagenet-smoke-s0" / "DONE").unlink()  # the folder was removed after the build
    found = publish.problems(root)
    assert found[:3] == [
        "step '04_gsm_gates' failed in the last build: CellExecutionError: KeyError 'verb'",
        "step 'results and run index' did not run: a step it needs failed",
        "run egoaco-res34-imagenet-smoke-s0 is missing: runs/egoaco-res34-imagenet-smoke-s0/DONE does not exist "
        "(the folder was removed or never finished)",
    ]
    assert "`make book`" in found[-1]


def test_a_build_without_its_html_is_refused(tmp_path: Path) -> None:
    root = built_book(tmp_path, html=False)
    assert "the last build skipped the HTML (--no-html)" in publish.problems(root)
    root = built_book(tmp_path)
    ledger = json.loads((root / LEDGER).read_text())
    ledger["start"] = "2999-01-01T00:00:00+00:00"  # the HTML is older than the build that wrote the ledger
    (root / LEDGER).write_text(json.dumps(ledger))
    assert any("predates the last build" in p for p in publish.problems(root))
    (root / "_build" / "html" / "index.html").unlink()
    assert "_build/html/index.html does not exist" in publish.problems(root)


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, check=True, capture_output=True, text=True).stdout


def test_publish_commits_the_html_onto_gh_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GIT_AUTHOR", "GIT_COMMITTER"):  # git and ghp-import commit as someone, whatever git config says
        monkeypatch.setenv(f"{name}_NAME", "t")
        monkeypatch.setenv(f"{name}_EMAIL", "t@t")
    root = built_book(tmp_path)
    git(root, "init", "-q", "-b", "main")
    (root / "README.md").write_text("a book\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "start")
    publish.publish(root, push=False)
    assert sorted(git(root, "ls-tree", "--name-only", "gh-pages").split()) == [".nojekyll", "index.html"]
    assert git(root, "show", "gh-pages:index.html") == "<html>the book</html>"
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"  # the work tree is left alone
    (root / "runs" / "gsm-bninc-epic-smoke-s0" / "DONE").unlink()
    with pytest.raises(RuntimeError, match=r"not publishing the book:\n- run gsm-bninc-epic-smoke-s0 is missing"):
        publish.publish(root, push=False)


# --------------------------------------------------------------------------------------------------
# environment.yml (conda users, Binder) against pyproject.toml


def pip_requirements() -> tuple[dict[str, Requirement], str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    editable = [line for line in pip if line.startswith("-e ")]
    assert len(editable) == 1, "environment.yml installs egolib once, with `-e .[extras]`"
    reqs = {}
    for line in pip:
        if not line.startswith("-"):
            req = Requirement(line)
            reqs[req.name.lower()] = req
    return reqs, editable[0]


def test_environment_lists_what_pyproject_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs, editable = pip_requirements()
    needed = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["book"]]
    for req in needed:
        listed = reqs.get(req.name.lower())
        assert listed is not None, f"environment.yml does not list {req} (pyproject.toml needs it)"
        assert listed.specifier == req.specifier, f"environment.yml has {listed}, pyproject.toml {req}"
    assert Requirement("egolib" + editable.removeprefix("-e .")).extras == set(project["optional-dependencies"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    python = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python="))
    assert Requirement(f"python{project['requires-python']}").specifier.contains(python.removeprefix("python="))


# --------------------------------------------------------------------------------------------------
# _config.yml: launch buttons, downloads, the repository


def test_config_gives_launch_download_and_repository_buttons() -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert config["launch_buttons"]["notebook_interface"] == "jupyterlab"
    repo = config["repository"]
    assert repo["url"].startswith("https://github.com/") and repo["branch"] == "main"
    assert config["html"]["use_repository_button"] and config["html"]["use_issues_button"]
    assert config["sphinx"]["local_extensions"]["egobook_launch"] == "_ext"
    assert (ROOT / "environment.yml").is_file()  # Binder reads it at the repository root
    try:
        origin = subprocess.run(["git", "remote", "get-url", "origin"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return  # a clone without a remote: nothing to compare
    if "github.com" in origin:
        assert origin.removesuffix(".git").rsplit("github.com", 1)[-1].lstrip(":/") == \
            repo["url"].removeprefix("https://github.com/"), "repository.url in _config.yml is not this repository"


class FakeApp:
    def __init__(self, srcdir: Path) -> None:
        self.srcdir = str(srcdir)
        self.env = self

    def doc2path(self, pagename: str) -> str:
        return str(Path(self.srcdir) / f"{pagename}.ipynb")


def executed_page(root: Path) -> None:
    (root / "book").mkdir()
    (root / "book" / "03_train.ipynb").write_text("{}")
    (root / "book" / "03_train.py").write_text("# %%\n")
    page = root / "runs" / "gsm-bninc-epic-demo-s0" / "train.ipynb"
    page.parent.mkdir(parents=True)
    page.write_text(json.dumps({"cells": [], "metadata": {"papermill": {
        "input_path": str(root / "book" / "03_train.ipynb"),
        "parameters": {"method": "gsm", "backbone": "bninc", "seed": 0, "lr": 0.01, "data_root": None}}}}))


def theme_buttons() -> list[dict]:
    """The header buttons as sphinx-book-theme 1.x builds them for ``runs/gsm-bninc-epic-demo-s0/train``."""
    return [
        {"label": "download-buttons", "type": "group", "buttons": [
            {"label": "download-source-button", "text": ".ipynb",
             "url": "../../_sources/runs/gsm-bninc-epic-demo-s0/train.ipynb"},
            {"label": "download-pdf-button", "text": ".pdf"}]},
        {"label": "launch-buttons", "type": "group", "buttons": [
            {"text": "Binder", "url": "https://mybinder.org/v2/gh/egobook/egobook/main?urlpath=lab/tree/"
                                      "runs/gsm-bninc-epic-demo-s0/train.ipynb"}]},
    ]


def test_launch_and_downloads_point_at_the_committed_notebook(tmp_path: Path) -> None:
    executed_page(tmp_path)
    context = {"header_buttons": theme_buttons(), "pathto": lambda *_: "../../_sources",
               "body": "<section><h1>GSM, BN-Inception</h1><p>log</p></section>"}
    egobook_launch.point_at_sources(FakeApp(tmp_path), "runs/gsm-bninc-epic-demo-s0/train", "page.html", context,
                                    None)
    downloads, launch = context["header_buttons"]
    assert [b["text"] for b in downloads["buttons"]] == [".ipynb", ".py", ".pdf"]
    assert downloads["buttons"][1]["url"] == "../../_sources/book/03_train.py"
    assert launch["buttons"][0]["url"] == ("https://mybinder.org/v2/gh/egobook/egobook/main?urlpath=lab/tree/"
                                           "book/03_train.ipynb")
    command = (".venv/bin/papermill book/03_train.ipynb runs/gsm-bninc-epic-demo-s0/train.ipynb -r method gsm "
               "-r backbone bninc -p seed 0 -p lr 0.01 -p data_root None")
    assert context["body"].startswith("<section><h1>GSM, BN-Inception</h1><div class=\"admonition note")
    assert f"<pre>{command}</pre>" in context["body"]


def test_pages_not_executed_from_book_are_left_alone(tmp_path: Path) -> None:
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "00_intro.ipynb").write_text(json.dumps({"cells": [], "metadata": {}}))
    context = {"header_buttons": theme_buttons(), "body": "<h1>Intro</h1>"}
    egobook_launch.point_at_sources(FakeApp(tmp_path), "book/00_intro", "page.html", context, None)
    assert context["header_buttons"] == theme_buttons() and context["body"] == "<h1>Intro</h1>"


def test_py_pairs_are_copied_into_the_html(tmp_path: Path) -> None:
    executed_page(tmp_path)
    (tmp_path / "book" / "helper.py").write_text("# not a notebook\n")
    app = FakeApp(tmp_path)
    app.outdir = str(tmp_path / "_build" / "html")
    app.builder = type("Builder", (), {"format": "html"})()
    egobook_launch.copy_py_pairs(app, None)
    assert sorted(p.name for p in (tmp_path / "_build" / "html" / "_sources" / "book").iterdir()) == ["03_train.py"]


def test_reproduce_command_keeps_strings_raw() -> None:
    cmd = egobook_launch.reproduce_command("book/01_data_prep.ipynb", "runs/book/01_data_prep.ipynb",
                                           {"preset": "demo", "seed": 1, "data_root": "/data/EPIC KITCHENS"})
    assert cmd == (".venv/bin/papermill book/01_data_prep.ipynb runs/book/01_data_prep.ipynb -r preset demo "
                   "-p seed 1 -r data_root '/data/EPIC KITCHENS'")


def test_check_cli_exit_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(publish, "ROOT", tmp_path)
    assert publish.main(["--check"]) == 1
    assert "no build ledger" in capsys.readouterr().err
    built_book(tmp_path)
    assert publish.main(["--check"]) == 0
    assert "can be published" in capsys.readouterr().out
