"""The cases file of ``trio-sink test``: its tables as msgspec Structs, and every
problem in it at once, each named by its path (as config files are,
:mod:`trio_sink._config`).

A cases file lists input lines and where each must go; docs/config.md, "Testing a
config: trio-sink test", describes it. :mod:`trio_sink._config_cases` runs the cases.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, Final

import msgspec

from ._config import (
    ConfigFileError,
    LoadedConfig,
    did_you_mean,
    load_config,
    validation_message,
)

__all__ = [
    "GROUPS",
    "Case",
    "CasesFileError",
    "load_cases",
    "load_cases_text",
    "load_config_for_test",
]

GROUPS: Final = ("default", "miss", "residue", "error")
"""The infra groups a case can expect, in the order an outcome lists them."""

Name = Annotated[str, msgspec.Meta(min_length=1)]


class Case(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """One ``[[cases]]`` table: input lines, and where each must go.

    A case lists every place its record goes: ``routes``, the routes that accept it
    (in any order), and ``group``, the infra groups it reaches. What it does not list
    must not happen: without ``group``, the record reaches no infra group; without
    ``routes``, no route accepts it.
    """

    name: Name
    input: str | None = None
    """One line."""
    inputs: list[str] | None = None
    """Several lines, each of which must meet the case."""
    routes: list[str] | None = None
    group: str | list[str] | None = None
    """``"default"``, ``"miss"``, ``"residue"`` or ``"error"``, or a list of them."""
    payload: dict[str, Any] | None = None
    """Fields the payload must hold, with these values; other fields are not checked."""

    @property
    def lines(self) -> list[str]:
        """The case's input lines."""
        return [self.input] if self.input is not None else list(self.inputs or ())

    @property
    def groups(self) -> tuple[str, ...]:
        """The infra groups the case expects, in the order of :data:`GROUPS`."""
        given = [self.group] if isinstance(self.group, str) else list(self.group or ())
        return tuple(g for g in GROUPS if g in given)


class CasesFileError(ConfigFileError):
    """A cases file that cannot be run: :attr:`errors` lists every problem found, each
    beginning with the path of the key (``$.cases[0].routes[1]: unknown route ...``)."""


# -- loading ----------------------------------------------------------------------------


def load_config_for_test(path: str | os.PathLike[str]) -> LoadedConfig:
    """:func:`~trio_sink._config.load_config` without its checks of the files and folders
    the config names: a test opens none of them, and may run where they do not exist (a
    CI job testing a production config). Every other check is made, each error reported
    as ``load_config`` reports it. Raises :class:`ConfigFileError`."""
    return load_config(path, check_paths=False)


def load_cases(path: str | os.PathLike[str], routes: Collection[str]) -> list[Case]:
    """The cases of the file at ``path``, whose ``routes`` must name routes among
    ``routes``. Raises :class:`CasesFileError` with every problem found."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CasesFileError(str(p), [f"cannot read the file: {exc}"]) from exc
    return load_cases_text(text, routes, name=str(p))


def load_cases_text(text: str, routes: Collection[str], *, name: str = "<cases>") -> list[Case]:
    """:func:`load_cases` for the text of a file."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CasesFileError(name, [f"not valid TOML: {exc}"]) from exc
    errors: list[str] = []
    for key in raw:
        if key != "cases":
            errors.append(f"$.{key}: unknown key{did_you_mean(key, ['cases'])}")
    tables = raw.get("cases")
    if tables is None:
        errors.append("$.cases: missing (a cases file needs [[cases]] tables)")
    elif not isinstance(tables, list) or not tables:
        errors.append("$.cases: expected one [[cases]] table or more")
        tables = None
    cases: list[Case] = []
    names: set[str] = set()
    for k, table in enumerate(tables or ()):
        where = f"$.cases[{k}]"
        if isinstance(table, dict):
            # Unknown keys first, each by its path, so the known ones are still checked.
            known = Case.__struct_fields__
            for key in [key for key in table if key not in known]:
                errors.append(f"{where}.{key}: unknown key{did_you_mean(key, known)}")
            table = {key: value for key, value in table.items() if key in known}
        try:
            case = msgspec.convert(table, Case)
        except msgspec.ValidationError as exc:
            errors.append(validation_message(exc, where))
            continue
        if case.name in names:
            errors.append(f'{where}.name: case "{case.name}" is named twice')
        names.add(case.name)
        errors.extend(_check_case(case, where, routes))
        cases.append(case)
    if errors:
        raise CasesFileError(name, errors)
    return cases


def _check_case(case: Case, where: str, routes: Collection[str]) -> list[str]:
    """What the types cannot check: one of input or inputs, lines without a newline,
    known route and group names, and a record that goes somewhere."""
    errors: list[str] = []
    if (case.input is None) == (case.inputs is None):
        errors.append(f"{where}: give input (one line) or inputs (several), not both")
    elif case.inputs is not None and not case.inputs:
        errors.append(f"{where}.inputs: no lines (give one or more)")
    located = [(f"{where}.input", case.input)] if case.input is not None else []
    located += [(f"{where}.inputs[{j}]", line) for j, line in enumerate(case.inputs or ())]
    for at, line in located:
        if "\n" in line or "\r" in line:
            errors.append(f"{at}: a line holds no line break (give several lines as inputs)")
    for j, route in enumerate(case.routes or ()):
        if route not in routes:
            errors.append(
                f'{where}.routes[{j}]: unknown route "{route}"{did_you_mean(route, routes)}'
            )
        elif route in (case.routes or ())[:j]:
            errors.append(f'{where}.routes[{j}]: route "{route}" is named twice')
    groups = [case.group] if isinstance(case.group, str) else case.group or []
    for j, group in enumerate(groups):
        at = f"{where}.group" if isinstance(case.group, str) else f"{where}.group[{j}]"
        if group not in GROUPS:
            hint = did_you_mean(group, GROUPS) or f" (one of {', '.join(GROUPS)})"
            errors.append(f'{at}: unknown group "{group}"{hint}')
    if not case.routes and not groups:
        errors.append(
            f"{where}: give routes, group or both: every record goes somewhere"
            ' (no route takes it: group = "default")'
        )
    return errors
