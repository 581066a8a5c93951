"""Probe of a generated package's console scripts, run in one interpreter inside the baked project.

Input (argv[1], JSON): {"help": {script name: "module:function"}, "parse": [["module:function", [argv...]], ...]}.
Output (last stdout line, JSON): {"options": {script name: [--option, ...]}, "outcomes": ["parsed" | why not, ...]}.

- help: each entry point's --help, its options read off the usage text.
- parse: each entry point's real main() on an argv, stopped right after it parsed its arguments: main() parses,
  then calls configure_logging(), which the probe replaces by an exception. SystemExit means argparse refused.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import sys
from typing import Any


class Parsed(Exception):
    pass


def options(targets: dict[str, str]) -> dict[str, list[str]]:
    found = {}
    for name, target in targets.items():
        module, _, function = target.partition(":")
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            getattr(importlib.import_module(module), function)(["--help"])
        found[name] = [word.split("=")[0] for word in out.getvalue().split() if word.startswith("--")]
    return found


def outcomes(cases: list[tuple[str, list[str]]]) -> list[str]:
    state = {"parsed": False}
    original = argparse.ArgumentParser.parse_known_args

    def recording(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        state["parsed"] = True
        return result

    def stop(*_args: Any, **_kwargs: Any) -> None:
        if state["parsed"]:
            raise Parsed

    argparse.ArgumentParser.parse_known_args = recording  # type: ignore[method-assign]
    results = []
    for target, argv in cases:
        module_name, _, function = target.partition(":")
        module = importlib.import_module(module_name)
        # Every main() starts with cli.start_task: parse, then configure logging (stopped here).
        importlib.import_module(module_name.split(".")[0] + ".cli").configure_logging = stop
        state["parsed"] = False
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                getattr(module, function)(argv)
            outcome = "main() returned without parsing and configuring logging first"
        except Parsed:
            outcome = "parsed"
        except SystemExit as exit:
            outcome = f"exit {exit.code}: {err.getvalue().strip()}"
        except Exception as error:
            outcome = f"main() did not parse, then configure logging: {error!r}"
        results.append(outcome)
    return results


if __name__ == "__main__":
    payload = json.loads(sys.argv[1])
    print(json.dumps({"options": options(payload["help"]), "outcomes": outcomes(payload["parse"])}))
