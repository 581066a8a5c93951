"""scripts/bake: generate a project with cruft, after checking every answer before anything is written.

Usage: scripts/bake [--interactive] [--config-file PRESET.yaml] [--overwrite-if-exists] [key=value ...]

--interactive asks every question (cookiecutter's own prompts, the answers given as defaults) and checks each
answer as soon as it is typed, asking again until it is accepted.

Plain cookiecutter cannot refuse some answers cleanly from inside the template: a misspelt key or a bad
choice in a preset is silently ignored or replaced by the default, a bad choice on the command line or an
answer that is not a valid Jinja template ends in a traceback, and a project directory it cannot create (an
existing one, a '/' in the slug, a name too long) fails before the pre-generation hook runs. So this script
checks, up front and all at once:

1. every key (command line and preset) is a question of cookiecutter.json, with a suggestion for a typo;
2. every choice and boolean, as given, against the hook's RULES;
3. every answer parses as the Jinja template cookiecutter will render it as;
4. the whole context, computed exactly as cookiecutter will, against the same RULES the pre-gen hook
   checks (template_rules/answers.py, imported by both);
5. the project directory does not exist yet (unless --overwrite-if-exists).

On a terminal, a refused answer is asked again (only the refused ones); otherwise the script prints what to
change and exits 1, having written nothing. On success it says where the project is and what to run next,
and records the template's URL (its git remote `origin`) in the project's .cruft.json.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from cookiecutter.environment import StrictEnvironment
from cookiecutter.exceptions import CookiecutterException, FailedHookException
from cookiecutter.generate import generate_context
from cookiecutter.prompt import (
    YesNoPrompt,
    prompt_choice_for_config,
    prompt_for_config,
    read_user_variable,
    read_user_yes_no,
    render_variable,
)
from cookiecutter.utils import create_env_with_context
from jinja2 import TemplateSyntaxError
from rich.prompt import InvalidResponse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the template's rules and its Jinja extension, as cookiecutter and cruft find them

from template_rules import answers as rules  # noqa: E402  (the rules the pre-gen hook checks)
from template_rules import files  # noqa: E402

COOKIECUTTER_JSON: dict[str, Any] = json.loads((ROOT / "cookiecutter.json").read_text())
# Keys an answer may set: the questions and the derived __package_name (which the hook then checks).
ANSWER_KEYS = [key for key in COOKIECUTTER_JSON if not key.startswith("_") or key == "__package_name"]


def error(key: str, value: Any, rule: str, example: str | None = None, where: str = "") -> str:
    line = f"ERROR: {key}={json.dumps(value, ensure_ascii=False)}{where}: {rule}"
    return f"{line}. Example: {example}" if example else line


def first_rule(key: str) -> Any:
    return next((rule for rule in rules.RULES if rule.key == key), None)


def check_raw(answers: dict[str, Any], where: str) -> tuple[list[str], set[str]]:
    """Keys, choices, booleans and Jinja syntax of answers as given (before cookiecutter sees them)."""
    errors, refused = [], set()
    env = StrictEnvironment(context={"cookiecutter": COOKIECUTTER_JSON}, keep_trailing_newline=True)
    for key, value in answers.items():
        if key not in ANSWER_KEYS:
            close = difflib.get_close_matches(key, ANSWER_KEYS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"the questions are: {', '.join(ANSWER_KEYS[:-1])}"
            errors.append(error(key, value, f"is not a question of this template; {hint}", where=where))
            refused.add(key)
            continue
        rule = first_rule(key)
        if key in rules.BOOLEANS and isinstance(value, str):
            with contextlib.suppress(InvalidResponse):
                answers[key] = value = YesNoPrompt().process_response(value)
        if key in rules.CHOICES or key in rules.BOOLEANS:
            if not rule.ok(value, {}):
                errors.append(error(key, value, rules.text(rule.rule, {}), rules.text(rule.example, {}), where))
                refused.add(key)
            continue
        if isinstance(value, str):
            try:
                env.parse(value)
            except TemplateSyntaxError as exc:
                reason = str(exc.message).rstrip(".")
                errors.append(
                    error(
                        key,
                        value,
                        f"is not a valid Jinja template ({reason}): cookiecutter renders every answer; "
                        "wrap literal braces in {% raw %}…{% endraw %}",
                        where=where,
                    )
                )
                refused.add(key)
    return errors, refused


def full_context(preset: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """The context cookiecutter and cruft build with --no-input: defaults rendered in order, answers applied."""
    context = generate_context(
        context_file=str(ROOT / "cookiecutter.json"), default_context=preset, extra_context=answers
    )
    return dict(prompt_for_config(context, no_input=True))


def keys_of(errors: list[str]) -> set[str]:
    return {line.split("=", 1)[0].removeprefix("ERROR: ") for line in errors}


def refused_whatever_the_choice(preset: dict[str, Any], answers: dict[str, Any], refused: set[str]) -> list[str]:
    """The other answers' refusals while some answers are refused as given (a misspelt choice, a broken template).

    Those are left out, and a refused choice or boolean takes each of its values in turn: an answer is refused only
    when it is refused whatever the fixed answer will be (`cloud=azur` does not make an Azure host wrong), so that
    one run reports every answer that needs a change. An answer derived from a refused one is not reported."""
    preset = {key: value for key, value in preset.items() if key not in refused}
    answers = {key: value for key, value in answers.items() if key not in refused}
    axes = {
        key: list(rules.CHOICES[key]) if key in rules.CHOICES else [False, True]
        for key in ANSWER_KEYS
        if key in refused and (key in rules.CHOICES or key in rules.BOOLEANS)
    }
    found: dict[str, str] | None = None
    for values in itertools.product(*axes.values()):
        try:
            context = full_context(preset, {**answers, **dict(zip(axes, values, strict=True))})
        except CookiecutterException:
            return []
        lines = {line.split("=", 1)[0]: line for line in rules.validate(context, refused)}
        found = lines if found is None else {key: line for key, line in found.items() if key in lines}
    return list((found or {}).values())


def check(preset: dict[str, Any], answers: dict[str, Any], preset_name: str) -> tuple[list[str], set[str], dict]:
    errors, refused = check_raw(preset, f" (in {preset_name})")
    more, more_refused = check_raw(answers, "")
    errors += more
    refused |= more_refused
    if errors:
        later = refused_whatever_the_choice(preset, answers, refused)
        return errors + later, refused | keys_of(later), {}
    try:
        context = full_context(preset, answers)
    except CookiecutterException as exc:
        return [f"ERROR: {exc}"], refused, {}
    errors = rules.validate(context)
    return errors, keys_of(errors), context


def ask_each(preset: dict[str, Any], answers: dict[str, Any]) -> dict[str, Any]:
    """Every question in order, as cookiecutter asks it; each answer checked by the hook's rules at once."""
    context = generate_context(
        context_file=str(ROOT / "cookiecutter.json"), default_context=preset, extra_context=answers
    )
    env = create_env_with_context(context)
    prompts = context["cookiecutter"].pop("__prompts__", {})
    questions = [key for key in context["cookiecutter"] if not key.startswith("_")]
    values: dict[str, Any] = {}
    for key, raw in context["cookiecutter"].items():
        if key.startswith("_"):
            values[key] = raw if not key.startswith("__") else render_variable(env, raw, values)
            continue
        prefix = f"  [dim][{questions.index(key) + 1}/{len(questions)}][/] "
        while True:
            if isinstance(raw, list):
                values[key] = prompt_choice_for_config(values, env, key, raw, False, prompts, prefix)
            elif isinstance(raw, bool):
                values[key] = read_user_yes_no(key, raw, prompts, prefix)
            else:
                values[key] = read_user_variable(key, render_variable(env, raw, values), prompts, prefix)
            problems = [line for line in rules.validate(values) if line.startswith(f"ERROR: {key}=")]
            if not problems:
                break
            print(problems[0], file=sys.stderr)
    # Typed answers are final: cruft renders answers as templates, so keep braces literal.
    return {
        key: "{% raw %}" + value + "{% endraw %}" if isinstance(value, str) and "{" in value else value
        for key, value in values.items()
        if key in questions
    }


