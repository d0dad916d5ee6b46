"""Writes batches to a rescue store until killed; run by tests/test_rescue_crash.py.

Usage: rescue_crash_child.py DIR BATCHES BATCH_SIZE

Writes BATCHES batches of BATCH_SIZE entries, printing ``wrote N`` (entries so far)
after each; then starts one more line, as a writer killed mid-write leaves it (half a
line, flushed to the OS), prints ``torn``, and waits for stdin to close.
"""

from __future__ import annotations

import sys

from trio_sink import Record, RescueEntry, RescueStore


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main() -> None:
    directory, batches, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
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


if __name__ == "__main__":
    main()
