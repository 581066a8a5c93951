"""Prune the files that the answers do not call for, and write the switch tool's manifest.

Both come from KEEP_WHEN (template_rules/files.py), the one rule table of conditional files, which the template's
tests use as well. No network, no subprocess, no prompts: cruft runs this hook on each of its internal renders, so
running it twice must change nothing the second time.
"""

from __future__ import annotations

import json
import os
import sys

if __name__ == "__main__":
    # cookiecutter runs this file rendered, from a temporary copy: the template's modules are found from its root
    # (a JSON string; the spaces keep the raw literal from ending in four quotes).
    sys.path.insert(0, json.loads(r""" {{ template_root() | tojson }} """))

from template_rules.files import MANIFEST, manifest, placeholder_hosts, prune


def warn_about_placeholders(context: dict) -> None:
    """Say it at the end of the bake (stderr): the project cannot deploy until the real hosts are set."""
    placeholders = placeholder_hosts(context)
    if placeholders:
        print(
            f"WARNING: the {', '.join(placeholders)} workspace URL(s) are the template's placeholders; "
            "set the real ones before deploying (see the note at the top of README.md).",
            file=sys.stderr,
        )


def main() -> int:
    context = json.loads(r"""{{ cookiecutter | tojson }}""")
    warn_about_placeholders(context)
    prune(os.getcwd(), context)
    os.makedirs(os.path.dirname(MANIFEST), exist_ok=True)
    with open(MANIFEST, "w", encoding="utf-8") as file:
        file.write(json.dumps(manifest(context), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
