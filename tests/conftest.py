from __future__ import annotations

import os

# Every ledger of the suite checks its accounts after every move (and so do the
# subprocesses the tests start, which inherit the variable).
os.environ.setdefault("TRIO_SINK_STRICT_LEDGER", "1")

from hypothesis import HealthCheck, settings

# "dev": quick local runs. "ci": Hypothesis's own ci profile (derandomized, no deadline),
# which it loads by itself when CI=true; registered here too so it can be named.
settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    parent=settings.get_profile("ci"),
    max_examples=200,
    suppress_health_check=[HealthCheck.too_slow],
)
# "mutants": tools/mutate.py's test runs. The dev profile, derandomized and without the
# example database, so that a mutant's verdict is the same from one run to the next.
settings.register_profile(
    "mutants", parent=settings.get_profile("dev"), derandomize=True, database=None
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
