"""Sphinx hooks for the book's HTML pages, so that a browser console stays free of errors.

- Jupyter Book 1 registers the inline settings scripts of sphinx-thebe and sphinx-togglebutton twice, and the
  second ``const THEBE_JS_URL = ...`` is a SyntaxError in the browser: each script goes into a page once.
- With no colour mode set, the theme logs "Got invalid theme mode" on a reader's first visit: the mode starts as
  "auto" (follow the system), which is what the theme falls back to anyway.
"""

from __future__ import annotations

from typing import Any


def _one_of_each_script(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    seen, unique = set(), []
    for script in context.get("script_files", []):
        attributes = sorted((k, str(v)) for k, v in getattr(script, "attributes", {}).items())
        key = (str(getattr(script, "filename", script) or ""), tuple(attributes))
        if key not in seen:  # the same file or inline body, whatever its priority (None and "" name no file)
            seen.add(key)
            unique.append(script)
    context["script_files"] = unique


# Runs before the theme's own script reads the mode (sphinx-book-theme has no `default_mode` option).
DEFAULT_MODE = 'if (!document.documentElement.dataset.mode) { document.documentElement.dataset.mode = "auto"; }'


def setup(app: Any) -> dict[str, Any]:
    app.add_js_file(None, body=DEFAULT_MODE, priority=100)
    app.connect("html-page-context", _one_of_each_script, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
