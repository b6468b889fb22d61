"""Publish the built book: ``make publish`` puts ``_build/html`` on the ``gh-pages`` branch (ghp-import) and pushes
it, for people without GitHub Actions; the Pages workflow runs the same check before it deploys.

A book is published only when its last build (``runs/book/build.json``, the ledger ``make book`` writes) is
complete: every step run or reused (none failed or blocked by a failure), every training run's folder finished
(``runs/<run>/DONE``), and the HTML built by that build (``_build/html/index.html``, no older than the build's
start).

Usage::

    python -m egolib.publish --check           # say whether the book can be published; exit 1 if not
    python -m egolib.publish                   # check, then ghp-import -n -f onto gh-pages and push to origin
    python -m egolib.publish --no-push         # check, then commit onto the local gh-pages branch only
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from egolib.book import LEDGER, ROOT, RUNS

HTML = "_build/html"


def problems(root: str | Path = ROOT) -> list[str]:
    """Why the book at ``root`` cannot be published; empty when it can.

    Each problem names what is wrong and the command that fixes it.
    """
    root = Path(root)
    ledger_path = root / LEDGER
    if not ledger_path.is_file():
        return [f"no build ledger at {LEDGER}: build the book first (`make book`)"]
    try:
        ledger = json.loads(ledger_path.read_text())
        steps = ledger["steps"]
    except (ValueError, KeyError, TypeError) as err:
        return [f"{LEDGER} is not a build ledger ({err}): build the book again (`make book`)"]
    found = []
    for step in steps:
        name, status = step.get("name", "?"), step.get("status")
        if status == "failed":
            found.append(f"step {name!r} failed in the last build: {step.get('error') or 'no message'}")
        elif status == "blocked":
            found.append(f"step {name!r} did not run: a step it needs failed")
        elif status not in ("run", "reused"):
            found.append(f"step {name!r} has status {status!r} in {LEDGER} (expected run or reused)")
        if name.startswith("train ") and status in ("run", "reused"):
            run = name.removeprefix("train ")
            if not (root / RUNS / run / "DONE").is_file():
                found.append(f"run {run} is missing: {RUNS}/{run}/DONE does not exist (the folder was removed or "
                             "never finished)")
    if not ledger.get("html", False):
        found.append("the last build skipped the HTML (--no-html)")
    index = root / HTML / "index.html"
    if not index.is_file():
        found.append(f"{HTML}/index.html does not exist")
    elif ledger.get("start"):
        built = datetime.fromtimestamp(index.stat().st_mtime).astimezone()
        if built < datetime.fromisoformat(ledger["start"]):
            found.append(f"{HTML} predates the last build (started {ledger['start']}): it is an older book")
    if found:
        found.append("rebuild the book (`make book`, which re-runs only what is stale) and publish again")
    return found


def publish(root: str | Path = ROOT, push: bool = True, branch: str = "gh-pages", remote: str = "origin") -> None:
    """Commit ``_build/html`` as the whole content of ``branch`` (with ``.nojekyll``: GitHub Pages must serve the
    ``_static`` folders) and push it to ``remote`` (force: the branch holds the latest book only).

    Raises:
        RuntimeError: the book cannot be published (``problems``), or ghp-import failed.
    """
    root = Path(root)
    found = problems(root)
    if found:
        raise RuntimeError("not publishing the book:\n- " + "\n- ".join(found))
    ghp_import = Path(sys.executable).with_name("ghp-import")
    cmd = [str(ghp_import), "--no-jekyll", "--force", "--branch", branch, "--remote", remote,
           "--message", f"The book as built on {datetime.now().astimezone().isoformat(timespec='seconds')}"]
    if push:
        cmd.append("--push")
    if not ghp_import.exists():
        raise RuntimeError(f"{ghp_import} does not exist: install the book extra (`make install`)")
    proc = subprocess.run([*cmd, HTML], cwd=root, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if proc.returncode:
        raise RuntimeError(f"ghp-import failed (exit {proc.returncode}); its message is above")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether the book can be published")
    parser.add_argument("--no-push", action="store_true", help="commit onto the local branch, do not push")
    parser.add_argument("--branch", default="gh-pages")
    parser.add_argument("--remote", default="origin")
    args = parser.parse_args(argv)
    found = problems(ROOT)
    if found:
        print("the book cannot be published:\n- " + "\n- ".join(found), file=sys.stderr)
        return 1
    if args.check:
        print(f"the book in {HTML} can be published: its last build ({LEDGER}) ran or reused every step")
        return 0
    publish(ROOT, push=not args.no_push, branch=args.branch, remote=args.remote)
    where = f"pushed to {args.remote}/{args.branch}" if not args.no_push else f"committed onto {args.branch}"
    print(f"the book in {HTML} is {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
