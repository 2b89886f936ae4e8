"""`modelops drift-monitor`: the drift-monitor sidecar in front of Triton.

It proxies Triton's HTTP/REST (KServe v2) API unchanged on ``--port``,
Triton's gRPC service (``inference.GRPCInferenceService``) unchanged on
``--grpc-port`` when ``--grpc-upstream`` names Triton's gRPC endpoint (see
:mod:`modelops.drift.grpc_proxy`), observes the watched model's infer requests of both,
and serves its own endpoints on ``--admin-port``:

- ``GET /metrics``: Prometheus text format (``modelops_drift_*``,
  ``modelops_proxy_*``; see :mod:`modelops.drift.metrics`);
- ``GET /healthz``: ``{"status": "ok", "features": N}`` while the process serves;
- ``GET /rollout``: this sidecar's gated-rollout figures since the rollout's epoch
  began (role, requests, errors, latency buckets, mirrored / compared / agreed,
  split, Triton's loaded versions); see docs/rollouts.md, "The data plane";
- ``GET /drift``: the drift summary below. The operator copies ``score``,
  ``drifted`` and ``since`` into ``ModelDeployment.status.drift``; the document
  only ever gains keys within one ``schema`` version.

``/drift`` schema ``modelops.drift.summary/v1`` (numbers that are NaN or
infinite are ``null``; times are RFC 3339 UTC)::

    {
      "schema": "modelops.drift.summary/v1",
      "model": "fraud",                 # --model, "" when every model is watched
      "method": "ksz",                  # ksz (default) | psi | ks | js
      "threshold": 0.001,               # PSI/JS threshold, or the KS family-wise alpha
                                        # (ksz: over the monitor's whole life)
      "window_alpha": 0.00049,          # ksz/ks: the alpha the last window was allowed
      "score": 0.31,                    # max per-feature score of `method` in the last
                                        # window (KS: the statistic D); null before the first
      "drifted": true,                  # model-level decision (after --confirm-windows)
      "since": "2026-01-01T10:00:00.000000Z",  # when the current drifted streak began; null
      "drifted_features": ["f3"],       # features that failed in the last window
      "drifted_features_ratio": 0.05,
      "conclusive": true,               # false: some feature had fewer than --min-finite
                                        # finite values; such a window cannot clear drift
      "window": {
        "size": 1000, "seconds": 0.0,   # configured window (rows / seconds, 0 = off)
        "samples": 1000,                # rows in the last evaluated window
        "current_samples": 12,          # rows in the window being filled
        "evaluations": 17,              # windows evaluated since start
        "evaluated_at": "...",          # null before the first evaluation
        "consecutive_drifted": 1,
        "confirm_windows": 1
      },
      "samples": {"total": 17012, "dropped": 0, "skipped": 0, "queued": 0},
      "features": [                     # reference order, empty before the first window
        {"name": "f3", "score": 0.31, "drifted": true, "psi": 0.31, "js": 0.05,
         "ks": 0.2, "ks_pvalue": 1e-30, "mean_shift": 0.52, "variance_ratio": 1.01,
         "n": 1000, "nonfinite": 0}    # n: finite values; nonfinite: NaN/inf values
      ]
    }

Every flag can also be set with an environment variable ``MODELOPS_DRIFT_<FLAG>``
(``--window-seconds`` -> ``MODELOPS_DRIFT_WINDOW_SECONDS``); a flag on the command
line wins over the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import prometheus_client

from modelops.drift.detectors import (
    DEFAULT_JS_THRESHOLD,
    DEFAULT_KS_ALPHA,
    DEFAULT_MAX_NONFINITE_FRACTION,
    DEFAULT_MIN_FINITE,
    DEFAULT_PSI_THRESHOLD,
    METHODS,
    DetectorConfig,
)
from modelops.drift.feeder import (
    DEFAULT_CPU_SHARE,
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_MAX_QUEUE_BYTES,
)
from modelops.drift.grpc_proxy import GrpcProxy, GrpcProxyConfig
from modelops.drift.inplace_agent import InPlaceAgent
from modelops.drift.metrics import DriftMetrics
from modelops.drift.monitor import DriftMonitor, WindowConfig
from modelops.drift.proxy import DriftProxy, ProxyConfig
from modelops.drift.reference import DEFAULT_BINS, Reference, ReferenceError
from modelops.drift.source import load_reference
from modelops.drift.traffic_plane import (
    DEFAULT_MIRROR_MAX_IN_FLIGHT,
    DEFAULT_MIRROR_TIMEOUT,
    DEFAULT_TRAFFIC_FILE,
)

log = logging.getLogger("modelops.drift")
ENV_PREFIX = "MODELOPS_DRIFT_"


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def _add(
    parser: argparse.ArgumentParser,
    flag: str,
    *,
    type: Callable[[str], Any] = str,
    default: Any = None,
    help: str,
    **kw: Any,
) -> None:
    env = _env_name(flag)
    # argparse runs `type` on string defaults, so env values are validated too.
    default = os.environ.get(env, default)
    parser.add_argument(
        flag, type=type, default=default, help=f"{help} [env {env}; default: %(default)s]", **kw
    )


def _positive_int(v: str) -> int:
    i = int(v)
    if i < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {v}")
    return i


def _non_negative_int(v: str) -> int:
    i = int(v)
    if i < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return i


def _non_negative_float(v: str) -> float:
    f = float(v)
    if not f >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {v}")
    return f


def _positive_float(v: str) -> float:
    f = float(v)
    if not f > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {v}")
    return f


def _fraction(v: str) -> float:
    f = float(v)
    if not 0 < f <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {v}")
    return f


def _unit_interval(v: str) -> float:
    f = float(v)
    if not 0 <= f < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {v}")
    return f


def _csv_list(v: str) -> list[str]:
    return [s.strip() for s in v.split(",") if s.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("reference and inputs")
    _add(
        g,
        "--reference",
        help="reference statistics (.json from `modelops drift-reference`) "
        "or a raw sample (.npy/.npz/.csv); local path, file:// or http(s)://. Without it "
        "no drift statistics are kept (the sidecar of a gated rollout without drift "
        "detection only proxies, mirrors / splits and counts)",
    )
    _add(
        g,
        "--bins",
        type=_positive_int,
        default=DEFAULT_BINS,
        help="bins per feature when --reference is a raw sample",
    )
    _add(g, "--features", type=_csv_list, help="comma-separated subset of reference features")
    _add(
        g,
        "--model",
        help="watch only this model's infer requests; also the `model` "
        "metric label (default: all models, label '')",
    )
    _add(
        g,
        "--input",
        help="input tensor holding the features along its last axis "
        "(default: inputs named like the features, else the first input whose last "
        "dimension equals the number of features)",
    )

    g = parser.add_argument_group("detection")
    _add(
        g,
        "--method",
        choices=METHODS,
        default="ksz",
        help="test that decides drift (ksz: KS and mean z-test per feature, false-alarm "
        "probability --ks-alpha over the monitor's life; see modelops.drift.detectors)",
    )
    _add(
        g,
        "--threshold",
        type=float,
        help="threshold of the chosen method: PSI or JS value, "
        "or the family-wise alpha for ks (overrides the method-specific flag)",
    )
    _add(
        g,
        "--psi-threshold",
        type=float,
        default=DEFAULT_PSI_THRESHOLD,
        help="a feature drifts when its PSI exceeds this",
    )
    _add(
        g,
        "--js-threshold",
        type=float,
        default=DEFAULT_JS_THRESHOLD,
        help="a feature drifts when its Jensen-Shannon divergence (base 2) exceeds this",
    )
    _add(
        g,
        "--ks-alpha",
        type=float,
        default=DEFAULT_KS_ALPHA,
        help="family-wise false-alarm probability per window for ks (Bonferroni over "
        "features); for ksz, over every window of the monitor's life (spent over windows)",
    )
    _add(
        g,
        "--min-drifted-features",
        type=_positive_int,
        default=1,
        help="the model drifts when at least this many features drift",
    )
    _add(
        g,
        "--min-finite",
        type=_positive_int,
        default=DEFAULT_MIN_FINITE,
        help="finite values every feature needs in a window before the window can count as "
        "clean (capped at --window)",
    )
    _add(
        g,
        "--max-nonfinite-fraction",
        type=_unit_interval,
        default=DEFAULT_MAX_NONFINITE_FRACTION,
        help="a feature with a larger share of NaN/inf values in a window drifts",
    )
    _add(
        g,
        "--window",
        type=_non_negative_int,
        default=1000,
        help="rows per evaluation window (0: time-based only)",
    )
    _add(
        g,
        "--window-seconds",
        type=_non_negative_float,
        default=0.0,
        help="also evaluate every T seconds (0: count-based only)",
    )
    _add(
        g,
        "--min-samples",
        type=_positive_int,
        default=100,
        help="a time-based window with fewer rows is not evaluated yet",
    )
    _add(
        g,
        "--confirm-windows",
        type=_positive_int,
        default=1,
        help="consecutive drifted windows before the model counts as drifted",
    )

    g = parser.add_argument_group("proxy")
    _add(g, "--upstream", default="http://127.0.0.1:8000", help="Triton's HTTP endpoint")
    _add(g, "--host", default="0.0.0.0", help="proxy listen address")
    _add(g, "--port", type=_non_negative_int, default=8080, help="proxy listen port")
    _add(g, "--admin-host", help="address of /metrics, /drift, /healthz (default: --host)")
    _add(
        g,
        "--admin-port",
        type=_non_negative_int,
        default=8090,
        help="port of /metrics, /drift, /healthz",
    )
    _add(
        g,
        "--max-body-bytes",
        type=_positive_int,
        default=64 * 1024 * 1024,
        help="larger request bodies get 413 from the proxy",
    )
    _add(
        g,
        "--upstream-timeout",
        type=float,
        default=300.0,
        help="seconds without a byte from Triton before answering 504",
    )
    _add(
        g,
        "--max-connections",
        type=_positive_int,
        default=256,
        help="connections to Triton (requests past it wait for one)",
    )
    _add(
        g,
        "--max-clients",
        type=_positive_int,
        default=256,
        help="open client connections; one more gets 503 with Retry-After",
    )
    _add(
        g,
        "--max-buffered-bytes",
        type=_positive_int,
        default=64 * 1024 * 1024,
        help="request body bytes held in memory, all connections together; a request that "
        "would pass it gets 503 with Retry-After (bodies above --stats-max-bytes are "
        "streamed, not held)",
    )
    _add(
        g,
        "--header-timeout",
        type=_positive_float,
        default=10.0,
        help="seconds a client may take to send a request head (then 408 and close)",
    )
    _add(
        g,
        "--body-timeout",
        type=_positive_float,
        default=30.0,
        help="seconds a request body may stall, or a client may not read its response "
        "(then 408 and close)",
    )
    _add(
        g,
        "--idle-timeout",
        type=_positive_float,
        default=60.0,
        help="seconds a keep-alive connection may stay idle (then 408 and close)",
    )
    _add(
        g,
        "--stats-queue-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_QUEUE_BYTES,
        help="bytes of request bodies waiting for the statistics worker before new ones "
        "are dropped",
    )
    _add(
        g,
        "--stats-max-bytes",
        type=_positive_int,
        default=DEFAULT_MAX_PAYLOAD_BYTES,
        help="request bodies (and decompressed bodies) above this are proxied but not "
        "inspected (counted as skipped, reason too_large)",
    )
    _add(
        g,
        "--stats-cpu",
        type=_fraction,
        default=DEFAULT_CPU_SHARE,
        help="share of one core the statistics worker may use; past it requests are dropped",
    )
    _add(
        g,
        "--sample-rate",
        type=_fraction,
        default=1.0,
        help="fraction of successful infer requests inspected",
    )
    _add(
        g,
        "--drain-seconds",
        type=_non_negative_float,
        default=20.0,
        help="on SIGTERM: stop accepting, then wait at most this long for requests in "
        "progress to finish before exiting (keep it under the pod's grace period)",
    )
    _add(g, "--log-level", default="INFO", help="logging level")
    add_grpc_arguments(parser)
    add_rollout_arguments(parser)
    add_inplace_arguments(parser)


def add_rollout_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "gated rollouts",
        "A stable pod's sidecar mirrors a share of infer requests to the candidate version "
        "(answers compared, discarded) and/or forwards a share to it (canary weight), as the "
        "traffic file says; every sidecar counts its infer calls for GET /rollout. gRPC "
        "ModelInfer calls are mirrored (to candidate.grpc) but not split.",
    )
    _add(
        g,
        "--traffic-file",
        default=DEFAULT_TRAFFIC_FILE,
        help="the rollout's traffic settings (JSON, the ConfigMap <md>-traffic mounted by "
        "the operator), re-read when it changes; missing, empty or {}: no rollout",
    )
    # The Deployment sets MODELOPS_MODEL_VERSION from the pod annotation
    # modelops.io/model-version (downward API); the flag's own variable wins.
    _add(
        g,
        "--model-version",
        default=os.environ.get("MODELOPS_MODEL_VERSION", ""),
        help="the model version this pod serves (also env MODELOPS_MODEL_VERSION); the "
        "sidecar of the candidate version never mirrors or splits",
    )
    _add(
        g,
        "--mirror-max-in-flight",
        type=_positive_int,
        default=DEFAULT_MIRROR_MAX_IN_FLIGHT,
        help="mirrored requests in flight (sent or being compared); more are dropped and "
        "counted (mirrorDropped)",
    )
    _add(
        g,
        "--mirror-timeout",
        type=_positive_float,
        default=DEFAULT_MIRROR_TIMEOUT,
        help="seconds the candidate may take to answer a mirrored request (then a mirror error)",
    )


def add_inplace_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group(
        "in-place rollouts",
        "With --model-repository, the sidecar also runs the in-place agent "
        "(modelops.drift.inplace_agent): the traffic file's stage / inPlace candidate / "
        "promote drive this pod's Triton (explicit model control) through its repository API.",
    )
    _add(g, "--model-repository", default="", help="Triton's model repository (writable)")
    _add(g, "--model-name", default="", help="the served model's name in the repository")
    _add(
        g, "--model-uri", default="", help="the model's storage URI (what the init container pulls)"
    )
    _add(g, "--triton-metrics", default="", help="Triton's metrics URL (GPU memory)")
    _add(
        g,
        "--candidate-runtime",
        default="",
        help="the init container's pull settings as JSON (format, instancesPerGpu, gpus, "
        "maxBatchSize, maxQueueDelayMicroseconds), applied to a candidate's config",
    )
    g.add_argument(
        "--allow-unverified",
        action="store_true",
        help="accept candidate versions without a SHA256SUMS manifest (as the init container)",
    )


def build_agent(args: argparse.Namespace) -> InPlaceAgent | None:
    """The in-place agent, when the pod runs placement InPlace (--model-repository)."""
    if not getattr(args, "model_repository", ""):
        return None
    if not args.model_name or not args.model_uri or not args.traffic_file:
        raise ValueError("--model-repository needs --model-name, --model-uri and --traffic-file")
    return InPlaceAgent(
        traffic_file=args.traffic_file,
        repository=Path(args.model_repository),
        model=args.model_name,
        model_uri=args.model_uri,
        triton_url=args.upstream,
        own_version=args.model_version,
        metrics_url=args.triton_metrics or None,
        pull_kwargs=pull_settings(args.candidate_runtime, args.allow_unverified),
    )


def pull_settings(runtime_json: str, allow_unverified: bool) -> dict[str, Any]:
    """pull_model keyword arguments from --candidate-runtime and --allow-unverified."""
    from modelops.triton.config_patch import RuntimeOverrides

    doc = json.loads(runtime_json) if runtime_json else {}
    if not isinstance(doc, dict):
        raise ValueError("--candidate-runtime must be a JSON object")
    out: dict[str, Any] = {"allow_unverified": allow_unverified}
    if doc.get("format"):
        out["model_format"] = str(doc["format"])
    overrides = RuntimeOverrides(
        max_batch_size=doc.get("maxBatchSize"),
        max_queue_delay_microseconds=doc.get("maxQueueDelayMicroseconds"),
        instance_count=doc.get("instancesPerGpu"),
        gpus=doc.get("gpus"),
    )
    if not overrides.is_empty():
        out["overrides"] = overrides
    return out


def add_grpc_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("gRPC proxy")
    _add(
        g,
        "--grpc-upstream",
        default="",
        help="Triton's gRPC endpoint (host:port), e.g. 127.0.0.1:8001; empty: no gRPC proxy "
        "(the operator sets it in every serving pod)",
    )
    _add(g, "--grpc-port", type=_non_negative_int, default=8081, help="gRPC proxy listen port")
    _add(
        g,
        "--grpc-max-connections",
        type=_positive_int,
        default=64,
        help="client gRPC connections at once; more are closed at once",
    )


def detector_config(args: argparse.Namespace) -> DetectorConfig:
    psi_t, js_t, alpha = args.psi_threshold, args.js_threshold, args.ks_alpha
    if args.threshold is not None:
        if args.method == "psi":
            psi_t = args.threshold
        elif args.method == "js":
            js_t = args.threshold
        else:
            alpha = args.threshold
    return DetectorConfig(
        method=args.method,
        psi_threshold=psi_t,
        js_threshold=js_t,
        ks_alpha=alpha,
        min_drifted_features=args.min_drifted_features,
        min_finite=args.min_finite,
        max_nonfinite_fraction=args.max_nonfinite_fraction,
    )


def _warn_if_noisy(ref: Reference, det: DetectorConfig, window: int) -> None:
    """PSI and JS grow with sampling noise: warn when the window is too small for the threshold.

    Under no drift, PSI is about chi2(bins-1) * (1/n_ref + 1/n_window), so its
    mean is roughly (bins-1) * (1/n_ref + 1/n_window).
    """
    if det.method in ("ks", "ksz") or window <= 0:
        return
    bins = max(f.n_bins for f in ref.features)
    expected_psi = (bins - 1) * (1 / ref.n_samples + 1 / window)
    expected = expected_psi if det.method == "psi" else expected_psi / 5.5  # JS bits ~ PSI/(8 ln 2)
    if expected > det.threshold / 3:
        log.warning(
            "window of %d rows is small for %s threshold %.3g: stationary traffic already "
            "scores about %.3g; expect false alarms (use a larger --window or the ks method)",
            window,
            det.method,
            det.threshold,
            expected,
        )


def build_proxy(args: argparse.Namespace) -> DriftProxy:
    """Reference, detector, monitor, metrics and proxy from parsed flags (nothing started).

    Without --reference the sidecar runs for a gated rollout only: it proxies,
    mirrors / splits and counts, and samples nothing for drift statistics."""
    det = detector_config(args)
    win = WindowConfig(
        size=args.window,
        seconds=args.window_seconds,
        min_samples=args.min_samples,
        confirm_windows=args.confirm_windows,
    )
    sample_rate = args.sample_rate
    if args.reference:
        reference = load_reference(args.reference, bins=args.bins, features=args.features)
        _warn_if_noisy(reference, det, args.window)
    else:
        reference, sample_rate = Reference(features=(), n_samples=0), 0.0
    metrics = DriftMetrics(args.model or "", reference.names)
    monitor = DriftMonitor(reference, det, win, on_evaluation=metrics.observe_evaluation)
    return DriftProxy(
        ProxyConfig(
            upstream=args.upstream,
            model=args.model,
            input_name=args.input,
            max_body_bytes=args.max_body_bytes,
            upstream_timeout=args.upstream_timeout,
            max_connections=args.max_connections,
            max_clients=args.max_clients,
            max_buffered_bytes=args.max_buffered_bytes,
            header_timeout=args.header_timeout,
            body_timeout=args.body_timeout,
            idle_timeout=args.idle_timeout,
            stats_queue_bytes=args.stats_queue_bytes,
            stats_max_bytes=args.stats_max_bytes,
            stats_cpu_share=args.stats_cpu,
            sample_rate=sample_rate,
            model_version=args.model_version,
            traffic_file=args.traffic_file,
            mirror_max_in_flight=args.mirror_max_in_flight,
            mirror_timeout=args.mirror_timeout,
        ),
        monitor,
        metrics,
    )


def build_grpc_proxy(args: argparse.Namespace, proxy: DriftProxy) -> GrpcProxy | None:
    """The gRPC proxy, feeding the HTTP proxy's statistics (None when --grpc-upstream is empty)."""
    if not args.grpc_upstream:
        return None
    config = GrpcProxyConfig(
        upstream=args.grpc_upstream,
        model=args.model,
        max_connections=args.grpc_max_connections,
        stats_max_bytes=args.stats_max_bytes,
        # Messages waiting for Triton's answer get the same budget as the
        # statistics queue they go to next.
        max_kept_bytes=args.stats_queue_bytes,
    )
    rollout = proxy.rollout
    return GrpcProxy(
        config,
        proxy.feeder,
        proxy.metrics.registry,
        lambda: rollout.figures,
        lambda: (rollout.own_version, rollout.settings.epoch),
        rollout,
        lambda: proxy.inplace,  # the HTTP proxy's route: one set of in-place figures
    )


