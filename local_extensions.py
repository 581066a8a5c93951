"""Jinja extensions of this template, listed in cookiecutter.json's `_extensions`.

cookiecutter and cruft put the template's directory on `sys.path` while they render, so this module is found
without being installed; the template's tests do the same (tests/support.py).

`tojson` is the one way free text enters YAML, TOML, JSON and the hooks. Jinja's own filter writes a character
outside the Basic Multilingual Plane (an emoji, say) as a UTF-16 surrogate pair, `"\\ud83d\\ude95"`: valid JSON,
but TOML rejects it and YAML reads two broken characters. This `tojson` is Jinja's, except that such a pair is
written as the character itself, which all three formats accept in a double-quoted string. Everything else is
unchanged: control characters, quotes, backslashes and non-ASCII characters of the BMP stay escaped.
"""

from __future__ import annotations

import contextlib
import fnmatch
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, pass_context
from jinja2.ext import Extension
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

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


class TojsonExtension(Extension):
    """Replaces Jinja's `tojson` filter with `json_literal`."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["tojson"] = lambda value, indent=None: Markup(json_literal(value, environment, indent))


class BytecodeCacheExtension(Extension):
    """Keeps compiled templates in Jinja's own per-user cache (FileSystemBytecodeCache, in the temp directory,
    created 0700 and checked to be the user's), keyed by each file's checksum: a second bake, cruft's second
    render of an update, and every bake of a test session compile nothing they compiled before."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        if environment.bytecode_cache is None:
            # RuntimeError: Jinja found no private temp directory it trusts; then every bake compiles.
            with contextlib.suppress(RuntimeError):
                environment.bytecode_cache = FileSystemBytecodeCache()


class PruneExtension(Extension):
    """Skips, before it is compiled, every file that the answers drop (KEEP_WHEN in hooks/post_gen_project.py).

    cookiecutter renders each file's path as a template and skips a file whose path renders empty, before it reads
    or compiles the file. This extension wraps the path of each file in the pruning table in
    `{% if _kept(...) %}…{% endif %}`, so a dropped file costs no Jinja compile. The table stays where it is: it is
    read from the hook file of the template being rendered (cruft renders two template commits in one process), and
    the post-gen hook still prunes, which also covers files copied without rendering (`_copy_without_render`: their
    path must not render empty, or cookiecutter would copy onto the project directory, so they are left to the hook).
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        self._keep_when: dict[str, Any] = {}
        self._paths: dict[str, str] | None = None
        keep_when = self._keep_when

        @pass_context
        def kept(context: Any, key: str) -> bool:
            answers = context.get("cookiecutter", {})
            return all(answers.get(k) == v for k, v in keep_when[key].items())

        environment.globals["_kept"] = kept

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        if name is not None or "\n" in source:  # a file's content, not a path
            return source
        if self._paths is None:
            # cookiecutter renders file paths from inside the template's project directory, whose parent holds the
            # hooks; names rendered before that (the project directory's) find no table and look again next time.
            keep_when, paths = _conditional_paths(Path.cwd().parent)
            if not paths:
                return source
            self._keep_when.update(keep_when)
            self._paths = paths
        key = self._paths.get(source)
        return source if key is None else "{% if _kept(" + json.dumps(key) + ") %}" + source + "{% endif %}"


def _conditional_paths(template_root: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """KEEP_WHEN, and raw template path -> its key for the table's paths that are rendered (not copied as they are)."""
    hook = template_root / "hooks" / "post_gen_project.py"
    settings = template_root / "cookiecutter.json"
    if not hook.is_file() or not settings.is_file():  # not rendering this template's files
        return {}, {}
    spec = importlib.util.spec_from_file_location("_template_post_gen_project", hook)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    copied = json.loads(settings.read_text()).get("_copy_without_render", [])
    paths = {}
    for key in module.KEEP_WHEN:
        raw = key.replace("{package}", "{{cookiecutter.__package_name}}")
        if not any(fnmatch.fnmatch(raw, pattern) for pattern in copied):
            paths[raw] = key
    return dict(module.KEEP_WHEN), paths
