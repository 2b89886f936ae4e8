"""`modelops drift-reference`: build drift reference statistics from a data sample.

Reads a sample of the training data (.npy, .npz or .csv; see
:mod:`modelops.drift.sample`) and writes the JSON reference that
`modelops drift-monitor --reference` reads (format in
:mod:`modelops.drift.reference`). Prints a one-line summary per feature.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from modelops.drift.reference import DEFAULT_BINS, ReferenceError, build_reference
from modelops.drift.sample import read_sample


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sample", help="training-data sample: .npy, .npz or .csv")
    parser.add_argument("-o", "--output", required=True, help="reference file to write (.json)")
    parser.add_argument(
        "--bins",
        type=int,
        default=DEFAULT_BINS,
        help="quantile bins per feature, tails included (default %(default)s)",
    )
    parser.add_argument(
        "--features",
        help="comma-separated columns to use, in this order (names of a headerless file's columns)",
    )
    parser.add_argument("--key", help="array to read from an .npz holding several")
    parser.add_argument(
        "--max-rows", type=int, default=0, help="use a random subset of this many rows (0: all)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for --max-rows")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")


def run(args: argparse.Namespace) -> int:
    features = [f.strip() for f in args.features.split(",")] if args.features else None
    try:
        data, names = read_sample(args.sample, features, args.key)
        if args.max_rows and data.shape[0] > args.max_rows:
            rng = np.random.default_rng(args.seed)
            data = data[np.sort(rng.choice(data.shape[0], args.max_rows, replace=False))]
        ref = build_reference(data, names, args.bins)
        if not args.output.endswith(".json"):
            raise ReferenceError("the reference is JSON: name the output *.json")
        ref.save(args.output)
    except (ReferenceError, OSError, ValueError) as exc:
        print(f"drift-reference: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{args.output}: {ref.n_features} features from {ref.n_samples} rows")
        for f in ref.features:
            print(
                f"  {f.name:<24} bins={f.n_bins:<3} mean={f.mean:<12.6g} "
                f"std={f.var**0.5:<12.6g} range=[{f.min:.6g}, {f.max:.6g}]"
            )
    return 0
