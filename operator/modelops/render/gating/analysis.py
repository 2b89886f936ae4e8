"""The analysis gates: observed figures against spec.rollout.analysis, as a verdict.

Each gate yields a Check with its figure, its threshold and a sentence that
says both ("agreement 0.81 < minAgreement 0.95 over 412 mirrored requests"),
so the rollback message and the Warning event quote the failing figure
without anyone reading logs. A gate without enough evidence is Pending, never
a pass: a candidate is promoted on evidence, not on silence.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modelops.api.rollout import Analysis, EvalMetricGate

from .inputs import ObservedFigures
from .sequential import Verdict as Seq
from .sequential import difference, quantile_ratio


class Result(enum.Enum):
    PASS = "Pass"
    FAIL = "Fail"
    PENDING = "Pending"


_RESULT = {Seq.PASS: Result.PASS, Seq.FAIL: Result.FAIL, Seq.PENDING: Result.PENDING}


@dataclass(frozen=True)
class Check:
    """One gate's outcome: gate name (the spec field), result, and the sentence."""

    gate: str
    result: Result
    text: str
    # While PENDING on a sequential gate: further candidate requests (or compared
    # mirrored requests, for agreement) until a verdict if the rates stay as they are.
    needed: int | None = None


@dataclass(frozen=True)
class Verdict:
    """All gates together: FAIL if any fails, PASS if all pass, else PENDING."""

    checks: tuple[Check, ...]

    @property
    def result(self) -> Result:
        results = {c.result for c in self.checks}
        if Result.FAIL in results:
            return Result.FAIL
        if Result.PENDING in results:
            return Result.PENDING
        return Result.PASS

    @property
    def failing(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.result is Result.FAIL)

    @property
    def text(self) -> str:
        """The failing checks if any, else every check; '; '-separated."""
        shown = self.failing or self.checks
        # Gates waiting for the same evidence say so once.
        return "; ".join(dict.fromkeys(c.text for c in shown))


def _num(value: float) -> str:
    """Figures as people read them: 3 significant digits, no exponent for usual values."""
    return f"{value:.3g}"


def evaluate(analysis: Analysis, figures: ObservedFigures, *, mirroring: bool) -> Verdict:
    """The live-traffic gates over the candidate's figures so far.

    mirroring: the current step is the shadow phase. Agreement is only
    measurable on mirrored requests (a request answered by one version has
    nothing to compare with), so minAgreement is judged in the shadow phase
    and its verdict stands for the canary steps that follow.
    """
    if not figures.consistent:
        # The two sides do not add up: no gate passes or fails on figures someone got
        # wrong (or forged); the deadline (progressDeadline) bounds the wait.
        return Verdict(
            (Check("figures", Result.PENDING, "figures refused: " + "; ".join(figures.refused)),)
        )
    checks: list[Check] = []
    cand, stable = figures.candidate, figures.stable
    enough = cand.requests >= analysis.min_requests
    evidence = f"over {cand.requests} requests"

    alpha = 1.0 - analysis.confidence
    sure = f"{_num(100 * analysis.confidence)}% confidence"
    if analysis.max_error_rate_increase is not None:
        checks.append(_error_rate(analysis, figures, alpha, sure, evidence))

    if analysis.max_latency_p99_ratio is not None:
        if not enough:
            checks.append(_pending("maxLatencyP99Ratio", cand.requests, analysis.min_requests))
        elif cand.latency_p99_s is None or not cand.latency_buckets:
            checks.append(_unmeasured("the candidate"))
        elif not stable.latency_p99_s or not stable.latency_buckets:
            checks.append(_unmeasured("the stable version"))
        else:
            checks.append(_latency(analysis, figures, alpha, sure, evidence))

    if analysis.min_agreement is not None and mirroring:
        limit = analysis.min_agreement
        agreement = figures.agreement
        if figures.mirrored < analysis.min_requests or agreement is None:
            checks.append(
                Check(
                    "minAgreement",
                    Result.PENDING,
                    f"{figures.mirrored}/{analysis.min_requests} mirrored requests compared "
                    "(minRequests)",
                )
            )
        else:
            checks.append(_agreement(figures, limit, alpha, sure))

    if not checks:
        # No live gate configured: minRequests alone is the evidence asked for.
        if enough:
            checks.append(
                Check(
                    "minRequests",
                    Result.PASS,
                    f"{cand.requests} requests >= minRequests {analysis.min_requests}",
                )
            )
        else:
            checks.append(_pending("minRequests", cand.requests, analysis.min_requests))
    return Verdict(tuple(checks))


