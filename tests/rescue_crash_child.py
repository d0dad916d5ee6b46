"""A rescue store's writer or replay, to be killed; run by tests/test_rescue_crash.py.

Usage: rescue_crash_child.py DIR BATCHES BATCH_SIZE

    Writes BATCHES batches of BATCH_SIZE entries, printing ``wrote N`` (entries so far)
    after each; then starts one more line, as a writer killed mid-write leaves it (half
    a line, flushed to the OS), prints ``torn``, and waits for stdin to close.

Usage: rescue_crash_child.py replay DIR STOP_AT FAIL

    Replays the entries of DIR meant for sink "db" (``sink_name="db"``) to a sink that
    prints ``delivered RAW ...`` and, when FAIL is 1, then raises. Once the sink was
    written to, the STOP_AT-th call of ``os.fsync`` prints ``fsync STOP_AT`` and waits
    for stdin to close before it runs: what the replay wrote before it is with the OS,
    not necessarily on the disk. Prints ``done`` when the replay ends first.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from trio_sink import Record, RescueEntry, RescueStore


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def write_then_tear(directory: str, batches: int, size: int) -> None:
    store = RescueStore(directory, segment_max_records=25, run="child")
    n = 0
    for _ in range(batches):
        batch = [
            RescueEntry.from_record(
                Record(i, f"raw {i}", {"i": i}), sink="db", reason="drain deadline", run="child"
            )
            for i in range(n, n + size)
        ]
        n += store.write(batch)
        say(f"wrote {n}")
    f = store.segment_log._file
    assert f is not None, "the last batch must leave a segment open"
    f.write(b'{"v":1,"run":"child","id":' + str(n).encode() + b',"time":17')
    f.flush()
    say("torn")
    sys.stdin.read()


def replay_until(directory: str, stop_at: int, fail: bool) -> None:
    import trio

    from trio_sink import replay

    written = False
    calls = 0
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        nonlocal calls
        if written:
            calls += 1
            if calls == stop_at:
                say(f"fsync {calls}")
                sys.stdin.read()
        real_fsync(fd)

    class Db:
        name = "db"

        async def write(self, batch: Sequence[Record]) -> None:
            nonlocal written
            written = True
            say("delivered " + " ".join(str(r.raw) for r in batch))
            if fail:
                raise OSError("db is down")

    setattr(os, "fsync", fsync)  # noqa: B010 - a replacement of a narrower type
    store = RescueStore(directory)
    trio.run(lambda: replay(store, [Db()], sink_name="db"))
    say("done")


def main() -> None:
    if sys.argv[1] == "replay":
        replay_until(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1")
    else:
        write_then_tear(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))


if __name__ == "__main__":
    main()
