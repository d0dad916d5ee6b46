"""A mutation pass over trio_sink's accounting code.

Run it with the project's Python (the one with pytest; it imports nothing of
trio_sink itself), from anywhere: it works on the tree it sits in. A full run takes
about fifteen minutes on two cores::

    python tools/mutate.py                         # every mutant, then the score
    python tools/mutate.py --only spill-one-late   # one mutant (repeat for more)
    python tools/mutate.py --list                  # the mutants, by name
    python tools/mutate.py --check                 # only check the list (no test runs)
    python tools/mutate.py --report tools/MUTANTS.md  # also write the table

First the mutants' test files run once unmutated (skip it with ``--no-baseline``): if
they fail, no verdict would mean anything, and nothing else runs (exit status 1).

Each mutant is a small hand-made change to one module of ``trio_sink``, of the kind a
real accounting bug would be: a ``ledger.settle(...)`` call dropped, a count moved
from the wrong place, a condition inverted. Its exact old text must occur exactly
once in the module (else nothing runs and the exit status is 2, so that the list
cannot rot silently as the code changes). One at a time, the module is mutated in
place, the mutant's test files run (``pytest -x -q -p no:cacheprovider``, with a
time limit), and the module is restored to its pristine text, also on Ctrl-C,
SIGTERM or an error. If the process is killed outright, ``git checkout trio_sink``
restores it.

Each mutant's verdict:

- **killed**: a test failed (named in the table).
- **timeout**: the tests did not end within the time limit (``--timeout``); a mutant
  that hangs the pipeline is caught, so this counts as killed.
- **survived**: every test passed with the mutant in place. Either the tests have a
  gap (an accounting bug of that shape would go unnoticed: write the test that
  kills it, in the test file that mirrors the module), or the mutant is
  *equivalent*: it cannot change what the library does. An equivalent mutant says
  why in its ``why`` field, which the summary prints. A survivor that can change
  behaviour and is left standing on purpose (its behaviour is the better one, say)
  says what it changes in its ``known`` field: it still counts against the score.

The score is killed / (mutants - equivalent survivors). Exit status: 0 when every
survivor is argued equivalent, 1 when one is not (or a test run could not start),
2 when the list itself is wrong (an old text not found exactly once, a mutated module
that does not compile, a test file that does not exist, a name used twice).

Each test run has ``TRIO_SINK_STRICT_LEDGER=1`` (every move of a count checked),
Hypothesis's ``mutants`` profile (tests/conftest.py: derandomized and without the
example database, so a property test draws the same examples in every run), no
bytecode written (a mutant's ``.pyc`` must never outlive it), and this tree first on
``PYTHONPATH`` (the processes that tests start import the mutant too).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "trio_sink"

Verdict = Literal["killed", "timeout", "survived", "error"]


@dataclass(frozen=True)
class Mutant:
    """One hand-made mutant: in ``trio_sink/<file>``, ``old`` (found exactly once)
    becomes ``new``; ``tests`` are the test files that run against it. ``why``: for an
    equivalent mutant, why it cannot change behaviour. ``known``: for a mutant that can
    change behaviour and is known to survive, what it changes and why no test pins
    that down (it still counts as a survivor)."""

    file: str
    name: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str = ""
    known: str = ""


# -- the test files each module's mutants run against -----------------------------------

LEDGER = (
    "tests/test_ledger.py",
    "tests/test_drain.py",
    "tests/test_faults.py",
    "tests/test_monitor.py",
)
WRITER = (
    "tests/test_writer.py",
    "tests/test_sink_stage.py",
    "tests/test_drain.py",
    "tests/test_faults.py",
    "tests/test_monitor.py",
)
RECOVERY = (
    "tests/test_recovery.py",
    "tests/test_faults.py",
    "tests/test_faults_properties.py",
)
ROUTE = (
    "tests/test_route.py",
    "tests/test_drain.py",
    "tests/test_source.py",
    "tests/test_regressions.py",
)
FANOUT = (
    *ROUTE,
    "tests/test_inline_sinks.py",
    "tests/test_batch_growth.py",
)
INLINE = (
    "tests/test_inline_sinks.py",
    "tests/test_route.py",
    "tests/test_drain.py",
)
INLINE_LEDGER = (*INLINE, "tests/test_ledger.py", "tests/test_acks.py")
INLINE_WRITER = (
    "tests/test_inline_sinks.py",
    "tests/test_route.py",
    "tests/test_batch_growth.py",
    *WRITER,
)
BATCH = (
    "tests/test_batch.py",
    "tests/test_route.py",
    "tests/test_faults.py",
)
ROUTE_BATCH = (*ROUTE, "tests/test_batch.py")
GROWTH = (
    "tests/test_batch_growth.py",
    "tests/test_source.py",
)
SOURCE = (
    "tests/test_source.py",
    "tests/test_drain.py",
    "tests/test_regressions.py",
    "tests/test_control.py",
)
FEEDS = (
    "tests/test_monitor.py",
    "tests/test_faults.py",
)
CONTROL = (
    "tests/test_control.py",
    "tests/test_drain.py",
    "tests/test_regressions.py",
)
PIPELINE = (
    "tests/test_pipeline.py",
    "tests/test_faults.py",
    "tests/test_monitor.py",
)
ACKS = (
    "tests/test_ledger.py",
    "tests/test_acks.py",
    "tests/test_acks_properties.py",
)
ENDING = (
    "tests/test_ending.py",
    "tests/test_pipeline.py",
    "tests/test_faults.py",
    "tests/test_under_attack.py",
)
SPILL = (
    "tests/test_ledger.py",
    "tests/test_under_attack.py",
    "tests/test_statistics.py",
)
VIEW = (
    "tests/test_undelivered_view.py",
    "tests/test_under_attack.py",
)
WATCHDOG = (
    "tests/test_watchdog.py",
    "tests/test_under_attack.py",
    "tests/test_retry.py",
)
GUARD = (*WATCHDOG, "tests/test_writer.py", "tests/test_faults.py")
KI = ("tests/test_keyboard_interrupt.py",)
REPLAY = (
    "tests/test_replay.py",
    "tests/test_faults.py",
)


def code(indent: int, *lines: str) -> str:
    """``lines``, each indented by ``indent`` spaces and ended by a newline."""
    pad = " " * indent
    return "".join(f"{pad}{line}\n" for line in lines)


CANCELLED_ABANDON = 'ledger.abandon(self.account, "in_flight", "sink", reason, records, error)'
"""_writer.py: a failed batch reported when its store write was cancelled."""
PARKED_ABANDON = 'ledger.abandon(account, "in_flight", "sink", reason, records, error, parked=True)'
"""_recovery.py: a batch reported parked."""
PARK_ABANDON = 'ledger.abandon(account, "in_flight", "sink", reason, records, error)'
"""_recovery.py: a batch reported unparked (the store failed, or its write was cancelled)."""


# -- the mutants ---------------------------------------------------------------------------


MUTANTS: tuple[Mutant, ...] = (
    # -- _ledger_accounts.py: the strict checks themselves ------------------------------
    Mutant(
        "_ledger_accounts.py",
        "problem-returns-none",
        '        """What is wrong with the counts, or None when they add up."""\n',
        '        """What is wrong with the counts, or None when they add up."""\n'
        "        return None\n",
        LEDGER,
    ),
    Mutant(
        "_ledger_accounts.py",
        "problem-ignores-negative-counts",
        "if min(parts) < 0 or self.stored < 0 or self.stored > self.undelivered:",
        "if self.stored < 0 or self.stored > self.undelivered:",
        LEDGER,
    ),
    Mutant(
        "_ledger_accounts.py",
        "problem-ignores-stored-over-undelivered",
        "if min(parts) < 0 or self.stored < 0 or self.stored > self.undelivered:",
        "if min(parts) < 0 or self.stored < 0:",
        LEDGER,
    ),
    Mutant(
        "_ledger_accounts.py",
        "problem-sum-one-sided",
        "if self.routed != sum(parts):",
        "if self.routed < sum(parts):",
        LEDGER,
    ),
    Mutant(
        "_ledger_accounts.py",
        "problem-ignores-by-reason",
        "if sum(self.by_reason.values()) != self.undelivered:",
        "if sum(self.by_reason.values()) > self.undelivered:",
        LEDGER,
    ),
    Mutant(
        "_ledger_accounts.py",
        "strict-env-inverted",
        'return os.environ.get("TRIO_SINK_STRICT_LEDGER", "") not in ("", "0")',
        'return os.environ.get("TRIO_SINK_STRICT_LEDGER", "") in ("", "0")',
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "report-end-check-inverted",
        "if self.strict and not any(a.pending for a in accounts):",
        "if self.strict and any(a.pending for a in accounts):",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "report-ignores-open-tickets",
        "            if self.open_tickets:\n                problems.append(",
        "            if False:\n                problems.append(",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "route-unchecked",
        "        account.routed += n\n"
        "        account.waiting += n\n"
        "        if self.strict:\n"
        "            self._checked(account)\n",
        "        account.routed += n\n        account.waiting += n\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "unsend-unchecked",
        "        account.buffered -= n\n"
        "        account.waiting += n\n"
        "        if self.strict:\n"
        "            self._checked(account)\n",
        "        account.buffered -= n\n        account.waiting += n\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "take-unchecked",
        "        account.buffered -= n\n"
        "        account.in_flight += n\n"
        "        if self.strict:\n"
        "            self._checked(account)\n",
        "        account.buffered -= n\n        account.in_flight += n\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "abandon-unchecked",
        "                    account.stored += n\n"
        "            if self.strict:\n"
        "                self._checked(account)\n",
        "                    account.stored += n\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "drop-unchecked",
        "        self.discarded[group] += n\n"
        "        if self.strict:\n"
        "            self._checked(account)\n",
        "        self.discarded[group] += n\n",
        LEDGER,
    ),
    # -- _ledger.py: the moves ---------------------------------------------------------
    Mutant(
        "_ledger.py",
        "receive-off-by-one",
        "        self.received = first + n\n",
        "        self.received = first + n - 1\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "route-waiting-off-by-one",
        "        account.routed += n\n        account.waiting += n\n",
        "        account.routed += n\n        account.waiting += n - 1\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "dispatch-uncounted",
        "        self.dispatched += ticket.count\n",
        "",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "dispatch-no-settle",
        "            ticket.pending = 1\n            self.settle(ticket)\n",
        "            ticket.pending = 1\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "send-no-peak",
        "        account.buffered = buffered\n"
        "        if buffered > account.peak_buffered:\n"
        "            account.peak_buffered = buffered\n"
        "        if self.strict:\n"
        "            self._checked(account)\n"
        "\n"
        "    def unsend(",
        "        account.buffered = buffered\n"
        "        if self.strict:\n"
        "            self._checked(account)\n"
        "\n"
        "    def unsend(",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "send-peak-ge",
        "        account.buffered = buffered\n"
        "        if buffered > account.peak_buffered:\n"
        "            account.peak_buffered = buffered\n"
        "        if self.strict:\n"
        "            self._checked(account)\n"
        "\n"
        "    def unsend(",
        "        account.buffered = buffered\n"
        "        if buffered >= account.peak_buffered:\n"
        "            account.peak_buffered = buffered\n"
        "        if self.strict:\n"
        "            self._checked(account)\n"
        "\n"
        "    def unsend(",
        LEDGER,
        why="when buffered == peak_buffered the assignment writes the value already there",
    ),
    Mutant(
        "_ledger.py",
        "admit-not-routed",
        "        self.route(account, n)\n        self.send(account, n)\n",
        "        self.send(account, n)\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "deliver-off-by-one",
        "        account.in_flight -= n\n        account.delivered += n\n",
        "        account.in_flight -= n\n        account.delivered += n - 1\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "abandon-one-record-uncounted",
        "            if n:\n                assert place is not None\n",
        "            if n > 1:\n                assert place is not None\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "abandon-stored-uncounted",
        "                if stored:\n                    account.stored += n\n",
        "",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "abandon-parked-not-stored",
        "                n = len(box) - before\n                stored = True\n",
        "                n = len(box) - before\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "abandon-immediate-no-timeout",
        "if reason is DEADLINE or reason is IMMEDIATE:",
        "if reason is DEADLINE:",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "abandon-unrouted-uncounted",
        "            self.unrouted += n\n",
        "",
        (*LEDGER, "tests/test_statistics.py"),
    ),
    Mutant(
        "_ledger.py",
        "drop-keeps-routed",
        "        account.routed -= n\n        self.discarded[group] += n\n",
        "        self.discarded[group] += n\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "drop-not-discarded",
        "        account.routed -= n\n        self.discarded[group] += n\n",
        "        account.routed -= n\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "replayed-not-delivered",
        "        account.delivered += n\n        account.replayed += n\n",
        "        account.replayed += n\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "replayed-uncounted",
        "        account.delivered += n\n        account.replayed += n\n",
        "        account.delivered += n\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "repark-not-stored",
        "        account.undelivered += n\n        account.stored += n\n        if n:\n",
        "        account.undelivered += n\n        if n:\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "unpark-keeps-zero-reasons",
        "if by_reason[key] <= 0:",
        "if by_reason[key] < 0:",
        (*LEDGER, "tests/test_statistics.py"),
    ),
    Mutant(
        "_ledger.py",
        "settle-one-early",
        "        if ticket.pending == 0:\n",
        "        if ticket.pending <= 1:\n",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "settle-closes-a-namesake",
        "if open_tickets.get(ticket.first_id) is ticket:",
        "if ticket.first_id in open_tickets:",
        LEDGER,
    ),
    Mutant(
        "_ledger_accounts.py",
        "sent-to-errors-twice",
        "fresh = [r for r in records if r.id not in ids]",
        "fresh = list(records)",
        LEDGER,
    ),
    Mutant(
        "_ledger_accounts.py",
        "forget-the-floor-id",
        "if i >= floor or i in kept_parked}",
        "if i > floor or i in kept_parked}",
        LEDGER,
    ),
    Mutant(
        "_ledger_accounts.py",
        "forget-parked-ids",
        "if i >= floor or i in kept_parked}",
        "if i >= floor}",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "unstored-keeps-statistics-records",
        "enumerate(self.undelivered) if not u.stored and u.record.id >= 0]",
        "enumerate(self.undelivered) if not u.stored]",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "unstored-stores-again",
        "enumerate(self.undelivered) if not u.stored and u.record.id >= 0]",
        "enumerate(self.undelivered) if u.record.id >= 0]",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "mark-stored-uncounted",
        "            if u.sink is not None and u.sink in accounts:\n"
        "                accounts[u.sink].stored += 1\n",
        "",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "mark-stored-flag-unset",
        "attrs.evolve(undelivered[k], stored=True)",
        "attrs.evolve(undelivered[k], stored=False)",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "report-forgets-parked",
        "        for box in self.parked.values():\n            out.extend(box.values())\n",
        "",
        LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "generate-from-zero",
        "        return -self.generated\n",
        "        return -self.generated + 1\n",
        LEDGER,
    ),
    # -- _ledger.py: stored records past the sample (spilled), parked ones taken back -----
    Mutant(
        "_ledger.py",
        "spill-without-a-store",
        "            self.read_back is not None\n            and self.kept_stored >= KEEP_STORED\n",
        "            self.kept_stored >= KEEP_STORED\n",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "spill-one-late",
        "and self.kept_stored >= KEEP_STORED",
        "and self.kept_stored > KEEP_STORED",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "spill-never",
        "            and self.kept_stored >= KEEP_STORED\n",
        "            and False\n",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "spill-an-iterator",
        "            and isinstance(records, Sized)\n",
        "",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "spill-uncounted",
        "  # type: ignore[arg-type]\n                self.spilled += n\n",
        "  # type: ignore[arg-type]\n",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "spill-parked-uncounted",
        "self.parked_spilled.setdefault(name, Counter())[STAT_KEYS[kind]] += n",
        "pass",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "spill-parked-not-stored",
        "                stored = True\n            elif parked:\n",
        "            elif parked:\n",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "park-kept-uncounted",
        "                stored = True\n                self.kept_stored += n\n",
        "                stored = True\n",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "stored-kept-uncounted",
        "                if stored:\n"
        "                    self.kept_stored += n\n"
        "                else:\n",
        "                if not stored:\n",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "unstored-kept-counted",
        "                if stored:\n"
        "                    self.kept_stored += n\n"
        "                else:\n",
        "                self.kept_stored += n\n                if not stored:\n",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "unpark-counted-never",
        "if counted and len(out) < len(ids):",
        "if False:",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "unpark-more-unbounded",
        "more = min(len(ids) - len(out), sum(counted.values()))",
        "more = len(ids) - len(out)",
        SPILL,
        why="each key gives at most what it counts (take = min(more, counted[key])), so "
        "the loop takes at most sum(counted.values()) whatever more starts at: the "
        "bound in min() is implied by the loop",
    ),
    Mutant(
        "_ledger.py",
        "unpark-spilled-kept",
        "            self.spilled -= len(keys) - len(out)\n",
        "",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "unpark-spilled-all",
        "self.spilled -= len(keys) - len(out)",
        "self.spilled -= len(keys)",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "unpark-counted-not-taken",
        "                counted[key] -= take\n",
        "",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "unpark-more-not-taken",
        "                more -= take\n",
        "",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "unpark-counted-keys-dropped",
        "                keys += [key] * take\n",
        "",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "unpark-stays-stored",
        "            account.stored -= n\n",
        "",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "unpark-keeps-zero-counts",
        "            counted += Counter()  # drops the keys at 0\n",
        "",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "repark-spilled-forgotten",
        "        self.spilled += n - len(back)  # stored again, still only counted\n",
        "",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "repark-spilled-all",
        "self.spilled += n - len(back)",
        "self.spilled += n",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "repark-not-undelivered",
        "        account.undelivered += n\n        account.stored += n\n        if n:\n",
        "        account.stored += n\n        if n:\n",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "repark-reason-uncounted",
        "        if n:\n            account.by_reason[STAT_KEYS[kind]] += n\n",
        "",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "repark-kept-lost",
        "        self.undelivered.extend(\n"
        '            Undelivered(u.record, name, "sink", text, error, True, kind=kind)'
        " for u in back\n"
        "        )\n",
        "",
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "repark-says-unstored",
        'Undelivered(u.record, name, "sink", text, error, True, kind=kind) for u in back',
        'Undelivered(u.record, name, "sink", text, error, False, kind=kind) for u in back',
        SPILL,
    ),
    Mutant(
        "_ledger.py",
        "report-view-without-a-store",
        "if not self.spilled or self.read_back is None:",
        "if not self.spilled:",
        SPILL,
        why="spilled grows only in abandon() when _spill() is true, which needs read_back; "
        "read_back is set once, before a run, and never unset (a replay's ledger never "
        "has one): spilled > 0 implies read_back is not None",
    ),
    Mutant(
        "_ledger.py",
        "report-keeps-spilled-out",
        "if not self.spilled or self.read_back is None:",
        "if True:",
        SPILL,
    ),
    # -- _undelivered_view.py --------------------------------------------------------------
    Mutant(
        "_undelivered_view.py",
        "view-len-kept-only",
        "return len(self._kept) + self._spilled",
        "return len(self._kept)",
        VIEW,
    ),
    Mutant(
        "_undelivered_view.py",
        "view-reads-back-with-nothing-spilled",
        "        if not self._spilled:\n            return\n",
        "",
        VIEW,
    ),
    Mutant(
        "_undelivered_view.py",
        "view-yields-kept-twice",
        "            if (u.sink, u.record.id) in kept:\n                continue\n",
        "",
        VIEW,
    ),
    Mutant(
        "_undelivered_view.py",
        "view-skips-unstored-kept",
        "for u in self._kept}",
        "for u in self._kept if u.stored}",
        VIEW,
    ),
    Mutant(
        "_undelivered_view.py",
        "view-never-stops",
        "            if not left:\n                return\n",
        "",
        VIEW,
    ),
    Mutant(
        "_undelivered_view.py",
        "view-stops-one-late",
        "            if not left:\n",
        "            if left < 0:\n",
        VIEW,
    ),
    Mutant(
        "_undelivered_view.py",
        "view-negative-index",
        "            index += len(self)\n",
        "            pass\n",
        VIEW,
    ),
    Mutant(
        "_undelivered_view.py",
        "view-index-bound",
        "if not 0 <= index < len(self):",
        "if not 0 <= index <= len(self):",
        VIEW,
    ),
    Mutant(
        "_undelivered_view.py",
        "view-kept-index-bound",
        "if index < len(self._kept):",
        "if index <= len(self._kept):",
        VIEW,
    ),
    Mutant(
        "_undelivered_view.py",
        "view-slice-step",
        "return tuple(islice(self, start, stop, step))",
        "return tuple(islice(self, start, stop))",
        VIEW,
    ),
    # -- _writer.py ----------------------------------------------------------------------
    Mutant(
        "_writer.py",
        "cancel-skips-held",
        "            self.give_up_held(reason)\n",
        "",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "cancel-skips-take-buffered",
        "            for batch, ticket in take_buffered(recv):\n",
        "            for batch, ticket in ():\n",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "cancel-buffered-unsettled",
        '                self._give_up(batch, "buffered", reason)\n'
        "                self.ledger.settle(ticket)\n",
        '                self._give_up(batch, "buffered", reason)\n',
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "cancel-buffered-from-in-flight",
        'self._give_up(batch, "buffered", reason)',
        'self._give_up(batch, "in_flight", reason)',
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "take-uncounted",
        "            held.append(item)\n            ledger.take(account, len(batch))\n",
        "            held.append(item)\n",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "delivered-undelivered",
        "            ledger.deliver(self.account, len(batch), ticket)\n",
        "            ledger.settle(ticket)\n",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "delivered-unsettled",
        "ledger.deliver(self.account, len(batch), ticket)",
        "ledger.deliver(self.account, len(batch))",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "delivered-keeps-held",
        "        held.clear()\n        if self.recovery is not None:\n",
        "        if self.recovery is not None:\n",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "write-batch-untaken",
        "        self.ledger.take(self.account, len(records))\n        try:\n",
        "        try:\n",
        (*WRITER, "tests/test_replay.py"),
    ),
    Mutant(
        "_writer.py",
        "write-batch-undelivered",
        "        self.ledger.deliver(self.account, len(records))\n        return None\n",
        "        return None\n",
        (*WRITER, "tests/test_replay.py"),
    ),
    Mutant(
        "_writer.py",
        "write-batch-failure-from-buffered",
        'self.ledger.abandon(self.account, "in_flight", "sink", reason, records, exc)',
        'self.ledger.abandon(self.account, "buffered", "sink", reason, records, exc)',
        (*WRITER, "tests/test_replay.py"),
    ),
    Mutant(
        "_writer.py",
        "failed-parks-permanent-errors",
        "if recovery is not None and recovery.parking is not None and not permanent:",
        "if recovery is not None and recovery.parking is not None:",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "failed-not-stored-at-once",
        "await self.give_up(records, reason, exc, store=self.rescue)",
        "await self.give_up(records, reason, exc, store=None)",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "send-errors-of-nothing",
        "if errors is None or not records:",
        "if errors is None:",
        WRITER,
        why="never called with no records: a held batch is never empty (the router "
        "makes no empty sub-batch, a side feed offers whole batches), and "
        "_replay_gave_up writes a chunk, which has items; and the error group's feed "
        "sends nothing for no records",
    ),
    Mutant(
        "_writer.py",
        "write-batch-failure-unreported",
        'self.ledger.abandon(self.account, "in_flight", "sink", reason, records, exc)\n',
        "pass\n",
        (*WRITER, "tests/test_replay.py"),
    ),
    Mutant(
        "_writer.py",
        "give-up-not-stored",
        'self._give_up(records, "in_flight", reason, error, stored=stored)',
        'self._give_up(records, "in_flight", reason, error, stored=False)',
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "give-up-cancelled-unreported",
        code(16, CANCELLED_ABANDON, "self.settle_held()"),
        code(16, "self.settle_held()"),
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "give-up-cancelled-unsettled",
        code(16, CANCELLED_ABANDON, "self.settle_held()"),
        code(16, CANCELLED_ABANDON),
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "give-up-cancelled-from-buffered",
        code(16, CANCELLED_ABANDON),
        code(16, CANCELLED_ABANDON.replace("in_flight", "buffered")),
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "give-up-cancelled-says-stored",
        code(16, CANCELLED_ABANDON),
        code(16, CANCELLED_ABANDON.replace("error)", "error, stored=True)")),
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "data-and-sink-error",
        "        if self.data:\n",
        '        if self.data and reason.kind == "sink_error":\n',
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "give-up-unsettled",
        code(
            8,
            'self._give_up(records, "in_flight", reason, error, stored=stored)',
            "self.settle_held()",
        ),
        code(8, 'self._give_up(records, "in_flight", reason, error, stored=stored)'),
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "monitor-drop-skipped",
        "            self.ledger.drop(self.account, place, MONITOR_GROUP, len(records))\n",
        "            pass\n",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "monitor-abandoned-not-dropped",
        "        if self.data:\n",
        "        if True:\n",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "settle-held-unsettled",
        "            settle(ticket)\n        self.held.clear()\n",
        "            pass\n        self.held.clear()\n",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "settle-held-keeps-held",
        "            settle(ticket)\n        self.held.clear()\n",
        "            settle(ticket)\n",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "give-up-held-from-buffered",
        '            self._give_up(batch, "in_flight", reason)\n',
        '            self._give_up(batch, "buffered", reason)\n',
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "give-up-held-unsettled",
        '            self._give_up(batch, "in_flight", reason)\n        self.settle_held()\n',
        '            self._give_up(batch, "in_flight", reason)\n',
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "monitor-writer-keeps-rescue",
        "self.rescue = rescue if data else None",
        "self.rescue = rescue",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "loop-delivered-unsettled",
        "ledger.deliver(account, len(batch), item[1])",
        "ledger.deliver(account, len(batch))",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "loop-delivered-uncounted",
        "ledger.deliver(account, len(batch), item[1])",
        "ledger.settle(item[1])",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "loop-keeps-held",
        "                held.clear()\n                ledger.deliver(",
        "                ledger.deliver(",
        WRITER,
    ),
    Mutant(
        "_writer.py",
        "loop-success-not-told",
        "                if recovery is not None:\n"
        "                    recovery.succeeded()\n"
        "            took = perf_counter()",
        "            took = perf_counter()",
        (*WRITER, "tests/test_recovery.py"),
    ),
    Mutant(
        "_writer.py",
        "loop-no-look-at-the-deadline",
        "if (control.stopping and clock() >= control.scope.deadline) or watchdog.timed_out:",
        "if watchdog.timed_out:",
        (*WRITER, "tests/test_under_attack.py"),
    ),
    Mutant(
        "_writer.py",
        "loop-writes-untimed",
        "            if timed:\n                watchdog.begin(clock())\n",
        "",
        GUARD,
    ),
    Mutant(
        "_writer.py",
        "loop-failure-still-running",
        "            except Exception as exc:\n                watchdog.began = None\n",
        "            except Exception as exc:\n",
        GUARD,
    ),
    Mutant(
        "_writer.py",
        "loop-success-still-running",
        "            else:\n                watchdog.began = None\n",
        "            else:\n",
        GUARD,
    ),
    Mutant(
        "_writer.py",
        "run-watchdog-left-running",
        "            self.watchdog.scope.cancel()\n",
        "",
        GUARD,
    ),
    Mutant(
        "_writer.py",
        "guarded-timed-out-kept",
        "                    watchdog.timed_out = False\n",
        "",
        GUARD,
    ),
    Mutant(
        "_writer.py",
        "guarded-began-kept",
        "                    watchdog.began = None\n                    if self.held:\n",
        "                    if self.held:\n",
        GUARD,
        why="began is read only by the watchdog after its sleep for a write it saw begin; "
        "after a timeout its next look finds writes == seen and it waits for the next "
        "begin(), which sets began anew: the stale value is never read",
    ),
    Mutant(
        "_writer.py",
        "guarded-timed-out-batch-kept",
        "                    if self.held:\n",
        "                    if False:\n",
        GUARD,
    ),
    Mutant(
        "_writer.py",
        "guarded-once",
        "        while True:\n            watchdog.guard = guard = trio.CancelScope()\n",
        "        for _ in range(1):\n            watchdog.guard = guard = trio.CancelScope()\n",
        GUARD,
    ),
    Mutant(
        "_writer.py",
        "guarded-timeout-not-a-write-timeout",
        "await self._after_failure(WriteTimeout(timed_out(timeout)))",
        "await self._after_failure(OSError(timed_out(timeout)))",
        GUARD,
    ),
    Mutant(
        "_writer.py",
        "after-failure-first-attempt-again",
        "await self.attempt(records, exc)",
        "await self.attempt(records)",
        GUARD,
    ),
    Mutant(
        "_writer.py",
        "after-failure-reports-the-first-error",
        "            await self.failed(last)\n",
        "            await self.failed(exc)\n",
        GUARD,
    ),
    Mutant(
        "_writer.py",
        "after-failure-undelivered",
        "        else:\n            self.delivered()\n",
        "        else:\n            pass\n",
        GUARD,
    ),
    # -- _watchdog.py ----------------------------------------------------------------------
    Mutant(
        "_watchdog.py",
        "watch-cancels-between-writes",
        "if self.writes == seen and self.began is not None:",
        "if self.writes == seen:",
        WATCHDOG,
    ),
    Mutant(
        "_watchdog.py",
        "watch-cancels-a-newer-write",
        "if self.writes == seen and self.began is not None:",
        "if self.began is not None:",
        WATCHDOG,
    ),
    Mutant(
        "_watchdog.py",
        "watch-never-idles",
        "if self.writes == seen or self.timed_out:",
        "if self.timed_out:",
        WATCHDOG,
    ),
    Mutant(
        "_watchdog.py",
        "watch-idles-only-for-no-write",
        "if self.writes == seen or self.timed_out:",
        "if self.writes == seen:",
        WATCHDOG,
        why="timed_out is set just before guard.cancel(), and the loop's test follows "
        "with no checkpoint in between, so no write can begin meanwhile: writes == seen "
        "holds whenever timed_out is true there",
    ),
    Mutant(
        "_watchdog.py",
        "watch-without-a-timeout",
        "        if timeout is None:\n            return\n",
        "",
        WATCHDOG,
    ),
    Mutant(
        "_watchdog.py",
        "watch-sleeps-from-now",
        "await trio.sleep_until(self.last_began + timeout)",
        "await trio.sleep(timeout)",
        WATCHDOG,
    ),
    Mutant(
        "_watchdog.py",
        "begin-no-wake",
        "            idle.set()\n",
        "            pass\n",
        WATCHDOG,
    ),
    Mutant(
        "_watchdog.py",
        "begin-not-running",
        "self.began = self.last_began = now",
        "self.last_began = now",
        WATCHDOG,
    ),
    Mutant(
        "_watchdog.py",
        "begin-uncounted",
        "        self.writes += 1\n",
        "",
        WATCHDOG,
    ),
    Mutant(
        "_watchdog.py",
        "blocked-logged-every-time",
        "        if not self.blocking_logged:\n",
        "        if True:\n",
        WATCHDOG,
    ),
    # -- _recovery.py --------------------------------------------------------------------
    Mutant(
        "_recovery.py",
        "divert-untaken",
        code(16, "held.append(item)", "w.ledger.take(w.account, len(item[0]))"),
        code(16, "held.append(item)"),
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "divert-unreported",
        "            w.give_up_held(reason)",
        "            w.settle_held()",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "divert-unsettled",
        "            w.give_up_held(reason)",
        '            w.ledger.abandon(w.account, "in_flight", "sink", reason, records)\n'
        "            held.clear()",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "divert-from-buffered",
        "            w.give_up_held(reason)",
        '            w.ledger.abandon(w.account, "buffered", "sink", reason, records)\n'
        "            w.settle_held()",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "park-not-parked",
        'ledger.abandon(account, "in_flight", "sink", reason, records, error, parked=True)',
        'ledger.abandon(account, "in_flight", "sink", reason, records, error, stored=True)',
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "park-unsettled",
        code(8, "    " + PARKED_ABANDON, "w.settle_held()"),
        code(8, "    " + PARKED_ABANDON),
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "park-store-failure-unreported",
        "            w.store_failed(len(records), exc)\n"
        '            ledger.abandon(account, "in_flight", "sink", reason, records, error)\n',
        "            w.store_failed(len(records), exc)\n",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "park-store-failure-says-stored",
        "            w.store_failed(len(records), exc)\n"
        '            ledger.abandon(account, "in_flight", "sink", reason, records, error)\n',
        code(
            12,
            "w.store_failed(len(records), exc)",
            PARK_ABANDON.replace("error)", "error, stored=True)"),
        ),
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "park-cancelled-unsettled",
        '            ledger.abandon(account, "in_flight", "sink", reason, records, error)\n'
        "            w.settle_held()\n"
        "            raise\n",
        '            ledger.abandon(account, "in_flight", "sink", reason, records, error)\n'
        "            raise\n",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "park-cancelled-from-buffered",
        '            ledger.abandon(account, "in_flight", "sink", reason, records, error)\n'
        "            w.settle_held()\n"
        "            raise\n",
        '            ledger.abandon(account, "buffered", "sink", reason, records, error)\n'
        "            w.settle_held()\n"
        "            raise\n",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "trial-undelivered",
        "            await self._divert(None)\n            return\n        w.delivered()\n",
        "            await self._divert(None)\n            return\n",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "replay-uncounted",
        "        w.ledger.replayed(w.account, ids)\n",
        "",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "replay-unconsumed",
        "        await self._consume(chunk)\n        w.ledger.replayed(w.account, ids)\n",
        "        w.ledger.replayed(w.account, ids)\n",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "replay-ready-when-empty",
        "and parking.pending > 0\n            and self.healthy",
        "and parking.pending >= 0\n            and self.healthy",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "gave-up-not-reparked",
        "        w.ledger.repark(w.account, ids, reason, exc)\n",
        "",
        RECOVERY,
    ),
    Mutant(
        "_recovery.py",
        "gave-up-goes-on-after-store-failure",
        "            self.breaker.probe_failed(trio.current_time(), store_exc)\n"
        "            return\n"
        "        await self._consume(chunk)\n",
        "            self.breaker.probe_failed(trio.current_time(), store_exc)\n"
        "        await self._consume(chunk)\n",
        RECOVERY,
    ),
    # -- _route.py -----------------------------------------------------------------------
    # (a batch's ticket is opened, and its destinations counted, by Ledger.dispatch)
    Mutant(
        "_ledger.py",
        "route-unopened",
        "        self.open_tickets[ticket.first_id] = ticket  # until each sub-batch is settled\n",
        "",
        (*ROUTE, "tests/test_ledger.py"),
    ),
    Mutant(
        "_ledger.py",
        "route-uncounted",
        "            account.routed += n\n            account.waiting += n\n",
        "",
        (*ROUTE, "tests/test_ledger.py"),
    ),
    Mutant(
        "_route.py",
        "route-undispatched",
        "        self.ledger.dispatch(ticket, out)\n",
        "",
        ROUTE,
    ),
    Mutant(
        "_ledger.py",
        "route-dispatch-off-by-one",
        "            ticket.pending = len(out)\n",
        "            ticket.pending = len(out) + 1\n",
        (*ROUTE, "tests/test_ledger.py"),
    ),
    Mutant(
        "_route.py",
        "group-undiscarded",
        "            self.ledger.discard(group, len(records))\n",
        "            pass\n",
        ROUTE,
    ),
    Mutant(
        "_route.py",
        "when-errors-unmarked",
        "                self.ledger.sent_to_errors(errored.values())\n",
        "                pass\n",
        (*ROUTE, "tests/test_faults.py"),
    ),
    # -- _fanout.py ----------------------------------------------------------------------
    Mutant(
        "_fanout.py",
        "ship-unsent",
        "                    ledger.send(dest.account, n)\n",
        "                    pass\n",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "ship-sent-uncounted",
        "                raise\n            self.sent += 1\n",
        "                raise\n",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "ship-keeps-hand",
        "        self.hand = None\n        self.sent = 0\n",
        "        self.sent = 0\n",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "send-waiting-unsent",
        "        self.ledger.send(account, size)\n        began = time.perf_counter()\n",
        "        began = time.perf_counter()\n",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "send-cancelled-no-unsend",
        "            self.ledger.unsend(account, size)\n",
        "",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "abandon-unrouted-unreported",
        '            ledger.abandon(None, None, "route", reason, unrouted(*self.hand))\n',
        "",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "abandon-unsent-unreported",
        code(12, 'ledger.abandon(dest.account, "waiting", "route", reason, sub)'),
        "",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "abandon-from-buffered",
        'ledger.abandon(dest.account, "waiting", "route", reason, sub)',
        'ledger.abandon(dest.account, "buffered", "route", reason, sub)',
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "abandon-unsettled",
        '            ledger.abandon(dest.account, "waiting", "route", reason, sub)\n'
        "            ledger.settle(ticket)\n",
        '            ledger.abandon(dest.account, "waiting", "route", reason, sub)\n',
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "abandon-skips-one",
        "self.out[self.sent :]",
        "self.out[self.sent + 1 :]",
        FANOUT,
    ),
    # -- _ledger.py: a sub-batch written by the routing task ----------------------------
    Mutant(
        "_ledger.py",
        "deliver-waiting-unsettled",
        code(
            8,
            "if ticket.pending > 1:  # settle(ticket), written out: it runs per sink and batch",
            "    ticket.pending -= 1",
            "else:",
            "    self.settle(ticket)",
        ),
        "",
        INLINE_LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "deliver-waiting-settles-twice",
        "            ticket.pending -= 1\n        else:\n            self.settle(ticket)\n",
        "            ticket.pending -= 1\n        self.settle(ticket)\n",
        INLINE_LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "deliver-waiting-never-settles-the-last",
        "        if ticket.pending > 1:  # settle(ticket)",
        "        if ticket.pending >= 1:  # settle(ticket)",
        INLINE_LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "deliver-waiting-from-buffered",
        "        account.waiting -= n\n        account.delivered += n\n",
        "        account.buffered -= n\n        account.delivered += n\n",
        INLINE_LEDGER,
    ),
    Mutant(
        "_ledger.py",
        "deliver-waiting-uncounted",
        "        account.waiting -= n\n        account.delivered += n\n",
        "        account.waiting -= n\n",
        INLINE_LEDGER,
    ),
    # -- _fanout.py: the routing task's own writes, and buffers bounded in records -------
    Mutant(
        "_fanout.py",
        "inline-ready-ignores-buffered",
        code(20, "and not account.buffered", "and not account.in_flight"),
        code(20, "and not account.in_flight"),
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "inline-ready-ignores-in-flight",
        "                    and not account.in_flight\n",
        "",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "inline-ready-ignores-pause",
        "                    and inline.pause.resumed is None\n",
        "",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "inline-sent-uncounted",
        "                        self.sent += 1\n                        continue\n",
        "                        continue\n",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "inline-undelivered",
        "                        ledger.deliver_waiting(account, n, msg[1])\n",
        "",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "inline-failure-swallowed",
        "                        inline.failed(msg, exc)\n",
        "                        pass\n",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "inline-writes-untimed",
        "                        watchdog.begin(trio.current_time())\n",
        "                        pass\n",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "watchdog-times-channel-waits",
        code(
            12,
            "if watchdog is not None:",
            "    watchdog.began = None  # a wait for room is no write",
        ),
        "",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "watchdog-times-from-a-write-that-awaited",
        code(
            28,
            "if watchdog is not None:",
            "    watchdog.began = None  # the next write's time starts anew",
        ),
        "",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "resume-drops-timed-out-write",
        "                inline.timed_out(msg, watchdog.write_timeout)\n",
        "",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "resume-timed-out-kept",
        "        watchdog.timed_out = False\n        watchdog.began = None\n",
        "        watchdog.began = None\n",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "resume-began-kept",
        "        watchdog.timed_out = False\n        watchdog.began = None\n",
        "        watchdog.timed_out = False\n",
        FANOUT,
        why="began is set only while the routing task writes a sink itself, and cleared"
        " after a write that awaited and before any send to a channel: a cut that lands in"
        " the write of out[sent] has resume() demote that sink, and the _send_out that"
        " follows takes that sub-batch down the channel path first, which clears began; a"
        " cut that lands anywhere else finds began None already. No later write finds it"
        " stale (begin() is never skipped)",
    ),
    Mutant(
        "_fanout.py",
        "resume-rest-unsent",
        "        if self.sent < len(self.out):\n            await self._send_out(0)\n",
        "",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "wait-room-inverted",
        "            while account.buffered and account.buffered + size > bound:\n",
        "            while account.buffered and account.buffered + size <= bound:\n",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "wait-room-once",
        "            while account.buffered and account.buffered + size > bound:\n",
        "            if account.buffered and account.buffered + size > bound:\n",
        FANOUT,
    ),
    Mutant(
        "_fanout.py",
        "switch-small-inline-batches-weigh-nothing",
        "(size + 15) // 16",
        "size // 16",
        FANOUT,
    ),
    # -- _writer.py: a write by the routing task that failed, room in the buffer --------
    Mutant(
        "_writer.py",
        "writer-ignores-inline-failure",
        "            if failure is not None and failure[0] is item:\n",
        "            if False:\n",
        INLINE_WRITER,
    ),
    Mutant(
        "_writer.py",
        "writer-inline-failure-delivered",
        "                await self._after_failure(failure[1])\n",
        "                self.delivered()\n",
        INLINE_WRITER,
    ),
    Mutant(
        "_writer.py",
        "writer-room-unset",
        "            room.set()\n",
        "            pass\n",
        INLINE_WRITER,
    ),
    # -- _inline.py ----------------------------------------------------------------------
    Mutant(
        "_inline.py",
        "inline-failure-not-handed-over",
        "        self.writer.inline_failure = (msg, exc)\n",
        "",
        INLINE,
    ),
    Mutant(
        "_inline.py",
        "inline-failure-stays-active",
        "        self.active = False\n        self.writer.inline_failure",
        "        self.writer.inline_failure",
        INLINE,
    ),
    Mutant(
        "_inline.py",
        "inline-awaited-stays-active",
        "            self.active = False\n            log.warning(",
        "            log.warning(",
        INLINE,
    ),
    Mutant(
        "_inline.py",
        "inline-error-sink",
        " and slot is not error_slot",
        "",
        INLINE,
    ),
    # -- _batch.py -----------------------------------------------------------------------
    Mutant(
        "_batch.py",
        "pick-ids-unpicked",
        "                tuple(map(self._ids.__getitem__, picks)),\n",
        "                tuple(self._ids[: len(picks)]),\n",
        BATCH,
    ),
    Mutant(
        "_batch.py",
        "pick-raws-unpicked",
        "                tuple(map(self._raws.__getitem__, picks)),\n",
        "                tuple(self._raws[: len(picks)]),\n",
        BATCH,
    ),
    Mutant(
        "_batch.py",
        "of-drops-records",
        "            records=kept,\n",
        "",
        BATCH,
    ),
    Mutant(
        "_batch.py",
        "slice-rebuilds-records",
        "            if records is not None:\n                return Batch.of(records[index])\n",
        "",
        BATCH,
    ),
    # -- _route.py: sub-batches as Batches ------------------------------------------------
    Mutant(
        "_route.py",
        "default-flags-inverted",
        "rejected = [k for k in range(len(payloads)) if k not in accepted]",
        "rejected = [k for k in range(len(payloads)) if k in accepted]",
        ROUTE_BATCH,
    ),
    Mutant(
        "_route.py",
        "default-ids-unpicked",
        "tuple(map(payloads.__getitem__, rejected)), picks=rejected)",
        "tuple(map(payloads.__getitem__, rejected)))",
        ROUTE_BATCH,
    ),
    Mutant(
        "_route.py",
        "select-ids-unpicked",
        "return Batch(whole.ids, whole.raws, picked, picks=picks)",
        "return Batch(whole.ids, whole.raws, picked)",
        ROUTE_BATCH,
    ),
    Mutant(
        "_route.py",
        "select-slow-picks-by-raw-flags",
        "picks = list(compress(range(len(truth)), truth))",
        "picks = list(compress(range(len(flags)), flags))",
        ROUTE_BATCH,
    ),
    # -- _source.py: growing batches, and the guard of the routing task's writes ---------
    Mutant(
        "_source.py",
        "growth-sync-past-max",
        "self.size = min(2 * size, self.max_size)",
        "self.size = 2 * size",
        GROWTH,
    ),
    Mutant(
        "_source.py",
        "growth-async-past-max",
        "self.size = min(2 * self.size, self.max_size) if full",
        "self.size = 2 * self.size if full",
        GROWTH,
    ),
    Mutant(
        "_source.py",
        "growth-not-reset-after-timeout",
        "self.max_size) if full else self.batch_size",
        "self.max_size) if full else self.size",
        GROWTH,
    ),
    Mutant(
        "_source.py",
        "growth-after-any-batch",
        "            full = len(self.buf) >= self.size\n",
        "            full = bool(self.buf)\n",
        GROWTH,
    ),
    Mutant(
        "_source.py",
        "puller-full-at-batch-size",
        "if len(buf) >= self.size:",
        "if len(buf) >= self.batch_size:",
        GROWTH,
    ),
    Mutant(
        "_source.py",
        "guarded-no-resume",
        "                await fanout.resume()\n",
        "",
        (*FANOUT, *WATCHDOG),
    ),
    Mutant(
        "_source.py",
        "source-guarded-once",
        "        while True:\n            with fanout.guard():\n",
        "        if True:\n            with fanout.guard():\n",
        (*FANOUT, *WATCHDOG),
    ),
    # -- _source.py ----------------------------------------------------------------------
    Mutant(
        "_source.py",
        "abandon-skips-fanout",
        "        self.fanout.abandon(reason)\n",
        "",
        SOURCE,
    ),
    Mutant(
        "_source.py",
        "abandon-pulled-unreported",
        code(12, 'self.ledger.abandon(None, None, "source", reason, unrouted(first, self.buf))'),
        "",
        SOURCE,
    ),
    Mutant(
        "_source.py",
        "abandon-pulled-not-received",
        "            first = self.ledger.receive(len(self.buf))\n",
        "            first = self.ledger.received\n",
        SOURCE,
    ),
    Mutant(
        "_source.py",
        "pull-sync-unheld",
        "            raws: list[Any] = []\n            self.buf = raws\n",
        "            raws: list[Any] = []\n",
        SOURCE,
    ),
    # -- _feeds.py -----------------------------------------------------------------------
    Mutant(
        "_feeds.py",
        "offer-unadmitted",
        "        self.ledger.admit(self.account, n)\n",
        "",
        FEEDS,
    ),
    Mutant(
        "_feeds.py",
        "offer-undiscarded",
        "            self.ledger.discard(self.group, n)\n",
        "",
        FEEDS,
    ),
    Mutant(
        "_feeds.py",
        "offer-ticket-never-settles",
        "Ticket(batch.ids[0], n, 1)",
        "Ticket(batch.ids[0], n, 0)",
        FEEDS,
    ),
    Mutant(
        "_feeds.py",
        "error-feed-sends-twice",
        "batch = tuple(self.ledger.sent_to_errors(records))",
        "batch = tuple(records)",
        FEEDS,
    ),
    Mutant(
        "_feeds.py",
        "offer-spell-never-ends",
        "        self.full = False\n        self.ledger.admit",
        "        self.ledger.admit",
        FEEDS,
    ),
    Mutant(
        "_feeds.py",
        "offer-logs-every-loss",
        "            if not self.full:\n",
        "            if True:\n",
        FEEDS,
    ),
    Mutant(
        "_feeds.py",
        "offer-to-a-closed-channel-raises",
        "except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):",
        "except trio.WouldBlock:",
        FEEDS,
    ),
    Mutant(
        "_feeds.py",
        "error-feed-offers-nothing",
        "        if batch:\n            self.offer(batch)\n",
        "        if True:\n            self.offer(batch)\n",
        FEEDS,
    ),
    # -- _ki.py, and the calls that mark the user's code -----------------------------------
    Mutant(
        "_ki.py",
        "protected-does-nothing",
        "    return trio.lowlevel.enable_ki_protection(fn)\n",
        "    return fn\n",
        KI,
    ),
    Mutant(
        "_ki.py",
        "unprotect-does-nothing",
        "            trio.lowlevel.disable_ki_protection(_Code(code))\n",
        "            pass\n",
        KI,
    ),
    Mutant(
        "_ki.py",
        "unprotect-own-code",
        "            if code.co_filename.startswith(_OWN):\n",
        "            if False:\n",
        KI,
    ),
    Mutant(
        "_ki.py",
        "own-code-too-wide",
        '_OWN = os.path.join(os.path.dirname(__file__), "")',
        "_OWN = os.path.dirname(__file__)",
        KI,
    ),
    Mutant(
        "_ki.py",
        "unprotect-a-hostile-object-raises",
        "            continue\n        for code in codes:\n",
        "            raise\n        for code in codes:\n",
        KI,
    ),
    Mutant(
        "_ki.py",
        "codes-of-a-generator",
        "        return [obj.gi_code]\n",
        "        return []\n",
        KI,
    ),
    Mutant(
        "_ki.py",
        "codes-of-an-async-generator",
        "        return [obj.ag_code]\n",
        "        return []\n",
        KI,
    ),
    Mutant(
        "_ki.py",
        "codes-of-a-coroutine",
        "        return [obj.cr_code]\n",
        "        return []\n",
        KI,
    ),
    Mutant(
        "_ki.py",
        "codes-of-a-partial",
        "        return _codes(obj.func)\n",
        "        return []\n",
        KI,
    ),
    Mutant(
        "_ki.py",
        "codes-of-a-method",
        "        return _codes(obj.__func__)\n",
        "        return []\n",
        KI,
    ),
    Mutant(
        "_ki.py",
        "codes-of-a-function",
        "    if isinstance(code, types.CodeType):\n        return [code]\n",
        "",
        KI,
    ),
    Mutant(
        "_ki.py",
        "codes-of-an-object-call-only",
        '("__call__", "__next__", "__anext__", "__iter__", "__aiter__")',
        '("__call__",)',
        KI,
    ),
    Mutant(
        "_sink.py",
        "sink-methods-protected",
        "        unprotect(write, flush, aclose)\n",
        "",
        KI,
    ),
    Mutant(
        "_source.py",
        "source-iteration-protected",
        "                unprotect(ait)\n",
        "",
        KI,
    ),
    Mutant(
        "_source.py",
        "source-open-protected",
        "                unprotect(source.open, source.aclose)\n",
        "",
        KI,
    ),
    Mutant(
        "_pipeline.py",
        "parse-and-when-protected",
        "        unprotect(parse, *(route.when or route.when_batch for route in self._routes))\n",
        "",
        KI,
    ),
    Mutant(
        "_recovery.py",
        "probe-protected",
        "        unprotect(self.probe)\n",
        "",
        KI,
    ),
    # -- _control.py ---------------------------------------------------------------------
    Mutant(
        "_control.py",
        "take-buffered-nothing",
        code(4, "try:", "    while True:", "        try:"),
        code(4, "try:", "    while False:", "        try:"),
        CONTROL,
    ),
    Mutant(
        "_control.py",
        "take-buffered-closes-first",
        code(4, "try:", "    while True:", "        try:"),
        code(4, "recv.close()", "try:", "    while True:", "        try:"),
        CONTROL,
    ),
    Mutant(
        "_control.py",
        "reason-for-inverted",
        "        if self.scope.cancel_called:\n            return self.deadline_reason\n",
        "        if not self.scope.cancel_called:\n            return self.deadline_reason\n",
        CONTROL,
    ),
    Mutant(
        "_control.py",
        "reason-for-group-inverted",
        "exc.split(trio.Cancelled)[1] is None",
        "exc.split(trio.Cancelled)[1] is not None",
        CONTROL,
    ),
    Mutant(
        "_control.py",
        "stop-same-deadline-new-reason",
        "if deadline < self.scope.deadline:",
        "if deadline <= self.scope.deadline:",
        CONTROL,
    ),
    # -- _pipeline.py --------------------------------------------------------------------
    Mutant(
        "_ending.py",
        "store-rest-skipped",
        "            await store_the_rest(ledger, rescue)\n",
        "            pass\n",
        PIPELINE,
    ),
    Mutant(
        "_pipeline.py",
        "monitor-is-data",
        "        data = slot is not monitor_slot\n",
        "        data = True\n",
        PIPELINE,
    ),
    Mutant(
        "_pipeline.py",
        "monitor-recovery-gets-the-store",
        "        rescue = self._rescue if data else None\n",
        "        rescue = self._rescue\n",
        PIPELINE,
    ),
    Mutant(
        "_pipeline.py",
        "read-back-unset",
        "            ledger.read_back = functools.partial(read_back, self._rescue)\n",
        "            pass\n",
        (*PIPELINE, "tests/test_under_attack.py"),
    ),
    Mutant(
        "_pipeline.py",
        "watchdog-not-started",
        "                        if writer.write_timeout is not None:\n",
        "                        if False:\n",
        ("tests/test_watchdog.py", *PIPELINE, "tests/test_under_attack.py"),
    ),
    # -- _ending.py ----------------------------------------------------------------------
    Mutant(
        "_ending.py",
        "store-rest-unmarked",
        "            else:\n                ledger.mark_stored(places)\n",
        "            else:\n                pass\n",
        ENDING,
    ),
    Mutant(
        "_ending.py",
        "store-rest-failure-marked",
        "ledger.mark_stored(places[:stored])",
        "ledger.mark_stored(places)",
        ENDING,
    ),
    Mutant(
        "_ending.py",
        "store-rest-writes-nothing",
        "        if places:\n            try:\n",
        "        if True:\n            try:\n",
        ENDING,
        why="arescue_some([]) writes nothing: write_some() loops over no chunk, so no "
        "segment is opened and nothing raises, even on a closed store (the seal that "
        "follows runs either way); the only difference is one hop to a worker thread",
    ),
    Mutant(
        "_ending.py",
        "store-rest-partial-unmarked",
        "                ledger.mark_stored(places[:stored])\n",
        "",
        ENDING,
    ),
    Mutant(
        "_ending.py",
        "store-rest-partial-is-nothing",
        "stored = exc.stored if isinstance(exc, PartlyStoredError) else 0",
        "stored = 0",
        ENDING,
    ),
    Mutant(
        "_ending.py",
        "store-rest-failure-miscounted",
        "_failed(ledger, len(places) - stored, exc)",
        "_failed(ledger, len(places), exc)",
        ENDING,
    ),
    Mutant(
        "_ending.py",
        "store-rest-failure-unnoted",
        '    ledger.note_error("rescue", f"rescue store raised {describe(exc)}")\n',
        "",
        ENDING,
    ),
    Mutant(
        "_ending.py",
        "store-rest-unsealed",
        "            await trio.to_thread.run_sync(store.seal)\n",
        "            pass\n",
        ENDING,
    ),
    Mutant(
        "_ending.py",
        "store-rest-seals-only-a-backlog",
        "        try:\n            await trio.to_thread.run_sync(store.seal)\n",
        "        if not places:\n"
        "            return\n"
        "        try:\n"
        "            await trio.to_thread.run_sync(store.seal)\n",
        ENDING,
    ),
    Mutant(
        "_ending.py",
        "store-rest-seal-failure-unnoted",
        "            _failed(ledger, 0, exc)\n",
        "            pass\n",
        ENDING,
    ),
    Mutant(
        "_ending.py",
        "store-rest-unshielded",
        "with trio.CancelScope(shield=True):",
        "with trio.CancelScope(shield=False):",
        ENDING,
    ),
    Mutant(
        "_ending.py",
        "read-back-other-runs",
        "            if e.run == store.run:\n",
        "            if True:\n",
        (*ENDING, "tests/test_undelivered_view.py"),
    ),
    Mutant(
        "_ending.py",
        "read-back-unstored",
        "e.stage, e.reason, stored=True, kind=kind_of(e.reason)",
        "e.stage, e.reason, stored=False, kind=kind_of(e.reason)",
        (*ENDING, "tests/test_undelivered_view.py"),
    ),
    Mutant(
        "_ending.py",
        "log-deadline-every-sink",
        "            if account.by_reason[reason]:\n",
        "            if True:\n",
        (*ENDING, "tests/test_drain.py"),
    ),
    # -- _replay.py ----------------------------------------------------------------------
    Mutant(
        "_replay.py",
        "deliver-not-routed-unreported",
        '                ledger.abandon(None, None, "replay", NO_ROUTE, (record,))\n',
        "",
        REPLAY,
    ),
    Mutant(
        "_replay.py",
        "deliver-undispatched",
        "values()))\n        ticket = Ticket(first, dispatched, 0)\n",
        "values()))\n        ticket = Ticket(first, 0, 0)\n",
        REPLAY,
    ),
    Mutant(
        "_replay.py",
        "deliver-dispatch-count",
        "dispatched = sum(len(g[1]) for g in groups.values()) + sum(map(len, nowhere.values()))",
        "dispatched = sum(len(g[1]) for g in groups.values())",
        REPLAY,
    ),
    Mutant(
        "_replay.py",
        "deliver-nowhere-unadmitted",
        "            [(w, (records, ticket)) for w, records in written]\n"
        "            + [(lost[name], (records, ticket))"
        " for name, (records, _) in unsent.items()],\n",
        "            [(w, (records, ticket)) for w, records in written],\n",
        REPLAY,
    ),
    Mutant(
        "_replay.py",
        "deliver-nowhere-from-buffered",
        'ledger.abandon(lost[name].account, "waiting", "replay", reason, records)',
        'ledger.abandon(lost[name].account, "buffered", "replay", reason, records)',
        REPLAY,
    ),
    Mutant(
        "_replay.py",
        "deliver-nowhere-unsettled",
        '            ledger.abandon(lost[name].account, "waiting", "replay", reason, records)\n'
        "            ledger.settle(ticket)\n",
        '            ledger.abandon(lost[name].account, "waiting", "replay", reason, records)\n',
        REPLAY,
    ),
    Mutant(
        "_replay.py",
        "deliver-unadmitted",
        "            ledger.send(writer.account, len(records))\n",
        "",
        REPLAY,
    ),
    Mutant(
        "_replay.py",
        "deliver-unsettled",
        "            exc = await writer.write_batch(records)\n            ledger.settle(ticket)\n",
        "            exc = await writer.write_batch(records)\n",
        REPLAY,
    ),
    Mutant(
        "_replay.py",
        "deliver-consumes-delivered-not",
        "            consumed.extend((i.start, i.end) for i in its)\n",
        "",
        REPLAY,
    ),
    Mutant(
        "_replay.py",
        "deliver-failure-inverted",
        "            if exc is not None:\n                now = wall_time()\n",
        "            if exc is None:\n                now = wall_time()\n",
        REPLAY,
    ),
    # -- acknowledgements ---------------------------------------------------------------
    Mutant(
        "_ledger.py",
        "frontier-past-the-routed",
        "        routed = self.dispatched + self.unrouted\n",
        "        routed = self.received\n",
        ACKS,
    ),
    Mutant(
        "_ledger.py",
        "frontier-ignores-unsafe",
        "return min(next(iter(self.open_tickets), routed), self.unsafe_from)",
        "return next(iter(self.open_tickets), routed)",
        ACKS,
    ),
    Mutant(
        "_ledger.py",
        "frontier-ignores-open-tickets",
        "return min(next(iter(self.open_tickets), routed), self.unsafe_from)",
        "return min(routed, self.unsafe_from)",
        ACKS,
    ),
    Mutant(
        "_ledger.py",
        "unrouted-never-unsafe",
        "            self.unrouted += n\n"
        "            if not stored:\n                self._unsafe(before)\n",
        "            self.unrouted += n\n",
        ACKS,
    ),
    Mutant(
        "_ledger.py",
        "sink-failure-never-unsafe",
        "                else:\n                    self._unsafe(before)\n",
        "",
        ACKS,
    ),
    Mutant(
        "_ledger.py",
        "unsafe-counts-stored",
        "if not u.stored and u.record.id >= 0]\n        self.unsafe_from",
        "if u.record.id >= 0]\n        self.unsafe_from",
        ACKS,
    ),
    Mutant(
        "_ledger.py",
        "unsafe-counts-statistics-records",
        "if not u.stored and u.record.id >= 0]\n        self.unsafe_from",
        "if not u.stored]\n        self.unsafe_from",
        ACKS,
    ),
    Mutant(
        "_ledger.py",
        "stored-at-end-still-unsafe",
        "        self.unsafe_from = NO_ID\n        self._unsafe(0)\n",
        "",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "hold-nothing",
        "            self.held.append((first_id, items, trio.current_time()))",
        "            pass",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "frontier-included",
        "while held and held[0][0] < frontier:",
        "while held and held[0][0] <= frontier:",
        ACKS,
        why="a held batch that starts at the frontier is cut at 0: nothing is added to the"
        " call, the batch is put back unchanged, and the loop breaks, as it would have"
        " without entering",
    ),
    Mutant(
        "_acks.py",
        "whole-batch-past-frontier",
        "if first + len(batch) <= frontier:",
        "if True:",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "cut-one-late",
        "cut = frontier - first\n",
        "cut = frontier - first + 1\n",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "failed-call-counted",
        "            if done:\n                self.acknowledged += len(items)",
        "            if True:\n                self.acknowledged += len(items)",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "raise-goes-on",
        "        except Exception as exc:\n            self._end(",
        "        except Exception as exc:\n            self.held.clear()\n            (",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "cancelled-call-goes-on",
        "            elif not self.ended:\n                self._end(",
        "            elif not self.ended:\n                (",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "finishing-never-returns",
        "            if self._finishing:\n                return\n",
        "",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "never-woken-by-settling",
        "        ledger.on_settled = self.poke\n",
        "",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "stuck-while-stopping",
        "            and not self.control.stopping\n",
        "",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "stuck-drops-safe-items",
        "            and not (self.held and self.held[0][0] < unsafe)\n",
        "",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "calls-not-paced",
        "with trio.move_on_at(began + self.interval):",
        "with trio.move_on_at(began):",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "pace-outlives-the-stages",
        "        self._wake.set()\n        self._finished.set()\n",
        "        self._wake.set()\n",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "final-not-shielded",
        "shield=cancelled,",
        "shield=False,",
        ACKS,
    ),
    Mutant(
        "_acks.py",
        "final-no-grace",
        "                deadline = now + FINAL_ACK_GRACE\n",
        "                deadline = now\n",
        ACKS,
    ),
    Mutant(
        "_ending.py",
        "final-ack-skipped",
        "            await acks.final(control)\n",
        "            pass\n",
        ACKS,
    ),
    Mutant(
        "_ending.py",
        "final-ack-before-store",
        "        if rescue is not None:\n            await store_the_rest(ledger, rescue)\n"
        "        if acks is not None:\n            await acks.final(control)\n",
        "        if acks is not None:\n            await acks.final(control)\n"
        "        if rescue is not None:\n            await store_the_rest(ledger, rescue)\n",
        ACKS,
    ),
    Mutant(
        "_ending.py",
        "source-closed-never",
        "        if stage.opened:\n            await close_source(source, control)\n",
        "        pass\n",
        ACKS,
    ),
    Mutant(
        "_source.py",
        "abandoned-items-not-held",
        "            if self.acks is not None:\n                self.acks.hold(first, self.buf)\n",
        "",
        ACKS,
    ),
    Mutant(
        "_source.py",
        "ack-default-counts",
        "return isinstance(source, Source) and type(source).ack is not Source.ack",
        "return isinstance(source, Source)",
        ACKS,
    ),
)


# -- running them -------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    mutant: Mutant
    verdict: Verdict
    seconds: float
    detail: str
    """The first failing test (killed), or what went wrong (error)."""


def problems_of(mutants: Sequence[Mutant]) -> list[str]:
    """What is wrong with the list: every check that needs no test run."""
    out: list[str] = []
    seen: set[str] = set()
    for m in mutants:
        where = f"{m.name} ({m.file})"
        if m.name in seen:
            out.append(f"{where}: the name is used twice")
        seen.add(m.name)
        path = PACKAGE / m.file
        if not path.is_file():
            out.append(f"{where}: no file {path}")
            continue
        text = path.read_text(encoding="utf-8")
        found = text.count(m.old)
        if found != 1:
            out.append(f"{where}: the old text is found {found} times, not once")
            continue
        if m.old == m.new:
            out.append(f"{where}: the new text is the old one")
        try:
            compile(text.replace(m.old, m.new), str(path), "exec")
        except SyntaxError as exc:
            out.append(f"{where}: the mutated module does not compile: {exc}")
        if not m.tests:
            out.append(f"{where}: no test files")
        out.extend(f"{where}: no test file {t}" for t in m.tests if not (ROOT / t).is_file())
    return out


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def mutated(m: Mutant) -> Iterator[None]:
    """``m`` applied to its module, which is restored (text and times) at the end,
    whatever ends it."""
    path = PACKAGE / m.file
    pristine = path.read_bytes()
    stat = path.stat()
    text = pristine.decode("utf-8")
    assert text.count(m.old) == 1, m.name
    try:
        path.write_bytes(text.replace(m.old, m.new).encode("utf-8"))
        yield
    finally:
        path.write_bytes(pristine)
        # Its old times back: the module's own .pyc stays valid, and a mutant's is
        # never written (PYTHONDONTWRITEBYTECODE), so none can be taken for it.
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["TRIO_SINK_STRICT_LEDGER"] = "1"
    env["HYPOTHESIS_PROFILE"] = "mutants"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # Child processes that tests start import this tree's trio_sink too (the mutant),
    # not whatever an installed copy points at.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    env.pop("CI", None)
    return env


def run_tests(tests: Sequence[str], timeout: float) -> tuple[Verdict, float, str]:
    """Run ``tests`` (stopping at the first failure); the verdict, seconds, detail."""
    cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd,
        cwd=ROOT,
        env=_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: a timeout ends all of it
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", time.monotonic() - start, f"no end within {timeout:g} s"
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    seconds = time.monotonic() - start
    if proc.returncode == 0:
        return "survived", seconds, ""
    if proc.returncode in (1, 2):  # tests failed; or errors at collection, interrupted
        return "killed", seconds, _first_failure(out)
    tail = " | ".join(out.strip().splitlines()[-3:])
    return "error", seconds, f"pytest exited with {proc.returncode}: {tail}"


_FAILURE = re.compile(r"^(?:FAILED|ERROR) (tests/\S+)")


def _first_failure(out: str) -> str:
    """The first test of pytest's short summary (``-ra``) that failed or erred."""
    for line in out.splitlines():
        found = _FAILURE.match(line)
        if found:
            return found[1]
    return "(see the pytest output)"


