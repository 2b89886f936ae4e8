"""Benchmarks that time an e2e scenario: run its test, collect the figures it prints.

Several figures only mean something end to end (a retrained version Ready, a
replica added by the real HPA, a promotion): the e2e test that exercises the
path prints them, and a benchmark runs that test --runs times and reports the
median of each figure with the command that made it.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main(test: str, figures: dict[str, str], command: str, default_runs: int = 3) -> int:
    """figures: name -> regex with one group, the seconds the test printed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=default_runs)
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    patterns = {name: re.compile(pattern) for name, pattern in figures.items()}
    seconds: dict[str, list[float]] = {name: [] for name in patterns}
    for _ in range(args.runs):
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", test],
            cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        found = {name: pattern.search(proc.stdout) for name, pattern in patterns.items()}
        if proc.returncode != 0 or not all(found.values()):
            print(proc.stdout[-3000:], proc.stderr[-2000:], sep="\n")
            return 1
        for name, match in found.items():
            assert match is not None
            seconds[name].append(float(match.group(1)))
    print(f"command: .venv/bin/python {command} --runs {args.runs}")
    for name, values in seconds.items():
        runs = ", ".join(f"{s:.1f}" for s in values)
        print(f"{name}: median {statistics.median(values):.1f}s (runs: {runs})")
    return 0
