"""Tools to prove pipelines lossless: fakes, a sink conformance check, Hypothesis
strategies and a scenario runner. Imported explicitly (``import trio_sink.testing``),
never by ``import trio_sink``.
"""