def ask_again(refused: set[str], answers: dict[str, Any]) -> bool:
    """On a terminal, ask only the refused questions again. False when there is nothing to ask."""
    keys = [key for key in ANSWER_KEYS if key in refused and key != "__package_name"]
    if not keys or not sys.stdin.isatty():
        return False
    prompts = COOKIECUTTER_JSON["__prompts__"]
    for key in keys:
        prompt = prompts[key]["__prompt__"] if isinstance(prompts[key], dict) else prompts[key]
        rule = first_rule(key)
        example = rules.text(rule.example, {"_clouds": COOKIECUTTER_JSON["_clouds"], **answers})
        answers[key] = input(f"{prompt} [{key}, e.g. {example}]: ")
    return True


def template_url() -> tuple[str, str | None]:
    """The template's git remote `origin` URL if it has one, else its path; and a warning when needed."""

    def git(*args: str) -> str:
        try:
            result = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False)
        except OSError:  # no git: treated as no remote
            return ""
        return result.stdout.strip() if result.returncode == 0 else ""

    url = git("remote", "get-url", "origin")
    local = url.removeprefix("file://")
    if not url or Path(local).expanduser().exists():
        why = f"its remote 'origin' is the local path {local}" if url else "it has no remote 'origin'"
        return str(ROOT), (
            f"WARNING: .cruft.json records the template as the local path {ROOT} ({why}, not a URL): "
            "`cruft update` breaks if this clone moves. Set .cruft.json's \"template\" to the template's URL "
            "(or run `cruft link <url>` in the project)."
        )
    if not git("branch", "-r", "--contains", "HEAD"):
        return url, (
            f"WARNING: .cruft.json records {url}, but this template commit is not on any remote branch yet: "
            "push it before running `cruft update` in the project."
        )
    return url, None


