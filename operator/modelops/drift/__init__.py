"""modelops.drift: the drift-monitor sidecar that sits in front of Triton.

Pure (no I/O, numpy only):

- :mod:`~modelops.drift.reference` -- reference statistics (quantile bins with
  open tails, counts, mean, variance) and their versioned JSON file format;
- :mod:`~modelops.drift.detectors` -- PSI, Jensen-Shannon, binned KS with its
  asymptotic p-value, and the per-feature / per-model decision;
- :mod:`~modelops.drift.window` -- streaming per-feature histograms of a window;
- :mod:`~modelops.drift.monitor` -- windows in, evaluations and drift state out,
  and the ``/drift`` summary document;
- :mod:`~modelops.drift.payload` -- KServe v2 request bodies (JSON and Triton's
  binary tensors) to feature rows;
- :mod:`~modelops.drift.http1` -- HTTP/1.1 message framing for the proxy
  (request heads through llhttp, the strictness checks in Python);
- :mod:`~modelops.drift.request_head` -- what the proxy derives from a request
  head's bytes (framing, infer call, head sent upstream), computed once per head.

I/O:

- :mod:`~modelops.drift.proxy` -- the asyncio HTTP proxy: client side and server;
- :mod:`~modelops.drift.upstream_pool` -- the proxy's keep-alive connections to
  Triton (and to a rollout's candidate) and their pools;
- :mod:`~modelops.drift.mirror` -- a rollout's mirrored HTTP requests to the
  candidate, their answers kept for the comparison;
- :mod:`~modelops.drift.admin_endpoints` -- ``/metrics``, ``/drift``,
  ``/drift/histograms``, ``/healthz``, ``/rollout`` on the admin port;
- :mod:`~modelops.drift.feeder` -- the statistics worker thread and its queue,
  bounded in bytes and in CPU, between any front end and the monitor;
- :mod:`~modelops.drift.metrics` -- Prometheus metrics in their own registry;
- :mod:`~modelops.drift.sample`, :mod:`~modelops.drift.source` -- reading samples
  and references from files and URIs;
- :mod:`~modelops.drift.cli` (``modelops drift-monitor``, with the ``/drift``
  schema) and :mod:`~modelops.drift.reference_cli` (``modelops drift-reference``).

Nothing here imports torch or kopf.
"""
