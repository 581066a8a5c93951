"""Validate every answer before cookiecutter writes anything.

The rules are template_rules/answers.py (`RULES`), the table scripts/bake checks with too. All problems are
collected and reported at once on stderr, one line per refused answer, as
``ERROR: <key>=<value>: <rule>. Example: <valid value>``, followed by how to run again with the other
answers kept; the hook then exits 1 and cookiecutter removes the half-made project directory.

The answers reach this file only as data: cookiecutter renders the whole context into a JSON
string literal below (the ``tojson`` filter), so a quote, a backslash or template braces in an
answer can neither break this file nor run anything. Before rendering the file is still valid Python, so ruff and
the template's tests can import it.
"""

from __future__ import annotations

import json
import sys

if __name__ == "__main__":
    # cookiecutter runs this file rendered, from a temporary copy: the template's modules are found from its root
    # (a JSON string; the spaces keep the raw literal from ending in four quotes).
    sys.path.insert(0, json.loads(r""" {{ template_root() | tojson }} """))

from template_rules.answers import validate


def rerun_hint(context: dict) -> list[str]:
    """How to run again without typing every answer again."""
    import shlex
    from pathlib import Path

    repo_dir = context.get("_repo_dir")
    if repo_dir and "_commit" not in context:
        # Plain cookiecutter saved every answer in its replay file before running this hook.
        replay = Path.home() / ".cookiecutter_replay" / f"{Path(str(repo_dir)).name}.json"
        command = ["cookiecutter", "--replay-file", str(replay), str(context.get("_template", repo_dir))]
        if context.get("_output_dir"):
            command += ["--output-dir", str(context["_output_dir"])]
        return [
            f"Your answers are kept in {replay} (cookiecutter's replay file). Fix the refused values there",
            "and run again without retyping the others:",
            "  " + shlex.join(command),
        ]
    return ["Fix the refused answers and run the same command again; the other answers can stay as they are."]


def main() -> int:
    context = json.loads(r"""{{ cookiecutter | tojson }}""")
    errors = validate(context)
    for line in errors:
        print(line, file=sys.stderr)
    if errors:
        print(f"{len(errors)} answer(s) refused; nothing was generated.", file=sys.stderr)
        for line in rerun_hint(context):
            print(line, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
