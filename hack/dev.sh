#!/usr/bin/env bash
# `make dev`: the local cluster, the CRDs and least-privilege RBAC, the
# operator (a local process authenticating as its ServiceAccount), and the
# sample ModelDeployment, waited on until Ready.
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:-modelops}
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
state="$CACHE/dev/$name"
mkdir -p "$state"

kubeconfig=$(hack/cluster/cluster.sh up "$name")
bin=$(hack/controlplane/build.sh)
export KUBECONFIG=$kubeconfig PATH=$bin:$PATH

# The CRDs convert v1alpha1 <-> v1beta1 through the operator's webhook: an
# operator on this host serves it on this port (the API server is a process of
# this host too). The shipped CRDs name the Service of an in-cluster operator;
# this one's URL goes in their place (a CRD holds exactly one of the two, and
# the operator adds its CA bundle once it serves).
webhook_port=${MODELOPS_WEBHOOK_PORT:-19443}
webhook_url="https://127.0.0.1:$webhook_port/convert"
.venv/bin/python - "$webhook_url" crds/*.yaml <<'PY' | kubectl apply --server-side --force-conflicts -f - >/dev/null
import sys

import yaml

url, *paths = sys.argv[1:]
crds = []
for path in paths:
    with open(path) as f:
        crd = yaml.safe_load(f)
    conversion = crd["spec"].get("conversion") or {}
    if conversion.get("strategy") == "Webhook":
        conversion["webhook"]["clientConfig"] = {"url": url}
    crds.append(crd)
print(yaml.safe_dump_all(crds, sort_keys=False))
PY
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
for f in namespace rbac tenant-roles; do
  kubectl apply --server-side --force-conflicts -f "manifests/install/$f.yaml" >/dev/null
done

# The operator runs with the ServiceAccount's token, so the dev loop exercises
# exactly the RBAC that manifests/install/rbac.yaml grants.
token=$(kubectl create token modelops-operator -n modelops-system --duration=24h)
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' \
  | base64 -d > "$state/ca.crt"
op_kubeconfig="$state/operator.kubeconfig"
KUBECONFIG=$op_kubeconfig kubectl config set-cluster local --server="$server" \
  --certificate-authority="$state/ca.crt" --embed-certs >/dev/null
KUBECONFIG=$op_kubeconfig kubectl config set-credentials operator --token="$token" >/dev/null
KUBECONFIG=$op_kubeconfig kubectl config set-context operator --cluster=local --user=operator >/dev/null
KUBECONFIG=$op_kubeconfig kubectl config use-context operator >/dev/null

if [ -f "$state/operator.pid" ] && kill -0 "$(cat "$state/operator.pid")" 2>/dev/null; then
  kill "$(cat "$state/operator.pid")" && sleep 1
fi
# Pods on the real node run the images built here (make images); pods on the
# simulated nodes pull nothing.
version=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("modelops"))')
# The real-node sample's model store (moto) listens on the node's host address: the
# operator lists a store a Secret names only at an allowed endpoint (docs/security.md).
host_ip=$(hack/node/node.sh info "$name" 2>/dev/null \
  | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin).get("host_ip") or "")' \
  2>/dev/null || true)
KUBECONFIG=$op_kubeconfig MODELOPS_METRICS_PORT=${MODELOPS_METRICS_PORT:-18080} \
  MODELOPS_IMAGE=localhost/modelops-operator:$version MODELOPS_TRITON_IMAGE=localhost/modelops-runtime:$version \
  POD_NAMESPACE=modelops-system MODELOPS_STORE_ENDPOINTS="http://127.0.0.1${host_ip:+,http://$host_ip}" \
  nohup .venv/bin/modelops run --standalone --liveness "" \
    --conversion-webhook-port "$webhook_port" --conversion-webhook-host 127.0.0.1 \
    --conversion-webhook-url "$webhook_url" \
    > "$state/operator.log" 2>&1 &
echo $! > "$state/operator.pid"

# The metrics path: Prometheus and prometheus-adapter (custom.metrics.k8s.io),
# so the sample's queue-time HPA reads real values instead of reporting
# FailedGetPodsMetric. The sample's pods are simulated; a real Triton (a small
# python-backend model) stands in for each of them and Prometheus labels its
# metrics with the pod's name (hack/metrics/stack.sh, tests/support/metrics.py).
metrics_state=$(hack/metrics/stack.sh up "$name")
# A previous run's Tritons go first (they withdraw their targets on the way out).
if [ -f "$state/triton-per-pod.pid" ] && kill -0 "$(cat "$state/triton-per-pod.pid")" 2>/dev/null; then
  old=$(cat "$state/triton-per-pod.pid")
  kill "$old"
  for _ in $(seq 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.2; done
fi

kubectl create namespace modelops-demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
# The CRDs store v1beta1 and the sample is v1alpha1: writing it needs the conversion
# webhook, which answers once the operator serves it and has put its CA bundle in the
# CRDs (a few seconds after its start). A server-side dry run goes through the conversion
# and writes nothing; the real apply below says what is wrong if it never answers.
for _ in $(seq 120); do
  kubectl apply --server-side --dry-run=server -n modelops-demo \
    -f manifests/samples/modeldeployment.yaml >/dev/null 2>&1 && break
  sleep 0.5
done
kubectl apply --server-side -n modelops-demo -f manifests/samples/modeldeployment.yaml >/dev/null
nohup .venv/bin/python -m tests.support.metrics --kubeconfig "$kubeconfig" \
  --namespace modelops-demo --model-deployment fraud-detector --targets "$metrics_state/targets" \
  > "$state/triton-per-pod.log" 2>&1 &
echo $! > "$state/triton-per-pod.pid"
kubectl wait -n modelops-demo --for=condition=Ready md/fraud-detector --timeout=120s
kubectl get nodes -L nvidia.com/gpu.product -L nvidia.com/gpu.count
echo
kubectl get -n modelops-demo md,deployments,pods,services,hpa -o wide
echo
# The same sample served by real pods on the real node (where the machine can
# run containers): model in a local S3 endpoint, one real inference at the end.
.venv/bin/python -m tests.support.real_sample --kubeconfig "$kubeconfig" --cluster "$name" \
  --namespace modelops-real --state "$state/real-sample"
kubectl get -n modelops-real md,pods -o wide 2>/dev/null || true
cat <<MSG

modelops is running (log: $state/operator.log, metrics: http://127.0.0.1:${MODELOPS_METRICS_PORT:-18080}/metrics).
Prometheus: $(cat "$metrics_state/prometheus.url"); custom metrics:
  kubectl get --raw "/apis/custom.metrics.k8s.io/v1beta1/namespaces/modelops-demo/pods/*/triton_queue_time_per_request_us"
Use the cluster from this shell:
  export KUBECONFIG=$kubeconfig PATH=$bin:\$PATH
  kubectl get md -A -w
  kubectl describe md -n modelops-demo fraud-detector
Stop everything with: make cluster-down
MSG
