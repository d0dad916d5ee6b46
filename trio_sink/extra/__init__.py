"""Optional integrations, each behind its own extra and imported explicitly.

- :mod:`trio_sink.extra.prometheus`: a pipeline's statistics as Prometheus metrics
  (``pip install trio_sink[prometheus]``).
"""
