"""Launch and download buttons that point at the notebooks in ``book/``, and the command that reproduces a page.

The book's pages are executed copies (``runs/book/<chapter>.ipynb``, ``runs/<run>/train.ipynb``) that the repository
does not hold: the theme's Binder link would open a file a fresh clone lacks. For every page that papermill executed
from ``book/<stem>.ipynb`` (its ``papermill.input_path``):

- the Binder link opens ``book/<stem>.ipynb`` (the committed notebook, without outputs) in JupyterLab;
- the download menu keeps the executed ``.ipynb`` and adds the notebook's ``.py`` pair (py:percent, the source of
  truth), copied into the HTML as ``_sources/book/<stem>.py``;
- a note under the title gives the papermill command that reproduces the page from a clone (after ``make install``).
"""

from __future__ import annotations

import html
import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Any


def executed_from(notebook: Path, srcdir: Path) -> tuple[str, dict[str, Any]] | None:
    """``("book/<stem>.ipynb", parameters)`` for a notebook papermill executed from ``book/``, else None."""
    if notebook.suffix != ".ipynb" or not notebook.is_file():
        return None
    meta = json.loads(notebook.read_text()).get("metadata", {}).get("papermill")
    if not meta or not meta.get("input_path"):
        return None
    name = Path(meta["input_path"]).name
    if not (srcdir / "book" / name).is_file():
        return None
    return f"book/{name}", dict(meta.get("parameters") or {})


def reproduce_command(source: str, output: str, parameters: dict[str, Any]) -> str:
    """The papermill command that executes ``source`` into ``output`` with ``parameters``.

    Strings go with ``-r`` (papermill keeps them raw: ``-p seed 1`` would be an int, ``-r name 1`` stays ``"1"``);
    numbers, booleans and None with ``-p``.
    """
    words = [".venv/bin/papermill", source, output]
    for name, value in parameters.items():
        if isinstance(value, str):
            words += ["-r", name, value]
        elif value is None or isinstance(value, bool | int | float):
            words += ["-p", name, str(value)]
        else:
            words += ["-y", json.dumps({name: value})]
    return shlex.join(words)


def _binder_url(url: str, source: str) -> str:
    """The theme's Binder link with its ``urlpath`` pointing at ``source`` instead of the executed page."""
    base, sep, _ = url.partition("?urlpath=")
    if not sep:
        return url
    return f"{base}?urlpath=lab/tree/{source}"


def _group(context: dict, label: str) -> dict | None:
    for button in context.get("header_buttons", []):
        if button.get("label") == label:
            return button
    return None


def point_at_sources(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Runs after sphinx-book-theme built its header buttons (priority 501): see the module docstring."""
    srcdir = Path(app.srcdir)
    found = executed_from(Path(app.env.doc2path(pagename)), srcdir)
    if found is None:
        return
    source, parameters = found
    launch = _group(context, "launch-buttons")
    for button in (launch or {}).get("buttons", []):
        if button.get("text") == "Binder":
            button["url"] = _binder_url(button["url"], source)
    pair = Path(source).with_suffix(".py")
    downloads = _group(context, "download-buttons")
    if downloads is not None and (srcdir / pair).is_file():
        downloads["buttons"].insert(1, {
            "type": "link",
            "url": f"{context['pathto']('_sources', 1)}/{pair}",
            "text": ".py",
            "tooltip": f"Download {pair} (the notebook's py:percent pair)",
            "icon": "fas fa-code",
            "label": "download-py-pair-button",
        })
    output = Path(os.path.relpath(app.env.doc2path(pagename), srcdir)).as_posix()
    command = html.escape(reproduce_command(source, output, parameters))
    note = (f'<div class="admonition note reproduce-page"><p class="admonition-title">Reproduce this page</p>'
            f"<p>From a clone, after <code>make install</code>:</p><pre>{command}</pre></div>")
    body = context.get("body", "")
    end = body.find("</h1>")
    context["body"] = body[:end + 5] + note + body[end + 5:] if end >= 0 else note + body


def copy_py_pairs(app: Any, exception: Exception | None) -> None:
    """Copy each ``book/<stem>.py`` that has a ``.ipynb`` pair into the HTML's ``_sources/book/``."""
    if exception is not None or app.builder.format != "html":
        return
    srcdir, out = Path(app.srcdir), Path(app.outdir) / "_sources" / "book"
    for pair in sorted((srcdir / "book").glob("*.py")):
        if pair.with_suffix(".ipynb").is_file():
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy2(pair, out / pair.name)


def setup(app: Any) -> dict[str, Any]:
    app.connect("html-page-context", point_at_sources, priority=600)
    app.connect("build-finished", copy_py_pairs)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
