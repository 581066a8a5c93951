"""local_extensions.py's compile cache: what a warm bake compiles, and that a cached template is never a wrong one."""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.ext import Extension
from support import REPO

import local_extensions
from local_extensions import BytecodeCacheExtension, OneFileBytecodeCache

PROBE = Path(__file__).parent / "probes" / "bake.py"


def probe(output: Path) -> list[str]:
    """tests/probes/bake.py: one bake with the defaults into `output`, in its own process."""
    return [sys.executable, str(PROBE), str(REPO), str(output)]


def with_temp(temp: Path) -> dict[str, str]:
    """The environment of a process whose temp directory, and so its Jinja cache directory, is `temp`."""
    return {**os.environ, "TMPDIR": str(temp), "TEMP": str(temp), "TMP": str(temp)}


def bake_in_fresh_interpreter(output: Path, temp: Path) -> dict[str, Any]:
    result = subprocess.run(probe(output), env=with_temp(temp), capture_output=True, text=True, check=True)
    return json.loads(result.stdout.splitlines()[-1])


def assert_compiled_only_its_output_directories(bake: dict[str, Any], output: Path) -> None:
    recompiled = [source for _, source in bake["compiled"]]
    assert not [name for name, _ in bake["compiled"] if name], "a file template was compiled again"
    assert recompiled and all(Path(source).is_absolute() for source in recompiled), recompiled
    assert all(source.startswith(str(output)) for source in recompiled)


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_warm_bake_compiles_only_its_output_directories(tmp_path: Path) -> None:
    """The second bake of a process compiles no file and no path of the template, and bakes the same bytes."""
    temp = tmp_path / "temp"
    temp.mkdir()
    cold = bake_in_fresh_interpreter(tmp_path / "cold", temp)
    warm = bake_in_fresh_interpreter(tmp_path / "warm", temp)

    assert len(cold["compiled"]) > 100
    assert [name for name, _ in cold["compiled"] if name], "the cold bake compiled no file template"
    assert_compiled_only_its_output_directories(warm, tmp_path / "warm")

    assert tree(Path(cold["project"])) == tree(Path(warm["project"]))
    (cache,) = temp.rglob("cookiecutter-*.marshal")
    assert cache.stat().st_mode & 0o777 == 0o600
    kept = {(name, source) for name, source in cold["compiled"] if name or not Path(source).is_absolute()}
    assert len(marshal.loads(cache.read_bytes())) == len(kept), "the output directories' paths must not be kept"
    assert not list(cache.parent.glob("*.tmp"))


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> OneFileBytecodeCache:
    """A private cache file, as the process's shared cache."""
    private = OneFileBytecodeCache(tmp_path / "cache.marshal")
    monkeypatch.setattr(OneFileBytecodeCache, "_shared", private)
    return private


def fresh(cache: OneFileBytecodeCache) -> OneFileBytecodeCache:
    """What the next process sees: the file as saved, read again."""
    cache.save()
    return OneFileBytecodeCache(cache.path)