def _pending(gate: str, seen: int, needed: int) -> Check:
    return Check(gate, Result.PENDING, f"{seen}/{needed} requests (minRequests)", needed - seen)


def _error_rate(
    analysis: Analysis, figures: ObservedFigures, alpha: float, sure: str, evidence: str
) -> Check:
    """maxErrorRateIncrease, decided sequentially on the candidate's error rate minus the
    stable version's.

    A run of consecutive failures that opened a stable sidecar's circuit breaker waives
    minRequests: the breaker then withholds the requests minRequests would wait for
    (clients get the stable answer meanwhile), and the confidence sequence is valid at
    any sample size, so the few requests the candidate failed are judged as they are.
    Five failures in five, against a stable version that answers, clear a limit of a few
    percent at once; a candidate whose failures are no worse than the stable version's
    own (a noisy model that tripped the breaker by chance) is not failed for the trip.
    """
    limit = analysis.max_error_rate_increase
    assert limit is not None
    cand, stable = figures.candidate, figures.stable
    trips = figures.breaker_trips
    if cand.requests < analysis.min_requests and not trips:
        return _pending("maxErrorRateIncrease", cand.requests, analysis.min_requests)
    d = difference(
        cand.errors, cand.requests, stable.errors, stable.requests, limit=limit, alpha=alpha
    )
    head = (
        f"error rate {_num(cand.error_rate)} vs stable {_num(stable.error_rate)}: "
        f"increase {_num(max(d.estimate, 0.0))}"
    )
    if d.verdict is Seq.PENDING:
        text = (
            f"{head} (between {_num(d.lower)} and {_num(d.upper)} at {sure}) vs "
            f"maxErrorRateIncrease {_num(limit)} {evidence}: not decided yet"
            + _still_needed(d.needed, "requests", parenthesised=True)
        )
    else:
        ok = d.verdict is Seq.PASS
        bound = f"at most {_num(d.upper)}" if ok else f"at least {_num(d.lower)}"
        text = (
            f"{head} {'<=' if ok else '>'} maxErrorRateIncrease {_num(limit)} "
            f"{evidence} ({bound} at {sure})"
        )
    if trips:
        text += (
            f"; the stable sidecars' circuit breaker opened on the candidate {trips}x "
            f"({figures.sent_failed} of {figures.sent} requests sent to it failed"
            + (
                f", {figures.split_fallbacks} answered by stable instead"
                if figures.split_fallbacks
                else ""
            )
            + "; minRequests waived)"
        )
    return Check("maxErrorRateIncrease", _RESULT[d.verdict], text, d.needed)


def _still_needed(needed: int | None, what: str, *, parenthesised: bool = False) -> str:
    """A pending sequential gate's own "samples still needed" (each gate's, so that a
    reader of status, `kubectl modelops status` included, sees which gate waits for
    what); nothing when no verdict is in sight at the current figures."""
    if needed is None or needed <= 0:
        return ""
    words = f"about {needed} more {what} to decide"
    return f" ({words})" if parenthesised else f"; {words}"


def _unmeasured(who: str) -> Check:
    return Check("maxLatencyP99Ratio", Result.PENDING, f"p99 latency not measured yet for {who}")


