"""The sink stage: one task per sink, writing batches from its own bounded channel."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio

from ._drain import DrainControl, take_buffered
from ._exceptions import describe
from ._faults import ErrorHook, SinkFaults
from ._ledger import Ledger, SinkAccount
from ._record import Record
from ._rescue import RescueStore
from ._retry import CircuitBreaker, RetryPolicy
from ._route import SinkBatch
from ._sink import SinkSlot

__all__ = ["run_sink_stage"]

drain_log = logging.getLogger("trio_sink.drain")
sink_log = logging.getLogger("trio_sink.sink")


async def run_sink_stage(
    slot: SinkSlot,
    account: SinkAccount,
    control: DrainControl,
    recv: trio.MemoryReceiveChannel[SinkBatch],
    *,
    feeds_monitor: bool = True,
    retry: RetryPolicy | None = None,
    breaker: CircuitBreaker | None = None,
    rescue: RescueStore | None = None,
    report_error: ErrorHook | None = None,
) -> None:
    """Write every batch of ``recv`` to the sink until the input ends, then flush.

    A write that raises marks its batch undelivered with the exception; the sink goes
    on with the next batch. While the sink is paused, it takes nothing from ``recv``
    (its backlog waits there). When the stage is cancelled (drain deadline, immediate
    stop, cancellation from outside) the batch being written and every batch left in
    the channel are reported. ``aclose()`` is awaited exactly once, at the end.
    ``feeds_monitor``: the monitor's final record waits for this stage to end (every
    sink but the monitor's own).

    With ``retry``, ``breaker``, ``rescue`` or ``report_error``, the batches go
    through :class:`~trio_sink._faults.SinkFaults`: failed writes are retried, a
    failing sink is taken out of service and probed, what it could not take is stored
    (and replayed into it once it recovers), and the records of every failed write are
    passed to ``report_error`` (copies with ``.error`` set; a hook with a ``close()``
    is closed when the stage ends). The monitor's own stage never stores its records.
    """
    ledger = control.ledger
    write = slot.write
    name = slot.name
    hand: SinkBatch | None = None
    faults: SinkFaults | None = None
    if not feeds_monitor:
        rescue = None  # statistics records are not data
    if retry is not None or breaker is not None or rescue is not None or report_error is not None:
        faults = SinkFaults(
            slot,
            account,
            ledger,
            retry=retry,
            breaker=breaker,
            rescue=rescue,
            report_error=report_error,
        )
    try:
        if faults is not None:
            await faults.run(recv)
            await faults.finish()
        else:
            while True:
                if account.paused:
                    await account.wait_resumed()
                # Take what is buffered without a task switch; wait only when empty
                # (the count says which, and saves a WouldBlock raised per wait).
                try:
                    if account.buffered:
                        try:
                            item = recv.receive_nowait()
                        except trio.WouldBlock:
                            item = await recv.receive()
                    else:
                        item = await recv.receive()
                except trio.EndOfChannel:
                    break
                hand = item
                batch, ticket = item
                size = len(batch)
                account.buffered -= size
                account.in_flight = size
                if account.paused:  # paused while this task waited for the batch
                    await account.wait_resumed()
                try:
                    await write(batch)
                except Exception as exc:
                    reason = f"sink raised {describe(exc)}"
                    sink_log.error(
                        'sink.write_failed sink=%s records=%d error="%s"',
                        name,
                        len(batch),
                        describe(exc),
                        exc_info=exc,
                    )
                    ledger.abandon(account, "sink", reason, batch, exc)
                else:
                    account.delivered += size
                account.in_flight = 0
                hand = None
                ledger.settle(ticket)
        try:
            await slot.flush()
        except Exception as exc:
            _closing_failed(control, name, "flush", exc)
        drain_log.info(
            "drain.complete sink=%s seconds=%.3f delivered=%d",
            name,
            control.seconds_since_stop(),
            account.delivered,
        )
    except BaseException as exc:
        reason = control.reason_for(exc)
        # What it gives up is logged per sink once the run has ended (drain.deadline).
        if faults is not None:
            faults.abandon_held(reason)
        if hand is not None:
            _give_up(ledger, account, feeds_monitor, reason, hand[0])
            ledger.settle(hand[1])
            account.in_flight = 0
        for batch, ticket in take_buffered(recv):
            _give_up(ledger, account, feeds_monitor, reason, batch)
            ledger.settle(ticket)
            account.buffered -= len(batch)
        raise
    finally:
        recv.close()
        if faults is not None:
            faults.close()
        if feeds_monitor:
            control.stage_ended()
        try:
            await slot.aclose()
        except Exception as exc:
            _closing_failed(control, name, "aclose", exc)


def _closing_failed(control: DrainControl, name: str, what: str, exc: Exception) -> None:
    sink_log.error('sink.%s_failed sink=%s error="%s"', what, name, describe(exc), exc_info=exc)
    errors = control.ledger.sink_errors
    text = f"{what} raised {describe(exc)}"
    errors[name] = f"{errors[name]}; {text}" if name in errors else text


def _give_up(
    ledger: Ledger, account: SinkAccount, data: bool, reason: str, records: Sequence[Record]
) -> None:
    """Report records a sink's task gives up. The monitor's (``data`` False) are its
    statistics records: not data, so they are counted in ``discarded["monitor"]`` (and
    taken back from its ``routed``) instead, and a slow or hung monitor sink never makes
    a run "not ok"."""
    if data:
        ledger.abandon(account, "sink", reason, records)
    else:
        account.routed -= len(records)
        ledger.discarded["monitor"] += len(records)
