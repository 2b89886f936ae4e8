"""A real Prometheus (Debian's `prometheus` package) as a local process.

It scrapes real processes on this machine (tritonserver's /metrics) and
attaches `namespace`/`pod` target labels to their series, which is how a
Prometheus in a cluster labels what it scrapes from pods. The labels are the
test profile's attribution of a local process to a simulated pod; the series
themselves are the program's own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from tests.support.cluster import wait_for

INSTALL_HINT = "run hack/install-prometheus.sh (apt-get install -y prometheus)"


@dataclass(frozen=True)
class Target:
    """One scraped endpoint (host:port) and the labels its series get."""

    address: str
    labels: dict[str, str]


@dataclass
class Prometheus:
    port: int
    work_dir: Path
    scrape_interval: str = "1s"
    targets: list[Target] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(f"prometheus not found on PATH: {INSTALL_HINT}")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        log = (self.work_dir / "prometheus.log").open("ab")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={self.work_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.work_dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for(self._ready, timeout=60, what="prometheus /-/ready")
        return self

    def scrape(self, *targets: Target) -> None:
        """Replace the scraped targets and reload the configuration."""
        self.targets = list(targets)
        self._write_config()
        request = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def query(self, expr: str) -> list[tuple[dict[str, str], float]]:
        """An instant query: (labels, value) per series of the result vector."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        if body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body}")
        return [(r["metric"], float(r["value"][1])) for r in body["data"]["result"]]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        path = self.work_dir / "prometheus.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"prometheus exited; log:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def _write_config(self) -> None:
        config = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": "1s"},
            "scrape_configs": [
                {
                    "job_name": f"target-{i}",
                    "static_configs": [{"targets": [t.address], "labels": t.labels}],
                }
                for i, t in enumerate(self.targets)
            ],
        }
        (self.work_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