def _latency(
    analysis: Analysis, figures: ObservedFigures, alpha: float, sure: str, evidence: str
) -> Check:
    """maxLatencyP99Ratio, decided sequentially on the latency histograms
    (sequential.quantile_ratio): the candidate's p99 is within the limit exactly when at
    most 1% of its requests are slower than the limit times the stable version's p99."""
    limit = analysis.max_latency_p99_ratio
    assert limit is not None
    cand, stable = figures.candidate, figures.stable
    assert cand.latency_p99_s is not None and stable.latency_p99_s
    r = quantile_ratio(cand.latency_buckets, stable.latency_buckets, ratio=limit, alpha=alpha)
    ratio = cand.latency_p99_s / stable.latency_p99_s
    head = (
        f"p99 latency {_num(cand.latency_p99_s)}s vs stable {_num(stable.latency_p99_s)}s: "
        f"ratio {_num(ratio)}"
    )
    slow = f"{_num(100 * r.slow_share)}% of its requests slower than {_num(limit)}x stable's p99"
    if r.verdict is Seq.PENDING:
        text = (
            f"{head} vs maxLatencyP99Ratio {_num(limit)} {evidence}: not decided yet "
            f"({slow}; at most 1% may be{_still_needed(r.needed, 'requests')})"
        )
    elif r.verdict is Seq.PASS:
        text = (
            f"{head} <= maxLatencyP99Ratio {_num(limit)} {evidence} (at most 1% of its "
            f"requests slower than {_num(limit)}x stable's p99 at {sure})"
        )
    else:
        bound = f" ({_num(limit * r.stable_high)}s)" if r.stable_high is not None else ""
        text = (
            f"{head} > maxLatencyP99Ratio {_num(limit)} {evidence} (more than 1% of its "
            f"requests slower than {_num(limit)}x stable's p99{bound} at {sure})"
        )
    return Check("maxLatencyP99Ratio", _RESULT[r.verdict], text, r.needed)


def _agreement(figures: ObservedFigures, limit: float, alpha: float, sure: str) -> Check:
    """minAgreement, decided sequentially on disagreement beyond the noise floor: the
    candidate's disagreement with stable minus the stable version's disagreement with
    itself (when the sidecars measure it; else taken as 0, and the text says so) must
    stay within 1 - minAgreement."""
    agreement = figures.agreement or 0.0
    floor_known = figures.self_compared is not None and figures.self_compared > 0
    self_compared = figures.self_compared or 0
    d = difference(
        figures.mirrored - figures.agreed,
        figures.mirrored,
        self_compared - (figures.self_agreed or 0),
        self_compared,
        limit=1.0 - limit,
        alpha=alpha,
        b_known=floor_known,
    )
    if floor_known:
        floor = (
            f"; stable agrees with itself {_num(figures.self_agreement or 0.0)} over "
            f"{self_compared} (noise floor)"
        )
    else:
        floor = "; noise floor not measured (taken as 0)"
    over = f"over {figures.mirrored} mirrored requests"
    if d.verdict is Seq.PENDING:
        low, high = max(0.0, 1.0 - d.upper), min(1.0, 1.0 - d.lower)
        text = (
            f"agreement {_num(agreement)} (beyond the noise floor between {_num(low)} and "
            f"{_num(high)} at {sure}) vs minAgreement {_num(limit)} {over}: not decided yet"
            + _still_needed(d.needed, "compared requests", parenthesised=True)
        )
    else:
        ok = d.verdict is Seq.PASS
        text = (
            f"agreement {_num(agreement)} {'>=' if ok else '<'} minAgreement {_num(limit)} {over}"
        )
        bound = f"at least {_num(1.0 - d.upper)}" if ok else f"at most {_num(1.0 - d.lower)}"
        text += f" ({bound} beyond the noise floor at {sure})"
    return Check("minAgreement", _RESULT[d.verdict], text + floor, d.needed)


