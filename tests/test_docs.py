"""The README stays in step with cookiecutter.json and with what CI runs."""

from __future__ import annotations

import re

from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from support import COOKIECUTTER_JSON, QUESTIONS, REPO

README = (REPO / "README.md").read_text()


def questions_table() -> list[list[str]]:
    section = README.split("## Questions", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def prompt_text(key: str) -> str:
    prompt = COOKIECUTTER_JSON["__prompts__"][key]
    return prompt["__prompt__"] if isinstance(prompt, dict) else prompt


def test_questions_table_lists_every_key_in_order_with_its_prompt_and_default() -> None:
    defaults = prompt_for_config(generate_context(context_file=str(REPO / "cookiecutter.json")), no_input=True)
    rows = questions_table()
    assert [row[0].strip("`") for row in rows] == QUESTIONS
    for key, question, default, example, changes in rows:
        key = key.strip("`")
        assert question == prompt_text(key), key
        assert default == f"`{str(defaults[key]).lower() if isinstance(defaults[key], bool) else defaults[key]}`", key
        assert example.startswith("`") and example != default, key
        assert changes, key


def test_quick_start_has_two_commands_and_ci_runs_the_test_one() -> None:
    quick = README.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [re.sub(r"\s+#.*", "", line).strip() for line in quick.strip().splitlines()]
    assert commands == ["scripts/bake", "scripts/test"]
    ci = (REPO / ".ci" / "run").read_text()
    assert [line for line in ci.splitlines() if line.startswith("exec ")] == ["exec scripts/test"]


def test_contributing_has_the_add_an_option_checklist() -> None:
    text = (REPO / "CONTRIBUTING.md").read_text()
    for step in ("cookiecutter.json", "__prompts__", "pre_gen_project.py", "KEEP_WHEN", "README"):
        assert step in text


def test_readme_is_for_users_and_the_internals_are_in_contributing() -> None:
    """The template README says how to bake and live with a project; how the template works inside (the pruning
    table, the compile cache that was dropped, what a bake costs) is for contributors (issue 24)."""
    contributing = (REPO / "CONTRIBUTING.md").read_text()
    for internal in ("KEEP_WHEN", "compile cache", "one-file template"):
        assert internal not in README, internal
        assert internal in contributing, internal
    # Interactive users get the script that checks each answer as it is typed, before plain cruft or cookiecutter.
    assert README.index("scripts/bake --interactive") < README.index("cruft create")
    tools = README.split("Without the scripts", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    assert all("--no-input" in line for line in tools.splitlines() if line.startswith(("cruft create", "cookiecutter")))
