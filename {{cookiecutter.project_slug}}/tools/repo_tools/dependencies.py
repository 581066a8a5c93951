"""Which versions of the tools' dependencies this interpreter has, against what the project asks for: the
exact pins of scripts/switch-pattern.requirements.txt, or the bounds of a pyproject.toml extra (`name>=1.2`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

REQUIREMENT = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(.*?)\s*(?:;.*)?$")
COMPARISONS = {
    "==": operator.eq, "!=": operator.ne, ">=": operator.ge, "<=": operator.le,
    ">": operator.gt, "<": operator.lt,
}  # fmt: skip


def installed_versions(names: Iterable[str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def read_pins(path: Path) -> dict[str, str]:
    """Name -> version of a requirements file of exact pins (`name==1.2.3`, comments allowed)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def mismatches(pins: dict[str, str], installed: dict[str, str | None]) -> list[str]:
    return [
        f"{name}=={version} (found {installed.get(name) or 'none'})"
        for name, version in pins.items()
        if installed.get(name) != version
    ]


def requirement_name(requirement: str) -> str:
    """The distribution a requirement names, lowercase ("databricks-sdk>=0.162" -> "databricks-sdk")."""
    match = REQUIREMENT.fullmatch(requirement)
    return match[1].lower() if match else requirement.strip().lower()


def release(version: str) -> tuple[int, ...]:
    """The numeric release of a version ("0.162.0rc1" -> (0, 162, 0)): enough to compare with the bounds."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0].split("rc")[0])[:4])


def unmet(requirements: Iterable[str], installed: dict[str, str | None] | None = None) -> list[str]:
    """The requirements (`name>=1.2,<2`) this interpreter does not satisfy, each with what it has instead."""
    wanted = {}
    for requirement in requirements:
        match = REQUIREMENT.fullmatch(requirement)
        if match:
            wanted[requirement_name(requirement)] = (requirement.strip(), match[2])
    have = installed if installed is not None else installed_versions(wanted)
    missing = []
    for name, (requirement, specifiers) in wanted.items():
        version = have.get(name)
        ok = version is not None and all(
            COMPARISONS[op](release(version), release(bound))
            for op, bound in re.findall(r"(==|!=|>=|<=|>|<)\s*([^,\s]+)", specifiers)
        )
        if not ok:
            missing.append(f"{requirement} ({f'found {version}' if version else 'not installed'})")
    return missing
