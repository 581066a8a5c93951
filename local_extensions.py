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

import atexit
import contextlib
import fnmatch
import hashlib
import importlib.util
import json
import marshal
import os
import re
import sys
import tempfile
import types
import weakref
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import Environment, FileSystemBytecodeCache, pass_context
from jinja2.bccache import Bucket, BytecodeCache
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
    """Keeps what Jinja compiles, for the next bake: the files' templates and every `from_string` (file paths,
    `cookiecutter.json` defaults, hooks), in one file of Jinja's per-user cache directory (OneFileBytecodeCache).

    A bake compiles about 160 templates; 120 of them are one-line paths and defaults that cookiecutter compiles with
    `Environment.from_string`, which Jinja never caches. Compiling was most of the template's own time. With the
    cache, a second bake, cruft's second render of an update and every bake of a test session compile only the
    output directories' paths (absolute, so different for each bake, and not kept).
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        _cache_compiles(environment)

    def bind(self, environment: Environment) -> BytecodeCacheExtension:
        # An overlay copies its parent's attributes, the parent's `compile` with them: give it its own.
        bound = super().bind(environment)
        _cache_compiles(environment)
        return bound


def _cache_compiles(environment: Environment) -> None:
    cache = OneFileBytecodeCache.shared()
    if cache is None:  # no private cache directory: every bake compiles
        return
    if environment.bytecode_cache is None:
        environment.bytecode_cache = cache
    compile_uncached = types.MethodType(type(environment).compile, environment)

    def compile(
        source: Any, name: str | None = None, filename: str | None = None, raw: bool = False, defer_init: bool = False
    ) -> Any:
        if name is not None or raw or defer_init or not isinstance(source, str) or os.path.isabs(source):
            return compile_uncached(source, name, filename, raw, defer_init)
        # Checked against the source after the extensions' preprocessing: PruneExtension's depends on KEEP_WHEN.
        bucket = cache.get_bucket(environment, "from_string:" + source, None, environment.preprocess(source))
        if bucket.code is None:
            bucket.code = compile_uncached(source)
            cache.set_bucket(bucket)
        return bucket.code

    # Jinja has no hook for caching `from_string`: shadow the method on this environment only.
    environment.compile = compile  # type: ignore[method-assign]


_FINGERPRINTS: weakref.WeakKeyDictionary[Environment, str | None] = weakref.WeakKeyDictionary()
_FILE_HASHES: dict[str, str] = {}


def fingerprint(environment: Environment) -> str | None:
    """What besides a template's source decides its compiled code, as a digest; None if that cannot be pinned down.

    Taken at the environment's first compile: its class, Jinja's version, every plain option (delimiters,
    whitespace, `optimized`, ...), the extensions, each filter's and test's name, function and calling convention
    (Jinja compiles that in, and folds a filter of constants into a constant), and the content of every module
    outside Jinja that defines one of them (this file, cookiecutter's extensions), so a template commit that edits
    a filter is compiled afresh. A callable `finalize` or `autoescape` runs at compile time too: not cached.
    """
    if environment in _FINGERPRINTS:
        return _FINGERPRINTS[environment]
    result = None
    if environment.finalize is None and not callable(environment.autoescape):
        functions = {f"filter {k}": v for k, v in environment.filters.items()}
        functions.update({f"test {k}": v for k, v in environment.tests.items()})
        extensions = list(environment.extensions.values())
        modules = {getattr(f, "__module__", None) for f in functions.values()}
        modules |= {type(e).__module__ for e in extensions} | {type(environment).__module__}
        parts = (
            type(environment).__qualname__,
            jinja2.__version__,
            sorted((k, v) for k, v in vars(environment).items() if isinstance(v, str | bool | int | type(None))),
            sorted(environment.extensions),
            sorted(
                (
                    k,
                    getattr(f, "__module__", None),
                    getattr(f, "__qualname__", type(f).__qualname__),
                    str(getattr(f, "jinja_pass_arg", None)),
                )
                for k, f in functions.items()
            ),
            sorted((m, _file_hash(m)) for m in modules if m and m.split(".")[0] != "jinja2"),
        )
        result = hashlib.sha1(repr(parts).encode(), usedforsecurity=False).hexdigest()
    _FINGERPRINTS[environment] = result
    return result


def _file_hash(module: str) -> str:
    path = getattr(sys.modules.get(module), "__file__", None)
    if not path:
        return ""
    if path not in _FILE_HASHES:
        try:
            _FILE_HASHES[path] = hashlib.sha1(Path(path).read_bytes(), usedforsecurity=False).hexdigest()
        except OSError:
            _FILE_HASHES[path] = ""
    return _FILE_HASHES[path]


class OneFileBytecodeCache(BytecodeCache):
    """A Jinja bytecode cache in one file, for the templates of files and of `from_string` alike.

    Jinja's `FileSystemBytecodeCache` writes a file per template and opens each on every bake, and keys a template
    by its name alone. This cache reads its one file on first use and writes it once, at exit, when something new
    was compiled: to a private temporary file renamed into place, so concurrent bakes each leave a complete file
    and the last one stays. Every key includes the environment's fingerprint, and Jinja checks each entry against
    the template's source. The directory is Jinja's own (created 0700 and checked to be the user's); a missing,
    foreign or damaged file only means compiling. At most LIMIT entries; the least recently used go first.
    """

    LIMIT = 500
    _shared: OneFileBytecodeCache | None = None

    def __init__(self, path: Path) -> None:
        self.path = path
        self._entries: dict[str, bytes] | None = None
        self._dirty = False

    @classmethod
    def shared(cls) -> OneFileBytecodeCache | None:
        """The process's cache, in the directory Jinja's FileSystemBytecodeCache would use; None without one."""
        if cls._shared is None:
            try:
                directory = FileSystemBytecodeCache().directory
            except (RuntimeError, OSError):  # not the user's, not writable, no space
                return None
            cls._shared = cls(Path(directory, f"cookiecutter-{sys.implementation.cache_tag}.marshal"))
        return cls._shared

    def entries(self) -> dict[str, bytes]:
        if self._entries is None:
            try:
                entries = marshal.loads(self.path.read_bytes())
            except (OSError, EOFError, ValueError, TypeError):
                entries = None
            valid = isinstance(entries, dict) and all(
                isinstance(k, str) and isinstance(v, bytes) for k, v in entries.items()
            )
            self._entries = entries if valid else {}
        return self._entries

    def get_bucket(self, environment: Environment, name: str, filename: str | None, source: str) -> Bucket:
        digest = fingerprint(environment)
        if digest is None:
            return Bucket(environment, "", "")  # never found, never kept
        return super().get_bucket(environment, f"{digest}|{name}", filename, source)

    def load_bytecode(self, bucket: Bucket) -> None:
        entries = self.entries()
        data = entries.pop(bucket.key, None)
        if data is not None:
            entries[bucket.key] = data  # most recently used last
            bucket.bytecode_from_string(data)  # a stale entry leaves the bucket empty

    def dump_bytecode(self, bucket: Bucket) -> None:
        if not bucket.key:
            return
        entries = self.entries()
        entries.pop(bucket.key, None)
        entries[bucket.key] = bucket.bytecode_to_string()
        while len(entries) > self.LIMIT:
            del entries[next(iter(entries))]
        if not self._dirty:
            self._dirty = True
            atexit.register(self.save)

    def save(self) -> None:
        if not self._dirty or self._entries is None:
            return
        try:
            descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        except OSError:  # a cache that cannot be written is only slower
            return
        try:
            with open(descriptor, "wb") as file:
                file.write(marshal.dumps(self._entries))
            os.replace(temporary, self.path)
            self._dirty = False
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)

    def clear(self) -> None:
        self._entries = {}
        self._dirty = False  # nothing to write; the next new compile registers the write again
        with contextlib.suppress(OSError):
            self.path.unlink()


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