def parse_args(argv: list[str]) -> tuple[Path | None, bool, bool, dict[str, Any]]:
    preset, overwrite, interactive, answers = None, False, False, {}
    args = iter(argv)
    for arg in args:
        if arg in ("-h", "--help"):
            print(__doc__)
            raise SystemExit(0)
        if arg == "--overwrite-if-exists":
            overwrite = True
        elif arg in ("-i", "--interactive"):
            interactive = True
        elif arg == "--config-file" or arg.startswith("--config-file="):
            preset = Path(arg.split("=", 1)[1] if "=" in arg else next(args, ""))
        elif "=" in arg and not arg.startswith("-"):
            key, value = arg.split("=", 1)
            answers[key] = value
        else:
            print(
                f"ERROR: {arg!r}: expected key=value, --interactive, --config-file FILE or --overwrite-if-exists",
                file=sys.stderr,
            )
            raise SystemExit(2)
    return preset, overwrite, interactive, answers


def load_preset(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        print(f"ERROR: --config-file {path}: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    preset = data.get("default_context", {}) if isinstance(data, dict) else None
    if not isinstance(preset, dict):
        print(f"ERROR: --config-file {path}: expected a mapping `default_context:` of answers", file=sys.stderr)
        raise SystemExit(2)
    return preset


def main(argv: list[str]) -> int:
    preset_path, overwrite, interactive, answers = parse_args(argv)
    preset = load_preset(preset_path)
    output_dir = Path(os.environ.get("OUTPUT_DIR") or ROOT / "out")
    asked = False
    while True:
        errors, refused, context = check(dict(preset), answers, str(preset_path))
        if interactive and not asked and not errors:
            answers, asked = ask_each(dict(preset), answers), True
            continue
        if not errors:
            project = output_dir / context["project_slug"]
            if project.exists() and not overwrite:
                print(
                    f"ERROR: {project} already exists: remove it, or run again with --overwrite-if-exists "
                    "to render over it (files the template no longer makes stay).",
                    file=sys.stderr,
                )
                return 1
            break
        for line in dict.fromkeys(errors):
            print(line, file=sys.stderr)
        print(f"{len(errors)} answer(s) refused; nothing was written.", file=sys.stderr)
        in_preset = (refused & set(preset)) - set(answers)
        if not ask_again(refused - in_preset, answers):
            kept = [f"{k}={v}" for k, v in answers.items() if k not in refused]
            # __package_name is derived: the fix is to leave it out.
            fixes = [f"{k}=…" for k in ANSWER_KEYS if k in refused - in_preset and k != "__package_name"]
            options = [f"--config-file={preset_path}"] if preset_path else []
            if in_preset:
                print(f"Fix {', '.join(sorted(in_preset))} in {preset_path}, then run again:", file=sys.stderr)
            else:
                print("Run again with the refused answers fixed:", file=sys.stderr)
            print("  " + " ".join([shlex.join(["scripts/bake", *options, *kept]), *fixes]), file=sys.stderr)
            return 1

    from cruft import create  # imported late: the checks above must not depend on cruft

    url, warning = template_url()
    output_dir.mkdir(parents=True, exist_ok=True)
    try:
        project = create(
            str(ROOT),
            output_dir=output_dir,
            config_file=preset_path,
            extra_context=answers,
            no_input=True,
            overwrite_if_exists=overwrite,
        )
    except FailedHookException:
        print("Nothing was generated (see the hook's messages above).", file=sys.stderr)
        return 1
    cruft_file = project / ".cruft.json"
    state = json.loads(cruft_file.read_text())
    state["template"] = url
    state["context"]["cookiecutter"]["_template"] = url
    # As cruft writes .cruft.json (its own json_dumps is private API).
    cruft_file.write_text(json.dumps(state, ensure_ascii=False, indent=2, separators=(",", ": ")) + "\n")
    if warning:
        print(warning, file=sys.stderr)
    try:
        shown = project.relative_to(Path.cwd())
    except ValueError:
        shown = project
    print(f"Created {shown} ({context['deployment_pattern']} on {context['cloud']}). Next:")
    print(f"  cd {shlex.quote(str(shown))}")
    print(f"  git init -b {shlex.quote(context['default_branch'])} && git add -A && git commit -m 'From the template'")
    print('  python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[dev]" && pytest')
    print("  then, once per project: scripts/setup-environments plan, apply, check (docs/setup.md), and push")
    placeholders = files.placeholder_hosts(context)
    if placeholders:
        print(f"Before deploying, set the real {', '.join(placeholders)} workspace URL(s): see the top of README.md.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
