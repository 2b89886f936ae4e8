"""What `kubectl modelops` prints and patches, computed from one ModelDeployment.

Pure: every function takes the object as the API server returns it (a dict)
and returns text or a patch, so the output is tested without a cluster and
the shell (modelops.plugin.cli) only reads and writes. Figures come from
status.rollout.analysis (what the operator saw at its last evaluation) and
thresholds from spec.rollout.analysis; nothing is re-measured here. The live
gates are sequential tests (modelops.render.gating.sequential): their rows show
the state each test decided on (the bound of its confidence sequence, its
estimate, the samples it still needs), read from the gate's own sentence in
status.rollout.analysis.verdict, not a point figure the gate does not use.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from modelops.api.conditions import CONDITIONS
from modelops.api.rollout import Analysis

# Gated phases in which a candidate is being judged.
JUDGED_PHASES = ("Waiting", "Shadow", "Canary", "Paused")


class PluginError(Exception):
    """A request the object's state cannot satisfy (e.g. promote with no candidate)."""


def _get(obj: Mapping[str, Any] | None, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _row(label: str, value: object) -> str:
    return f"  {label + ':':<12}{value}"


def _conditions(md: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {c.get("type", ""): c for c in _get(md, "status", "conditions") or []}


def _phase_line(rollout: Mapping[str, Any]) -> str:
    phase = rollout.get("phase") or "Idle"
    parts = []
    if rollout.get("steps"):
        parts.append(f"step {int(rollout.get('step') or 0) + 1} of {rollout['steps']}")
    if rollout.get("mirrorPercent"):
        parts.append(f"mirroring {rollout['mirrorPercent']}%")
    if rollout.get("canaryWeight"):
        parts.append(f"canary weight {rollout['canaryWeight']}%")
    if rollout.get("stalled"):
        parts.append("stalled")
    return f"{phase} ({', '.join(parts)})" if parts else phase


def _source(source: Mapping[str, Any] | None) -> str:
    if not source:
        return "-"
    kind = source.get("kind", "?")
    job = _get(source, "trainingJob", "name")
    return f"{kind} {job}" if job else kind


def analysis_spec(md: Mapping[str, Any]) -> Analysis:
    """spec.rollout.analysis with the CRD's defaults filled in (the object may come
    from a dry run or a file, where the API server's defaulting has not run)."""
    return Analysis.model_validate(_get(md, "spec", "rollout", "analysis") or {})


def gates(md: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(gate, figure, threshold, result) of every configured gate, from the last
    evaluation's figures. Result: pass, FAIL, or waiting (not enough evidence)."""
    spec = analysis_spec(md)
    figures = _get(md, "status", "rollout", "analysis") or {}
    cand = figures.get("candidate") or {}
    stable = figures.get("stable") or {}
    requests = int(cand.get("requests") or 0)
    enough = requests >= spec.min_requests
    rows = [
        (
            "minRequests",
            f"{requests} requests",
            f">= {spec.min_requests}",
            "pass" if enough else "waiting",
        )
    ]
    sentences = _gate_sentences(figures.get("verdict") or "")
    sure = f"{_num(100 * spec.confidence)}%"
    if spec.max_error_rate_increase is not None:
        limit = f"<= {_num(spec.max_error_rate_increase)} at {sure}"
        said = sentences.get("maxErrorRateIncrease")
        if said is not None:
            rows.append(("maxErrorRateIncrease", _error_rate_state(said), limit, _result(said)))
        elif not enough:
            rows.append(("maxErrorRateIncrease", "-", limit, "waiting"))
        else:
            rows.append(("maxErrorRateIncrease", _rate_figure(cand, stable), limit, "waiting"))
    if spec.max_latency_p99_ratio is not None:
        # What the latency gate decides on (sequential.quantile_ratio): the share of the
        # candidate's requests slower than limit x the stable p99, against 1%.
        ratio = _num(spec.max_latency_p99_ratio)
        limit = f"<= 1% slower than {ratio}x stable p99, at {sure}"
        said = sentences.get("maxLatencyP99Ratio")
        if said is not None:
            rows.append(("maxLatencyP99Ratio", _latency_state(said), limit, _result(said)))
        else:
            rows.append(("maxLatencyP99Ratio", "-", limit, "waiting"))
    if spec.min_agreement is not None:
        mirrored = int(figures.get("mirrored") or 0)
        limit = f">= {_num(spec.min_agreement)} at {sure}"
        said = sentences.get("minAgreement")
        if said is not None:
            rows.append(("minAgreement", _agreement_state(said, mirrored), limit, _result(said)))
        else:
            rows.append(("minAgreement", f"{mirrored} compared", limit, "waiting"))
    if spec.eval_metric is not None:
        rows.append(_eval_metric_row(md, spec))
    return rows


# The sentence each live gate writes into status.rollout.analysis.verdict
# (modelops.render.gating.analysis), told apart by the spec field it names.
_GATES = ("maxErrorRateIncrease", "maxLatencyP99Ratio", "minAgreement")


def _gate_sentences(verdict: str) -> dict[str, str]:
    """The verdict split into its gates' sentences ("; " outside parentheses), keyed by
    the gate each names. A gate waiting for minRequests names none of them."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(verdict):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and verdict.startswith("; ", i):
            parts.append(verdict[start:i])
            start = i + 2
    parts.append(verdict[start:])
    out: dict[str, str] = {}
    for part in parts:
        gate = next((g for g in _GATES if f" {g} " in part), None)
        if gate is not None and gate not in out:
            out[gate] = part
    return out


def _result(sentence: str) -> str:
    """pass, FAIL, or waiting with the gate's own samples still needed."""
    if "not decided yet" in sentence:
        found = re.search(r"about (\d+) more (?:compared )?requests to decide", sentence)
        return f"waiting (~{found.group(1)} more)" if found else "waiting"
    if re.search(r" (?:>|<) (?:max|min)[A-Z]", sentence):
        return "FAIL"
    return "pass"


def _error_rate_state(sentence: str) -> str:
    """The increase and its confidence-sequence bound(s), as the gate decided on them."""
    increase = re.search(r"increase (\S+)", sentence)
    head = f"+{increase.group(1)}" if increase else "-"
    between = re.search(r"between (\S+) and (\S+) at", sentence)
    bound = re.search(r"\((at (?:most|least) \S+) at", sentence)
    if between:
        return f"{head} (between {between.group(1)} and {between.group(2)})"
    if bound:
        return f"{head} ({bound.group(1)})"
    return head


def _latency_state(sentence: str) -> str:
    """The slow share the sequential latency test decides on, with the point p99 ratio
    for orientation."""
    ratio = re.search(r"ratio (\S+) (?:vs|<=|>) maxLatencyP99Ratio", sentence)
    point = f" (p99 ratio {ratio.group(1)})" if ratio else ""
    share = re.search(r"\((\S+)% of its requests slower", sentence)
    if share:
        return f"{share.group(1)}% slower{point}"
    if "at most 1% of its requests" in sentence:
        return f"<= 1% slower{point}"
    if "more than 1% of its requests" in sentence:
        return f"> 1% slower{point}"
    if "not measured" in sentence:
        return "not measured yet"
    return "-"


def _agreement_state(sentence: str, mirrored: int) -> str:
    """Agreement and its bound beyond the noise floor, as the gate decided on them."""
    value = re.search(r"agreement (\S+)", sentence)
    head = f"{value.group(1)} over {mirrored} compared" if value else f"{mirrored} compared"
    between = re.search(r"between (\S+) and (\S+) at", sentence)
    bound = re.search(r"\((at (?:most|least) \S+) beyond", sentence)
    if between:
        return f"{head} (between {between.group(1)} and {between.group(2)})"
    if bound:
        return f"{head} ({bound.group(1)})"
    return head


def _rate_figure(cand: Mapping[str, Any], stable: Mapping[str, Any]) -> str:
    c_rate, s_rate = _rate(cand), _rate(stable)
    if c_rate is None or s_rate is None:
        return "-"
    return f"+{_num(max(c_rate - s_rate, 0.0))} ({_num(c_rate)} vs {_num(s_rate)})"


def _rate(figures: Mapping[str, Any]) -> float | None:
    """errors / requests when both are known (exact), else the stored errorRate."""
    if figures.get("requests") and figures.get("errors") is not None:
        return int(figures["errors"]) / int(figures["requests"])
    return figures.get("errorRate")


def _eval_metric_row(md: Mapping[str, Any], spec: Analysis) -> tuple[str, str, str, str]:
    """The candidate's reported metric against the stable version's (from history)."""
    gate = spec.eval_metric
    assert gate is not None
    label = f"evalMetric {gate.name}"
    threshold = f"regression <= {_num(gate.max_regression)}"
    source = _get(md, "status", "rollout", "candidateSource") or {}
    if source.get("kind") != "TrainingJob":
        return (label, "-", threshold, "n/a (not from a TrainingJob)")
    value = (source.get("metrics") or {}).get(gate.name)
    if value is None:
        return (label, "missing", threshold, "FAIL")
    stable_version = _get(md, "status", "rollout", "stable")
    entry = next(
        (h for h in _get(md, "status", "history") or [] if h.get("version") == stable_version),
        {},
    )
    reference = (_get(entry, "source", "metrics") or {}).get(gate.name)
    if reference is None:
        return (label, f"{_num(value)} (stable has none)", threshold, "pass")
    worse = reference - value if gate.direction == "HigherIsBetter" else value - reference
    ok = worse <= gate.max_regression + 1e-12
    figure = f"{_num(value)} vs stable {_num(reference)}"
    return (label, figure, threshold, "pass" if ok else "FAIL")


def evidence_needed(md: Mapping[str, Any]) -> list[str]:
    """What the rollout still waits for before it can decide, in plain words."""
    rollout = _get(md, "status", "rollout") or {}
    if rollout.get("phase") not in JUDGED_PHASES or not rollout.get("candidate"):
        return []
    spec = analysis_spec(md)
    figures = rollout.get("analysis") or {}
    needed = []
    requests = int(_get(figures, "candidate", "requests") or 0)
    if requests < spec.min_requests:
        needed.append(
            f"{spec.min_requests - requests} more candidate requests "
            f"(minRequests {spec.min_requests}, seen {requests})"
        )
    if spec.min_agreement is not None and rollout.get("phase") == "Shadow":
        mirrored = int(figures.get("mirrored") or 0)
        if mirrored < spec.min_requests:
            needed.append(f"{spec.min_requests - mirrored} more mirrored requests compared")
    shadow = _get(md, "spec", "rollout", "shadow") or {}
    if rollout.get("phase") == "Shadow":
        if shadow.get("duration") and rollout.get("stepStartedAt"):
            needed.append(f"shadow.duration {shadow['duration']} from {rollout['stepStartedAt']}")
        if shadow.get("requests") and int(figures.get("mirrored") or 0) < shadow["requests"]:
            needed.append(
                f"{shadow['requests'] - int(figures.get('mirrored') or 0)} more mirrored "
                f"requests (shadow.requests {shadow['requests']})"
            )
    if rollout.get("phase") == "Canary":
        steps = _get(md, "spec", "rollout", "canary", "steps") or []
        index = int(rollout.get("step") or 0) - (1 if shadow else 0)
        if 0 <= index < len(steps):
            step = steps[index]
            if step.get("duration") and rollout.get("stepStartedAt"):
                needed.append(
                    f"canary step duration {step['duration']} from {rollout['stepStartedAt']}"
                )
            in_step = int(figures.get("stepRequests") or 0)
            if step.get("requests") and in_step < step["requests"]:
                needed.append(
                    f"{step['requests'] - in_step} more requests in this step "
                    f"(step requests {step['requests']})"
                )
    if rollout.get("phase") == "Waiting":
        needed.append("candidate pods to become ready")
    if _get(md, "spec", "rollout", "control", "paused"):
        needed.append("resume (spec.rollout.control.paused is true)")
    return needed


def render_status(md: Mapping[str, Any]) -> str:
    """The readable rollout view of `kubectl modelops status NAME`."""
    meta = md.get("metadata") or {}
    status = md.get("status") or {}
    rollout = status.get("rollout") or {}
    conds = _conditions(md)
    lines = [f"ModelDeployment {meta.get('namespace')}/{meta.get('name')}"]
    ready = conds.get("Ready")
    if ready:
        lines.append(_row("Ready", f"{ready.get('status')} ({ready.get('reason')})"))
    stalled = conds.get("Stalled")
    if stalled and stalled.get("status") == "True":
        lines.append(_row("Stalled", f"{stalled.get('reason')}: {stalled.get('message', '')}"))
    lines.append(_row("Phase", _phase_line(rollout)))
    lines.append(
        _row(
            "Strategy",
            rollout.get("strategy") or _get(md, "spec", "rollout", "strategy") or "Direct",
        )
    )
    stable = rollout.get("stable") or status.get("servedVersion") or "-"
    slot = rollout.get("stableSlot")
    lines.append(_row("Stable", f"{stable} (slot {slot})" if slot else stable))
    if rollout.get("candidate"):
        since = rollout.get("candidateSince")
        source = _source(rollout.get("candidateSource"))
        extra = f"from {source}" + (f", since {since}" if since else "")
        lines.append(_row("Candidate", f"{rollout['candidate']} ({extra})"))
    replicas = f"{status.get('readyReplicas', 0)}/{status.get('replicas', 0)} ready"
    lines.append(_row("Replicas", replicas))
    if rollout.get("message"):
        lines.append(_row("Message", rollout["message"]))
    if rollout.get("promotionReason"):
        lines.append(_row("Promoting", rollout["promotionReason"]))
    rejected = rollout.get("rejected")
    if rejected:
        lines.append(_row("Rejected", f"{rejected.get('version')}: {rejected.get('reason', '')}"))
    if rollout.get("candidate") and rollout.get("phase") in JUDGED_PHASES:
        lines += ["", "Gates:"]
        table = [("GATE", "FIGURE", "THRESHOLD", "RESULT"), *gates(md)]
        widths = [max(len(row[i]) for row in table) for i in range(3)]
        for row in table:
            cells = [row[i].ljust(widths[i]) for i in range(3)]
            lines.append("  " + "  ".join([*cells, row[3]]))
        verdict = _get(rollout, "analysis", "verdict")
        if verdict:
            lines.append(_row("Verdict", verdict))
        needed = evidence_needed(md)
        lines += ["", "Evidence still needed:"]
        lines += [f"  - {item}" for item in needed] or ["  none: the next evaluation decides"]
    history = status.get("history") or []
    if history:
        lines += ["", "History (newest first):", *history_table(history[:5])]
    return "\n".join(lines) + "\n"


def history_table(history: Sequence[Mapping[str, Any]]) -> list[str]:
    table = [("VERSION", "OUTCOME", "SOURCE", "DECIDED", "REASON")]
    for entry in history:
        table.append(
            (
                str(entry.get("version", "")),
                str(entry.get("outcome", "")),
                _source(entry.get("source")),
                str(entry.get("decidedAt") or entry.get("servingSince") or "-"),
                str(entry.get("reason") or ""),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    return [
        "  " + "  ".join([*(row[i].ljust(widths[i]) for i in range(4)), row[4]]).rstrip()
        for row in table
    ]


def render_history(md: Mapping[str, Any]) -> str:
    history = _get(md, "status", "history") or []
    if not history:
        return "no versions rolled out yet\n"
    return "\n".join(history_table(history)) + "\n"


def explain_reason(ctype: str, reason: str) -> str:
    """The documented meaning of a condition's reason (modelops.api.conditions)."""
    reasons = CONDITIONS.get(ctype, ("", {}))[1]
    text = reasons.get(reason, "")
    if text.startswith("Same as Stalled"):
        text = CONDITIONS["Stalled"][1].get(reason, text)
    return text


def render_why(md: Mapping[str, Any]) -> str:
    """Ready and Stalled (and what else is not as it should be) in plain words."""
    meta = md.get("metadata") or {}
    conds = _conditions(md)
    name = f"{meta.get('namespace')}/{meta.get('name')}"
    observed = _get(md, "status", "observedGeneration")
    if not conds:
        return f"{name}: the operator has not reported on it yet (no status conditions).\n"
    lines = []
    if observed is not None and observed != meta.get("generation"):
        lines.append(
            f"Note: status describes generation {observed}; the spec is at generation "
            f"{meta.get('generation')} (the operator has not caught up yet)."
        )
    ready = conds.get("Ready")
    if ready:
        verdict = "is ready" if ready.get("status") == "True" else "is NOT ready"
        lines.append(f"{name} {verdict}: {ready.get('reason')}.")
        lines += _explained("Ready", ready)
    stalled = conds.get("Stalled")
    if stalled and stalled.get("status") == "True":
        lines.append(f"It is stalled, and needs someone to act: {stalled.get('reason')}.")
        lines += _explained("Stalled", stalled)
    elif stalled:
        lines.append("It is not stalled: nothing blocks progress.")
    for ctype, cond in conds.items():
        if ctype in ("Ready", "Stalled", "Reconciling"):
            continue
        if (ctype == "Drifted" and cond.get("status") == "True") or (
            ctype != "Drifted" and cond.get("status") == "False"
        ):
            lines.append(f"{ctype} is {cond.get('status')}: {cond.get('reason')}.")
            lines += _explained(ctype, cond)
    return "\n".join(lines) + "\n"


def _explained(ctype: str, cond: Mapping[str, Any]) -> list[str]:
    out = []
    meaning = explain_reason(ctype, str(cond.get("reason") or ""))
    if meaning:
        out.append(f"  What it means: {meaning}")
    if cond.get("message"):
        out.append(f"  Detail: {cond['message']}")
    return out


# --- the controls: patches of spec.rollout.control ---------------------------------


def candidate_of(md: Mapping[str, Any]) -> str:
    candidate = _get(md, "status", "rollout", "candidate")
    if not candidate:
        phase = _get(md, "status", "rollout", "phase") or "Idle"
        raise PluginError(f"no candidate under analysis (phase {phase}): nothing to act on")
    return str(candidate)


def control_patch(md: Mapping[str, Any], action: str, version: str | None = None) -> dict:
    """The merge patch of spec.rollout.control for promote, abort, pause or resume.

    promote and abort name a version (the candidate unless given), so each
    acts once and stays inert in Git afterwards (api/rollout.py)."""
    if action == "pause":
        return {"spec": {"rollout": {"control": {"paused": True}}}}
    if action == "resume":
        return {"spec": {"rollout": {"control": {"paused": False}}}}
    if action not in ("promote", "abort"):
        raise ValueError(f"unknown control {action!r}")
    target = version or candidate_of(md)
    other = "abort" if action == "promote" else "promote"
    control: dict[str, Any] = {action: target}
    if _get(md, "spec", "rollout", "control", other) == target:
        control[other] = None  # the CRD refuses promote == abort
    return {"spec": {"rollout": {"control": control}}}