async def serve(args: argparse.Namespace) -> int:
    # `*_created` series double the exposition for no use here (process-wide
    # switch; this process is the sidecar and nothing else).
    prometheus_client.disable_created_metrics()
    proxy = build_proxy(args)
    reference, det, win = proxy.monitor.reference, proxy.monitor.detector, proxy.monitor.window
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    grpc_proxy = build_grpc_proxy(args, proxy)
    agent = proxy.agent = build_agent(args)
    port, admin_port = await proxy.start(args.host, args.port, args.admin_host, args.admin_port)
    if grpc_proxy is not None:
        try:
            grpc_port = await grpc_proxy.start(args.host, args.grpc_port)
        except BaseException:
            await proxy.stop()
            raise
        log.info(
            "drift-monitor: gRPC proxy on %s:%d -> %s", args.host, grpc_port, args.grpc_upstream
        )
    if agent is not None:
        agent.start()
    log.info(
        "drift-monitor: proxy on %s:%d -> %s, admin on %s:%d; %d features, method %s "
        "threshold %g, window %d rows / %gs",
        args.host,
        port,
        args.upstream,
        args.admin_host or args.host,
        admin_port,
        reference.n_features,
        det.method,
        det.threshold,
        win.size,
        win.seconds,
    )
    try:
        await stop.wait()
        log.info("drift-monitor: draining (at most %gs)", args.drain_seconds)
        if grpc_proxy is not None:
            await asyncio.gather(
                proxy.drain(args.drain_seconds), grpc_proxy.drain(args.drain_seconds)
            )
        else:
            await proxy.drain(args.drain_seconds)
    finally:
        log.info("drift-monitor: shutting down")
        if grpc_proxy is not None:
            await grpc_proxy.stop()
        await proxy.stop()
        if agent is not None:
            agent.stop()
    return 0


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=str(args.log_level).upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.reference:
        log.info("drift-monitor: no --reference: no drift statistics (rollout figures only)")
    try:
        import uvloop  # optional: a faster event loop, same semantics
    except ImportError:
        uvloop = None
    try:
        if uvloop is not None:
            return uvloop.run(serve(args))
        return asyncio.run(serve(args))
    except (ReferenceError, ValueError) as exc:
        log.error("drift-monitor: %s", exc)
        return 2
    except OSError as exc:  # e.g. port in use
        log.error("drift-monitor: %s", exc)
        return 1
