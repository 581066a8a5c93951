"""Probe of the template's compile cache: one whole bake in a fresh interpreter, reporting what Jinja compiled.

argv: the template directory, the output directory. Output (last stdout line, JSON):
{"project": the baked project's path, "compiled": [[template name, or null and the source of a from_string], ...]}
"""

from __future__ import annotations

import json
import sys
from typing import Any

import jinja2
from cookiecutter.main import cookiecutter

compiled: list[list[str | None]] = []
parse = jinja2.Environment._parse


def spy(self: jinja2.Environment, source: str, name: str | None, filename: str | None) -> Any:
    compiled.append([name, None if name else source])
    return parse(self, source, name, filename)


jinja2.Environment._parse = spy  # type: ignore[method-assign]
project = cookiecutter(sys.argv[1], no_input=True, output_dir=sys.argv[2])
print(json.dumps({"project": project, "compiled": compiled}))
