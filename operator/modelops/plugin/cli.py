"""`kubectl modelops` (console script `kubectl-modelops`): the thin shell.

Reads a ModelDeployment through modelops.kube, hands it to
modelops.plugin.view for the text or the patch, and writes the patch back, or
prints it (`--print-patch`) for a GitOps repository to carry: the controls are
spec fields (spec.rollout.control), so a patch applied here is overwritten by
the next sync of a Git-owned object unless Git carries it too.
"""

from __future__ import annotations

import argparse
import json
import sys

import yaml

from modelops.api.kinds import MODEL_DEPLOYMENT
from modelops.kube import KubeError
from modelops.kube.client import from_kubeconfig
from modelops.plugin import view

VIEWS = {
    "status": (view.render_status, "the rollout: phase, gates against thresholds, evidence"),
    "history": (view.render_history, "the versions rolled out and what became of them"),
    "why": (view.render_why, "why it is (not) Ready or Stalled, in plain words"),
}
CONTROLS = {
    "promote": "promote the candidate now (spec.rollout.control.promote)",
    "abort": "roll the candidate back now (spec.rollout.control.abort)",
    "pause": "hold the rollout at its step (spec.rollout.control.paused: true)",
    "resume": "let a paused rollout go on (spec.rollout.control.paused: false)",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl modelops", description="Rollout view and controls of ModelDeployments."
    )
    parser.add_argument("--kubeconfig", help="kubeconfig file (default: as kubectl)")
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    parser.add_argument("--namespace", "-n", help="namespace (default: the context's)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in VIEWS.items():
        sub.add_parser(name, help=help_text).add_argument("name", help="ModelDeployment")
    for name, help_text in CONTROLS.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument("name", help="ModelDeployment")
        if name in ("promote", "abort"):
            p.add_argument("--version", help="the version to name (default: the candidate)")
        p.add_argument(
            "--print-patch",
            action="store_true",
            help="print the patch (YAML, for the Git copy of the object) instead of applying it",
        )
    return parser


def run(args: argparse.Namespace) -> int:
    kube, default_namespace = from_kubeconfig(args.kubeconfig, args.context)
    namespace = args.namespace or default_namespace
    md = kube.get(MODEL_DEPLOYMENT, namespace, args.name)
    if md is None:
        print(f"error: ModelDeployment {namespace}/{args.name} not found", file=sys.stderr)
        return 1
    if args.command in VIEWS:
        sys.stdout.write(VIEWS[args.command][0](md))
        return 0
    try:
        patch = view.control_patch(md, args.command, getattr(args, "version", None))
    except view.PluginError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.print_patch:
        sys.stdout.write(yaml.safe_dump(patch, sort_keys=False))
        return 0
    kube.merge_patch(MODEL_DEPLOYMENT, namespace, args.name, patch)
    control = json.dumps(patch["spec"]["rollout"]["control"])
    print(f"modeldeployment.modelops.io/{args.name} patched: spec.rollout.control {control}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except KubeError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