def run(mutants: Sequence[Mutant], timeout: float) -> list[Result]:
    results: list[Result] = []
    width = max(len(m.name) for m in mutants)
    files = max(len(m.file) for m in mutants)
    for k, m in enumerate(mutants, 1):
        with mutated(m):
            verdict, seconds, detail = run_tests(m.tests, timeout)
        result = Result(m, verdict, seconds, detail)
        results.append(result)
        note = detail if verdict != "survived" else (f"equivalent: {m.why}" if m.why else "")
        print(
            f"[{k:3}/{len(mutants)}] {verdict:8} {seconds:6.1f}s  {m.name:<{width}}  "
            f"{m.file:<{files}} {note}",
            flush=True,
        )
    return results


def summary(results: Sequence[Result]) -> tuple[str, bool]:
    """The summary's text, and whether every survivor is argued equivalent (and every
    run could start)."""
    killed = [r for r in results if r.verdict in ("killed", "timeout")]
    timeouts = [r for r in results if r.verdict == "timeout"]
    equivalent = [r for r in results if r.verdict == "survived" and r.mutant.why]
    survivors = [r for r in results if r.verdict == "survived" and not r.mutant.why]
    errors = [r for r in results if r.verdict == "error"]
    argued_but_killed = [r for r in killed if r.mutant.why]
    can_change = len(results) - len(equivalent)
    score = 100.0 * len(killed) / can_change if can_change else 100.0
    lines = [
        f"mutants: {len(results)}; killed: {len(killed)} ({len(timeouts)} by timeout); "
        f"equivalent: {len(equivalent)}; survived: {len(survivors)}; errors: {len(errors)}",
        f"score: {len(killed)}/{can_change} of the mutants that can change behaviour "
        f"killed ({score:.1f}%)",
    ]
    for r in equivalent:
        lines.append(f"  equivalent {r.mutant.name} ({r.mutant.file}): {r.mutant.why}")
    for r in survivors:
        known = r.mutant.known or "no test notices it"
        lines.append(f"  SURVIVED {r.mutant.name} ({r.mutant.file}): {known}")
    for r in errors:
        lines.append(f"  ERROR {r.mutant.name} ({r.mutant.file}): {r.detail}")
    for r in argued_but_killed:
        lines.append(f"  killed though argued equivalent: {r.mutant.name}: {r.detail}")
    return "\n".join(lines), not survivors and not errors