def test_from_string_code_depends_on_the_environments_settings(
    cache: OneFileBytecodeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = "{% if true %}\nx{% endif %}"
    trimmed = jinja2.Environment(extensions=[BytecodeCacheExtension], trim_blocks=True)
    assert trimmed.from_string(source).render() == "x"
    monkeypatch.setattr(OneFileBytecodeCache, "_shared", fresh(cache))
    untrimmed = jinja2.Environment(extensions=[BytecodeCacheExtension], trim_blocks=False)
    assert untrimmed.from_string(source).render() == "\nx"
    again = jinja2.Environment(extensions=[BytecodeCacheExtension], trim_blocks=True)
    assert again.from_string(source).render() == "x"


class Rename(Extension):
    """Preprocessing that depends on state outside the source, as PruneExtension's depends on the pruning table."""

    word = "one"

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        return source.replace("WORD", Rename.word)


def test_from_string_code_follows_the_preprocessed_source(
    cache: OneFileBytecodeCache, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = jinja2.Environment(extensions=[Rename, BytecodeCacheExtension])
    assert env.from_string("WORD").render() == "one"
    monkeypatch.setattr(Rename, "word", "two")
    monkeypatch.setattr(OneFileBytecodeCache, "_shared", fresh(cache))
    env = jinja2.Environment(extensions=[Rename, BytecodeCacheExtension])
    assert env.from_string("WORD").render() == "two"


def test_file_templates_are_checked_against_their_source(cache: OneFileBytecodeCache, tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("{{ 1 + 1 }}")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(tmp_path), extensions=[BytecodeCacheExtension])
    assert env.bytecode_cache is cache
    assert env.get_template("t.txt").render() == "2"
    (tmp_path / "t.txt").write_text("{{ 2 + 2 }}")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(tmp_path), extensions=[BytecodeCacheExtension])
    env.bytecode_cache = fresh(cache)
    assert env.get_template("t.txt").render() == "4"


def test_file_templates_depend_on_the_environments_settings(cache: OneFileBytecodeCache, tmp_path: Path) -> None:
    """A template commit that changes `_jinja2_env_vars` and not the file: cruft renders both in one process."""
    (tmp_path / "t.txt").write_text("{% if true %}\nline\n{% endif %}\n")
    loader = jinja2.FileSystemLoader(tmp_path)
    trimmed = jinja2.Environment(loader=loader, extensions=[BytecodeCacheExtension], trim_blocks=True)
    assert trimmed.get_template("t.txt").render() == "line\n"
    untrimmed = jinja2.Environment(loader=loader, extensions=[BytecodeCacheExtension], trim_blocks=False)
    assert untrimmed.get_template("t.txt").render() == "\nline\n"


def old_filter(value: str) -> str:
    return "OLD"


def new_filter(value: str) -> str:
    return "NEW"


def test_code_depends_on_the_filters(cache: OneFileBytecodeCache) -> None:
    """Jinja folds a filter of constants into a constant: a template commit that edits a filter must recompile."""
    first = jinja2.Environment(extensions=[BytecodeCacheExtension])
    first.filters["g"] = old_filter
    assert first.from_string('{{ "a" | g }}').render() == "OLD"
    then = jinja2.Environment(extensions=[BytecodeCacheExtension])
    then.filters["g"] = new_filter
    assert then.from_string('{{ "a" | g }}').render() == "NEW"


def test_code_depends_on_the_code_of_a_filters_module(
    cache: OneFileBytecodeCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two template commits whose filter module differs (cruft renders both in one process): same name, same
    function name, other code."""
    for commit, word in (("old", "OLD"), ("new", "NEW")):
        path = tmp_path / commit / "template_filters.py"
        path.parent.mkdir()
        path.write_text(f"def g(value):\n    return {word!r}\n")
        spec = importlib.util.spec_from_file_location("template_filters", path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setitem(sys.modules, "template_filters", module)
        env = jinja2.Environment(extensions=[BytecodeCacheExtension])
        env.filters["g"] = module.g
        assert env.from_string('{{ "a" | g }}').render() == word


def flexible_filter() -> Any:
    def flexible(*args: Any) -> str:
        return "with context" if len(args) == 2 else "plain"

    return flexible


def test_code_depends_on_how_a_filter_is_called(cache: OneFileBytecodeCache) -> None:
    """The same function, then marked `pass_context`: Jinja compiles the context argument in."""
    plain = jinja2.Environment(extensions=[BytecodeCacheExtension])
    plain.filters["f"] = flexible_filter()
    assert plain.from_string('{{ "a" | f }}').render() == "plain"
    with_context = jinja2.Environment(extensions=[BytecodeCacheExtension])
    with_context.filters["f"] = jinja2.pass_context(flexible_filter())
    assert with_context.from_string('{{ "a" | f }}').render() == "with context"


def test_an_overlay_compiles_with_its_own_settings(cache: OneFileBytecodeCache) -> None:
    env = jinja2.Environment(extensions=[BytecodeCacheExtension], trim_blocks=False)
    source = "{% if true %}\nx{% endif %}"
    assert env.from_string(source).render() == "\nx"
    assert env.overlay(trim_blocks=True).from_string(source).render() == "x"


def test_a_callable_finalize_is_never_cached(cache: OneFileBytecodeCache) -> None:
    for mark in ("!", "?"):
        env = jinja2.Environment(extensions=[BytecodeCacheExtension], finalize=lambda v, mark=mark: f"{v}{mark}")
        assert env.from_string('{{ "x" }}').render() == f"x{mark}"
    assert cache.entries() == {}


def test_the_least_recently_used_entries_go_first(cache: OneFileBytecodeCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OneFileBytecodeCache, "LIMIT", 3)
    env = jinja2.Environment(extensions=[BytecodeCacheExtension])
    for n in (1, 2, 3):
        env.from_string(f"{{{{ {n} }}}}")
    first = next(iter(cache.entries()))
    jinja2.Environment(extensions=[BytecodeCacheExtension]).from_string("{{ 1 }}")  # a hit
    env.from_string("{{ 4 }}")
    assert first in cache.entries() and len(cache.entries()) == 3


@pytest.mark.parametrize("content", [b"", b"not marshal", marshal.dumps([1, 2]), marshal.dumps({"k": 1})])
def test_a_damaged_cache_file_only_means_compiling(
    cache: OneFileBytecodeCache, monkeypatch: pytest.MonkeyPatch, content: bytes
) -> None:
    cache.path.write_bytes(content)
    damaged = OneFileBytecodeCache(cache.path)
    monkeypatch.setattr(OneFileBytecodeCache, "_shared", damaged)
    env = jinja2.Environment(extensions=[BytecodeCacheExtension])
    assert env.from_string("{{ 3 }}").render() == "3"
    damaged.save()
    entries = marshal.loads(cache.path.read_bytes())
    assert isinstance(entries, dict) and len(entries) == 1


def test_the_cache_keeps_the_newest_entries(cache: OneFileBytecodeCache, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(OneFileBytecodeCache, "LIMIT", 3)
    env = jinja2.Environment(extensions=[BytecodeCacheExtension])
    keys = []
    for n in range(5):
        env.from_string(f"{{{{ {n} }}}}")
        keys.append(list(cache.entries())[-1])
    assert list(fresh(cache).entries()) == keys[2:]


def test_an_unwritable_cache_is_only_slower(cache: OneFileBytecodeCache, tmp_path: Path) -> None:
    env = jinja2.Environment(extensions=[BytecodeCacheExtension])
    assert env.from_string("{{ 5 }}").render() == "5"
    cache.path = tmp_path / "missing" / "cache.marshal"
    cache.save()
    assert not cache.path.exists()
    assert not list(tmp_path.glob("**/*.tmp"))


@pytest.mark.parametrize("error", [RuntimeError("not the user's"), PermissionError("chmod"), OSError("no space")])
def test_without_a_usable_cache_directory_every_bake_compiles(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def refuse(self: Any, *args: Any, **kwargs: Any) -> None:
        raise error

    monkeypatch.setattr(OneFileBytecodeCache, "_shared", None)
    monkeypatch.setattr(local_extensions.FileSystemBytecodeCache, "__init__", refuse)
    env = jinja2.Environment(extensions=[BytecodeCacheExtension])
    assert env.bytecode_cache is None
    assert env.from_string("{{ 6 }}").render() == "6"


def test_concurrent_bakes_leave_a_whole_cache(tmp_path: Path) -> None:
    """Bakes running at once (xdist workers, a team's parallel CI jobs) each write a complete file at exit, through
    a rename; the last one stays, and the next bake finds every template there."""
    temp = tmp_path / "temp"
    temp.mkdir()
    bakes = [
        subprocess.Popen(
            probe(tmp_path / f"out{n}"), env=with_temp(temp), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        for n in range(3)
    ]
    assert [bake.wait(timeout=120) for bake in bakes] == [0, 0, 0]
    (cache,) = temp.rglob("cookiecutter-*.marshal")
    assert not list(cache.parent.glob("*.tmp"))
    assert_compiled_only_its_output_directories(bake_in_fresh_interpreter(tmp_path / "after", temp), tmp_path / "after")


def test_a_cleared_cache_is_written_again_at_exit(cache: OneFileBytecodeCache, monkeypatch: pytest.MonkeyPatch) -> None:
    at_exit: list[Any] = []
    monkeypatch.setattr(local_extensions.atexit, "register", at_exit.append)
    cache.path.write_bytes(marshal.dumps({}))
    cache.clear()
    assert not cache.path.exists()
    env = jinja2.Environment(extensions=[BytecodeCacheExtension])
    env.from_string("{{ 8 }}")
    for save in at_exit:
        save()
    assert len(OneFileBytecodeCache(cache.path).entries()) == 1
