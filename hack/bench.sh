#!/usr/bin/env bash
# `make bench`: every benchmark in turn. Each prints its figures and the
# command that reproduces them. BENCH_QUICK=1 runs smaller sizes.
set -uo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python
if [ "${BENCH_QUICK:-0}" = 1 ]; then
  runs=(
    "bench/operator/scale.py --sizes 50"
    "bench/operator/failover.py --n 20"
    "bench/operator/soak.py --minutes 2 --base 20 --rate 1"
    "bench/drift/overhead.py --seconds 2 --rounds 1"
    "bench/drift/grpc_mirror.py --seconds 2"
    "bench/drift/http_parser.py --iterations 20000 --repeat 2"
    "bench/drift/stats_path.py --rounds 1"
    "bench/drift/detection.py"
    "bench/trainer/throughput.py"
    "bench/loop/drift_to_ready.py --runs 1"
    "bench/rollout/gating.py --requests 2000 --decisions 200"
    "bench/api/conversion.py --objects 200 --reviews 5"
    "bench/api/intake.py --objects 100 --rounds 2"
    "bench/rollout/sequential.py --streams 100 --horizon 20000"
    "bench/rollout/mirror.py --seconds 2 --rounds 1"
    "bench/rollout/promote.py --runs 1"
    "bench/rollout/inplace.py --seconds 2 --rounds 1"
    "bench/autoscaling/keda.py --runs 1"
    "bench/autoscaling/wake.py --runs 1"
    "bench/autoscaling/hpa.py --runs 1"
    "bench/node/pod_ready.py --runs 2"
    "bench/netpol/enforce.py --runs 2"
    "bench/serving/real_pod.py --requests 300"
  )
else
  runs=(
    # Issue 21's sizes: hours on a 2-core machine (about 50 min for the scale
    # runs, 20 for the failover, 35 for the soak).
    "bench/operator/scale.py --sizes 1000,3000"
    "bench/operator/failover.py --n 3000"
    "bench/operator/soak.py --minutes 30 --base 200 --rate 2"
    "bench/drift/overhead.py"
    "bench/drift/grpc_mirror.py"
    "bench/drift/http_parser.py"
    "bench/drift/stats_path.py"
    "bench/drift/detection.py"
    "bench/trainer/throughput.py"
    "bench/loop/drift_to_ready.py --runs 3"
    "bench/rollout/gating.py"
    "bench/api/conversion.py"
    "bench/api/intake.py"
    "bench/rollout/sequential.py"
    "bench/rollout/mirror.py"
    "bench/rollout/promote.py --runs 3"
    "bench/rollout/inplace.py"
    "bench/autoscaling/keda.py --runs 3"
    "bench/autoscaling/wake.py --runs 2"
    "bench/autoscaling/hpa.py --runs 3"
    "bench/node/pod_ready.py --runs 5"
    "bench/netpol/enforce.py --runs 5"
    "bench/serving/real_pod.py"
  )
fi
status=0
for run in "${runs[@]}"; do
  echo "== $run"
  # shellcheck disable=SC2086
  $py $run || status=1
done
exit $status
