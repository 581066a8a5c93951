"""The `databricks bundle` commands of a workflow step's script, read the way bash reads it.

A step's `run:` is a bash script: a command may continue on the next line after a `\\`, sit inside `$( )` or
after `if`, take its target as `-t x`, `-tx`, `--target x` or `--target=x`, quoted or not, or from
DATABRICKS_BUNDLE_TARGET (the step's, job's or workflow's `env`, an assignment before the command or an
`export` earlier in the script). Words are split, unquoted and expanded as bash does, as far as the script
itself says: a word built from a variable nobody set here (a GitHub expression, a step output) is unknown
(None), never a guess. Heredoc bodies and comments are data, not commands."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

TARGET_VARIABLES = ("DATABRICKS_BUNDLE_TARGET", "DATABRICKS_BUNDLE_ENV")  # the CLI's name, and its old one
BUNDLE_VAR_PREFIX = "BUNDLE_VAR_"  # BUNDLE_VAR_<name>: a bundle variable's value from the environment
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Words that may stand before a command without being one (`if databricks bundle validate; then`).
PREFIXES = {"if", "then", "elif", "else", "while", "until", "do", "!", "{", "time", "command", "exec", "env"}
# The CLI's options that take a value (the rest are switches): global, bundle and `bundle run` ones.
VALUE_OPTIONS = {
    "--target", "--environment", "--profile", "--output", "--var", "--log-level", "--log-file",
    "--log-format", "--progress-format", "--params", "--only", "--dbt-commands", "--jar-params",
    "--notebook-params", "--pipeline-params", "--python-named-params", "--python-params",
    "--spark-submit-params", "--sql-params", "--refresh", "--full-refresh",
}  # fmt: skip
SHORT_VALUE_OPTIONS = {"t": "--target", "e": "--environment", "p": "--profile", "o": "--output"}
UNKNOWN = None  # a word whose value the script alone does not give


@dataclass(frozen=True)
class BundleCommand:
    """One `databricks bundle <verb>`: its target ("" when none is named: the bundle's default target; None
    when it comes from outside the script), the resource `bundle run` runs, and the line of the script it
    starts on."""

    verb: str
    target: str | None
    key: str | None
    line: int
    # Bundle variables the command sets: `--var name=value` (repeatable, comma-separated) over
    # BUNDLE_VAR_<name> in its environment; a value None is not known from the script.
    variables: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True)
class Word:
    """A word after quote removal and expansion (None: not known from the script); `assigns`, the variable it
    sets when it is an unquoted `NAME=value`."""

    value: str | None
    assigns: str | None = None


@dataclass
class Command:
    words: list[Word] = field(default_factory=list)
    line: int = 0


def bundle_commands(script: str, env: Mapping[str, str | None] | None = None) -> list[BundleCommand]:
    """Every `databricks bundle` command of a bash script, with `env` the variables it starts with."""
    variables = dict(env or {})
    found = []
    for command in Lexer(script, variables).commands():
        words, assigned = _assignments(command.words)
        while words and words[0].value in PREFIXES:  # `env NAME=value databricks ...`: the assignment it is
            words, more = _assignments(words[1:])
            assigned |= more
        if not words:  # `NAME=value` alone sets a shell variable for what follows
            variables.update(assigned)
        elif words[0].value == "export":
            variables.update(_assignments(words[1:], exported=True)[1])
        else:
            bundle = _bundle_command([w.value for w in words], {**variables, **assigned}, command.line)
            found += [bundle] if bundle else []
    return found


def _assignments(words: list[Word], exported: bool = False) -> tuple[list[Word], dict[str, str | None]]:
    """The words after the leading `NAME=value` assignments, and those assignments (`export`'s: all)."""
    rest, assigned = list(words), {}
    while rest and (exported or rest[0].assigns):
        word = rest.pop(0)
        if word.assigns:
            assigned[word.assigns] = None if word.value is None else word.value.split("=", 1)[1]
    return rest, assigned


def _bundle_command(
    words: list[str | None], variables: Mapping[str, str | None], line: int
) -> BundleCommand | None:
    if not words or words[0] is None or words[0].rsplit("/", 1)[-1] != "databricks":
        return None
    positional: list[str | None] = []
    target: str | None = next((variables[v] for v in TARGET_VARIABLES if v in variables), "")
    bundle_vars = {
        name.removeprefix(BUNDLE_VAR_PREFIX): value
        for name, value in variables.items()
        if name.startswith(BUNDLE_VAR_PREFIX) and len(name) > len(BUNDLE_VAR_PREFIX)
    }
    args = iter(words[1:])
    for word in args:
        if word is None or not word.startswith("-") or word == "-":
            positional.append(word)
        elif word == "--":
            positional += list(args)
        elif word.startswith("--"):
            option, has_value, value = word.partition("=")
            if option in VALUE_OPTIONS and not has_value:
                value = next(args, "")
            if option in ("--target", "--environment"):
                target = value
            elif option == "--var":
                bundle_vars |= _var_values(value)
        else:
            option = SHORT_VALUE_OPTIONS.get(word[1], "")
            value = word[2:].removeprefix("=") if len(word) > 2 else (next(args, "") if option else "")
            if option in ("--target", "--environment"):
                target = value
    if positional[:1] != ["bundle"] or len(positional) < 2 or positional[1] is None:
        return None
    key = positional[2] if positional[1] == "run" and len(positional) > 2 else None
    return BundleCommand(positional[1], target, key, line, tuple(sorted(bundle_vars.items())))


def _var_values(value: str | None) -> dict[str, str | None]:
    """`--var a=1,b=2`: the CLI splits on commas. An unknown value (None) sets nothing this script knows."""
    if value is None:
        return {}
    found: dict[str, str | None] = {}
    for item in value.split(","):
        name, sep, setting = item.partition("=")
        if sep and NAME.fullmatch(name):
            found[name] = setting
    return found


class Lexer:
    """Splits a bash script into simple commands of expanded words (None: not known from the script)."""

    OPERATORS = ";&|()\n"

    def __init__(self, text: str, variables: Mapping[str, str | None], line: int = 0) -> None:
        self.text, self.variables, self.pos, self.line = text, variables, 0, line
        self.inner: list[Command] = []  # commands inside $( ) and backticks
        self.heredocs: list[tuple[str, bool]] = []  # delimiters whose bodies start at the next newline

    def commands(self) -> Iterator[Command]:
        command = Command(line=self.line)
        while True:
            word = self.word()
            if word is not None:
                command.words.append(word)
            yield from self.take_inner()
            char = self.peek()
            if char in self.OPERATORS or char == "":
                if command.words:
                    yield command
                if char == "":
                    return
                self.pos += 1
                if char == "\n":
                    self.line += 1
                    self.skip_heredocs()
                command = Command(line=self.line)

    def take_inner(self) -> Iterator[Command]:
        inner, self.inner = self.inner, []
        yield from inner

    def peek(self, ahead: int = 0) -> str:
        index = self.pos + ahead
        return self.text[index] if index < len(self.text) else ""

    def word(self) -> Word | None:
        """The next word, or None at an operator or the end."""
        self.skip_blanks()
        parts: list[str | None] = []
        plain = ""  # the word's unquoted start, which tells an assignment
        started = False
        while True:
            char = self.peek()
            if char == "" or char in " \t" or char in self.OPERATORS:
                break
            if char in "<>":
                if not started or all(p is not None and p.isdigit() for p in parts):
                    self.redirect()  # `2>&1`, `> file`, `<<EOF`: not words of the command
                    parts, plain, started = [], "", False
                    self.skip_blanks()
                    continue
                break
            if char == "#" and not started:
                self.skip_comment()
                break
            started = True
            if char == "\\" and self.peek(1) == "\n":
                self.pos += 2
                self.line += 1
                continue
            if char == "\\":
                parts.append(self.peek(1))
                self.pos += 2
            elif char == "'":
                end = self.text.find("'", self.pos + 1)
                parts.append(self.advance_to(len(self.text) if end < 0 else end)[1:])
                self.pos += 1
            elif char == '"':
                self.pos += 1
                parts += self.double_quoted()
            elif char in "$`":
                parts.append(self.expansion() if char == "$" else self.substitution("`"))
            else:
                parts.append(char)
                plain += char if len(plain) == len(parts) - 1 else ""
                self.pos += 1
        if not started:
            return None
        name = plain.split("=", 1)[0] if "=" in plain else ""
        value = None if None in parts else "".join(parts)  # type: ignore[arg-type]
        return Word(value, name if NAME.fullmatch(name) else None)

    def skip_blanks(self) -> None:
        while self.peek() in (" ", "\t") or (self.peek() == "\\" and self.peek(1) == "\n"):
            if self.peek() == "\\":
                self.pos += 1
                self.line += 1
            self.pos += 1

    def skip_comment(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end

    def advance_to(self, end: int) -> str:
        taken = self.text[self.pos : end]
        self.line += taken.count("\n")
        self.pos = end
        return taken

    def double_quoted(self) -> list[str | None]:
        parts: list[str | None] = []
        while self.peek() not in ('"', ""):
            char = self.peek()
            if char == "\\" and self.peek(1) in '"\\$`\n':
                if self.peek(1) == "\n":
                    self.line += 1
                else:
                    parts.append(self.peek(1))
                self.pos += 2
            elif char in "$`":
                parts.append(self.expansion() if char == "$" else self.substitution("`"))
            else:
                parts.append(char)
                self.line += char == "\n"
                self.pos += 1
        self.pos += 1
        return parts

    def expansion(self) -> str | None:
        """`$NAME`, `${NAME}`, `$(...)`, `$((...))`, or a GitHub expression (`$`, two braces: replaced
        before bash runs)."""
        self.pos += 1
        char = self.peek()
        if char == "(":
            return self.substitution(")")
        if char == "{":
            end = self.text.find("}}" if self.peek(1) == "{" else "}", self.pos)
            end = len(self.text) if end < 0 else end
            inner = self.advance_to(end)[1:]
            self.pos += 2 if inner.startswith("{") else 1
            return self.variables.get(inner) if NAME.fullmatch(inner) else UNKNOWN
        match = NAME.match(self.text, self.pos)
        if match:
            self.pos = match.end()
            return self.variables.get(match[0])
        if char and char in "?#@*$!-0123456789":
            self.pos += 1
            return UNKNOWN
        return "$"

    def substitution(self, closing: str) -> None:
        """A command substitution: its commands are read too (a `databricks bundle` inside counts); its value
        is unknown. Runs to the matching close, skipping quoted text."""
        start, depth = self.pos + 1, 0
        self.pos = start
        while self.peek():
            char = self.peek()
            if char == "\\":
                self.pos += 2
                continue
            if char in "'\"" and closing == ")":
                end = self.text.find(char, self.pos + 1)
                self.pos = len(self.text) if end < 0 else end + 1
                continue
            if closing == ")" and char == "(":
                depth += 1
            elif char == closing:
                if depth == 0:
                    break
                depth -= 1
            self.pos += 1
        body = self.text[start : self.pos]
        self.pos += 1
        inner = Lexer(body, self.variables, self.line)
        self.inner += list(inner.commands())
        self.line = inner.line
        return UNKNOWN

    def redirect(self) -> None:
        """A redirection operator and its target word; a heredoc's body is skipped at the next newline."""
        operator = ""
        while self.peek() in ("<", ">", "&") and len(operator) < 3:
            operator += self.peek()
            self.pos += 1
        if (operator.endswith("&") and self.peek().isdigit()) or (
            self.peek() == "-" and operator.endswith("&")
        ):
            self.pos += 1  # `2>&1`, `>&-`
            return
        strip_tabs = operator == "<<" and self.peek() == "-"
        if strip_tabs:
            self.pos += 1
        self.skip_blanks()
        target = self.word()
        if operator == "<<":
            self.heredocs.append(((target.value or "") if target else "", strip_tabs))

    def skip_heredocs(self) -> None:
        for delimiter, strip_tabs in self.heredocs:
            while self.pos < len(self.text):
                end = self.text.find("\n", self.pos)
                end = len(self.text) if end < 0 else end
                line = self.text[self.pos : end]
                self.pos = min(end + 1, len(self.text))
                self.line += 1
                if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                    break
        self.heredocs = []
