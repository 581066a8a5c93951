"""The template's Jinja extension, listed in cookiecutter.json's `_extensions`.

cookiecutter and cruft put the template's directory on `sys.path` while they render, so this package is found
without being installed; the template's tests do the same (tests/support.py).

`tojson` is the one way free text enters YAML, TOML, JSON and the hooks. Jinja's own filter writes a character
outside the Basic Multilingual Plane (an emoji, say) as a UTF-16 surrogate pair, `"\\ud83d\\ude95"`: valid JSON,
but TOML rejects it and YAML reads two broken characters. This `tojson` is Jinja's, except that such a pair is
written as the character itself, which all three formats accept in a double-quoted string. Everything else is
unchanged: control characters, quotes, backslashes and non-ASCII characters of the BMP stay escaped.

`template_root()` is the directory of the template being rendered, for the hooks: cookiecutter runs each hook
rendered, as a Python process of its own started from a temporary file, so a hook finds this package only through
the path rendered into it. cruft's context has no `_repo_dir`, and `_template` may be a URL; and one process may
render a template other than the one this module was imported from (scripts/bake imports the working tree's rules,
then cruft renders a clone of HEAD; a cruft update renders two commits with the first one's module). cookiecutter
renders each hook from the template's directory, where it found the hook: that directory it is.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent

# An escaped backslash (kept as it is) or a surrogate pair escape (replaced by its character). Matching `\\`
# first keeps a literal backslash followed by "ud83d" in the answer from being mistaken for an escape.
_ESCAPE = re.compile(r"\\\\|\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})")


def _astral(match: re.Match[str]) -> str:
    if match[1] is None:
        return match[0]
    high, low = int(match[1], 16), int(match[2], 16)
    return chr(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))


def json_literal(value: Any, environment: Environment | None = None, indent: int | None = None) -> str:
    """`value` as JSON, valid inside TOML and YAML too: Jinja's tojson without surrogate pair escapes."""
    policies = environment.policies if environment is not None else {}
    dumps = policies.get("json.dumps_function")
    kwargs = dict(policies.get("json.dumps_kwargs", {"sort_keys": True}))
    if indent is not None:
        kwargs["indent"] = indent
    return _ESCAPE.sub(_astral, str(htmlsafe_json_dumps(value, dumps=dumps, **kwargs)))


class TemplateExtension(Extension):
    """Replaces Jinja's `tojson` filter with `json_literal`; adds `template_root()` for the hooks."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["tojson"] = lambda value, indent=None: Markup(json_literal(value, environment, indent))
        environment.globals["template_root"] = template_root


def template_root() -> str:
    """The template being rendered: the working directory when it is one (cookiecutter renders hooks from there),
    else the template this module belongs to."""
    here = Path.cwd()
    is_template = (here / "cookiecutter.json").is_file() and (here / "template_rules").is_dir()
    return str(here if is_template else TEMPLATE_ROOT)