def evaluate_eval_metric(
    gate: EvalMetricGate | None,
    candidate_source: Mapping[str, Any],
    stable_source: Mapping[str, Any] | None,
) -> Check | None:
    """The TrainingJob eval-metric gate, judged before the candidate gets any GPU.

    candidate_source / stable_source: the `source` of their lineage entries
    (status.history). None when there is no gate or the candidate did not come
    from a TrainingJob (nothing reported to judge).
    """
    if gate is None or candidate_source.get("kind") != "TrainingJob":
        return None
    name = gate.name
    cand = (candidate_source.get("metrics") or {}).get(name)
    if cand is None:
        tj = (candidate_source.get("trainingJob") or {}).get("name", "?")
        return Check(
            "evalMetric",
            Result.FAIL,
            f"eval metric {name} missing: TrainingJob {tj} did not report it",
        )
    stable = ((stable_source or {}).get("metrics") or {}).get(name)
    if stable is None:
        # Nothing to regress from: neither its lineage (a TrainingJob's report) nor the
        # version itself (a sealed metrics.json, `package-model --metrics`) records the
        # metric. The gate cannot judge a regression and says so; the live gates
        # (errors, latency, agreement) still judge the candidate. docs/rollouts.md.
        return Check(
            "evalMetric",
            Result.PASS,
            f"eval metric {name} {_num(cand)}: the stable version has no {name} recorded "
            "(no TrainingJob report, no metrics.json published with it): no regression "
            "to judge",
        )
    worse_by = stable - cand if gate.direction == "HigherIsBetter" else cand - stable
    ok = worse_by <= gate.max_regression + 1e-12
    op = "<=" if ok else ">"
    how = f"{_num(abs(worse_by))} {'worse' if worse_by > 0 else 'better'}"
    if worse_by == 0:
        how = "equal"
    return Check(
        "evalMetric",
        Result.PASS if ok else Result.FAIL,
        f"eval metric {name} {_num(cand)} vs stable {_num(stable)} ({how}; "
        f"{gate.direction}): regression {_num(max(worse_by, 0.0))} {op} maxRegression "
        f"{_num(gate.max_regression)}",
    )


def combine(*parts: Verdict | Check | None) -> Verdict:
    """One verdict from verdicts and single checks (None parts are skipped)."""
    checks: list[Check] = []
    for part in parts:
        if part is None:
            continue
        checks.extend(part.checks if isinstance(part, Verdict) else (part,))
    return Verdict(tuple(checks))


def figures_status(
    figures: ObservedFigures, step_requests: int, verdict: Verdict
) -> dict[str, Any]:
    """status.rollout.analysis: the figures analysis saw, and the verdict sentence."""

    def version(v: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": v.requests, "errors": v.errors}
        if v.client_errors:
            out["clientErrors"] = v.client_errors
        if v.requests:
            out["errorRate"] = round(v.error_rate, 6)
        if v.latency_p99_s is not None:
            out["latencyP99Seconds"] = round(v.latency_p99_s, 6)
        return out

    out: dict[str, Any] = {
        "stable": version(figures.stable),
        "candidate": version(figures.candidate),
        "mirrored": figures.mirrored,
        "stepRequests": step_requests,
        "verdict": verdict.text[:1024],
    }
    if figures.agreement is not None:
        out["agreement"] = round(figures.agreement, 6)
    if figures.sent:
        out["sent"] = figures.sent
        out["sentFailed"] = figures.sent_failed
        if figures.sent_timeouts:
            out["sentTimeouts"] = figures.sent_timeouts
        if figures.split_fallbacks:
            out["splitFallbacks"] = figures.split_fallbacks
    if figures.self_agreement is not None:
        out["selfAgreement"] = round(figures.self_agreement, 6)
    if figures.refused:
        out["refused"] = "; ".join(figures.refused)[:1024]
    if figures.unanswered:
        out["unanswered"] = ", ".join(figures.unanswered)[:1024]
    return out


__all__ = [
    "Check",
    "Result",
    "Verdict",
    "combine",
    "evaluate",
    "evaluate_eval_metric",
    "figures_status",
]