def markdown(results: Sequence[Result], text: str) -> str:
    """The table of a run, with its summary."""
    out = [
        "# Mutants",
        "",
        "The last full run of `python tools/mutate.py --report tools/MUTANTS.md`: each",
        "hand-made mutant of the accounting code, and the test that kills it (the first",
        "to fail), why it cannot change behaviour, or for a survivor what it changes. See",
        "the docstring of `tools/mutate.py` for how to run it and what a survivor means.",
        "",
        "| # | mutant | module | result | killed by / why equivalent / what survives |",
        "|---|---|---|---|---|",
    ]
    for k, r in enumerate(results, 1):
        result: str = r.verdict
        if r.verdict == "survived" and r.mutant.why:
            result = "equivalent"
            detail = r.mutant.why
        elif r.verdict in ("killed", "timeout"):
            detail = f"`{r.detail}`" if r.verdict == "killed" else r.detail
        else:
            detail = r.detail or r.mutant.known or "no test notices it"
        module = f"`{r.mutant.file}`"
        detail = detail.replace("|", "\\|")
        out.append(f"| {k} | `{r.mutant.name}` | {module} | {result} | {detail} |")
    out += ["", "```", text, "```", ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--only", action="append", metavar="NAME", help="run this mutant")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--check", action="store_true", help="check the list and exit")
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds per mutant (default 120)"
    )
    parser.add_argument("--report", type=Path, metavar="FILE", help="write the table here")
    parser.add_argument(
        "--no-baseline", action="store_true", help="skip the unmutated run of the tests"
    )
    args = parser.parse_args(argv)

    problems = problems_of(MUTANTS)
    if problems:
        for p in problems:
            print(f"mutate: {p}", file=sys.stderr)
        return 2
    mutants: Sequence[Mutant] = MUTANTS
    if args.only:
        names = {m.name for m in MUTANTS}
        unknown = [n for n in args.only if n not in names]
        if unknown:
            print(f"mutate: no mutant named {', '.join(unknown)}", file=sys.stderr)
            return 2
        mutants = [m for m in MUTANTS if m.name in args.only]
    if args.list:
        for m in mutants:
            print(f"{m.name:<40} {m.file:<20} {' '.join(m.tests)}")
        return 0
    if args.check:
        print(f"mutate: {len(MUTANTS)} mutants, each old text found exactly once")
        return 0

    signal.signal(signal.SIGTERM, _interrupt)
    # A shell starts a background job with SIGINT ignored, and an ignored signal stays
    # ignored in every process started from it: with Python's own handler here, the
    # test runs get it too (tests/test_keyboard_interrupt.py skips without it), and a
    # SIGINT ends this run cleanly.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if not args.no_baseline:
        tests = sorted({t for m in mutants for t in m.tests})
        verdict, seconds, detail = run_tests(tests, args.timeout)
        if verdict != "survived":
            print(f"mutate: the tests fail without any mutant ({verdict}): {detail}")
            return 1
        print(f"baseline: {len(tests)} test files pass unmutated ({seconds:.1f}s)", flush=True)
    results = run(mutants, args.timeout)
    text, ok = summary(results)
    print(text)
    if args.report is not None:
        args.report.write_text(markdown(results, text), encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
