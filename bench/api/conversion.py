"""Cost of the conversion webhook: what the API server waits for on each converted read.

Once v1beta1 is the storage version, every read of a ModelDeployment or
TrainingJob in the other version (an old client, or the operator while it
still reads v1alpha1) goes through the webhook; a list of N objects is one
ConversionReview of N objects.

- Pure conversion (api/conversion.py): process time per object, v1alpha1 ->
  v1beta1 and back, over seeded random objects drawn from the CRD schema (the
  same generator as the round-trip tests; many optional fields set, status
  included), so the figure is for objects larger than most real ones.
- Through the HTTPS server (webhook/server.py) on 127.0.0.1: wall time of one
  ConversionReview of N objects, request to answer, TLS included (new
  connection per review, as the API server's client may open).

    python bench/api/conversion.py [--objects 1000] [--reviews 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import random
import shlex
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.schema_objects import custom_object

from modelops.api import constants as c
from modelops.api import conversion as cv
from modelops.api.crd import MODEL_DEPLOYMENT, build_versioned_crd
from modelops.webhook import certs
from modelops.webhook.server import ConversionServer


def objects(n: int) -> list[dict]:
    crd = build_versioned_crd(MODEL_DEPLOYMENT, {"url": "https://127.0.0.1:1/convert"})
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return [custom_object(random.Random(i), schema, c.API_VERSION, c.MD_KIND) for i in range(n)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--reviews", type=int, default=20)
    args = parser.parse_args()
    print("$ python bench/api/conversion.py " + shlex.join(sys.argv[1:]))

    alphas = objects(args.objects)
    size = statistics.median(len(json.dumps(o)) for o in alphas)
    start = time.process_time()
    betas = [cv.to_v1beta1(o) for o in alphas]
    up = (time.process_time() - start) / len(alphas) * 1e6
    start = time.process_time()
    for o in betas:
        cv.to_v1alpha1(o)
    down = (time.process_time() - start) / len(betas) * 1e6
    print(f"objects: {len(alphas)} ModelDeployments, median {size:.0f} bytes of JSON")
    print(f"v1alpha1 -> v1beta1: {up:.0f} us CPU per object")
    print(f"v1beta1 -> v1alpha1: {down:.0f} us CPU per object")

    bundle = certs.renewed(None, ("127.0.0.1",), dt.datetime.now(dt.UTC))
    server = ConversionServer("127.0.0.1", 0, bundle.tls_cert, bundle.tls_key)
    server.start()
    review = json.dumps(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {
                "uid": "bench",
                "desiredAPIVersion": f"{c.GROUP}/v1beta1",
                "objects": alphas,
            },
        }
    ).encode()
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".pem") as ca:
            ca.write(bundle.ca_certs)
            ca.flush()
            context = ssl.create_default_context(cafile=ca.name)
            for n, body in ((1, _one(alphas[0])), (len(alphas), review)):
                walls = []
                for _ in range(args.reviews):
                    t0 = time.perf_counter()
                    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context)
                    conn.request("POST", "/convert", body=body)
                    answer = json.loads(conn.getresponse().read())
                    walls.append(time.perf_counter() - t0)
                    conn.close()
                    assert answer["response"]["result"]["status"] == "Success"
                walls.sort()
                median = statistics.median(walls) * 1e3
                p90 = walls[int(len(walls) * 0.9) - 1] * 1e3
                print(
                    f"review of {n} object(s) over HTTPS: median {median:.1f} ms, "
                    f"p90 {p90:.1f} ms ({args.reviews} reviews)"
                )
    finally:
        server.stop()
    return 0


def _one(obj: dict) -> bytes:
    return json.dumps(
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "ConversionReview",
            "request": {"uid": "one", "desiredAPIVersion": f"{c.GROUP}/v1beta1", "objects": [obj]},
        }
    ).encode()


if __name__ == "__main__":
    sys.exit(main())
