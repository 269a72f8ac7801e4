"""A real ``mlflow server`` (SQLite backend, local artifacts) on a free port of 127.0.0.1 for the tests,
and MLflow's REST API read with plain HTTP (urllib): what the export wrote, seen as any client sees it.

``with MlflowServer(tmp) as server:`` starts it and waits (bounded) until ``/health`` answers; leaving
the block stops its whole process group (uvicorn workers included), killing it if it does not stop.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    def __init__(self, root: Path, start_timeout: float = 90.0):
        self.root = Path(root)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.start_timeout = start_timeout

    def __enter__(self) -> MlflowServer:
        self.root.mkdir(parents=True, exist_ok=True)
        self.log = open(self.root / "server.log", "w")  # noqa: SIM115 - closed in __exit__
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts")],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.__exit__()
                raise RuntimeError(f"mlflow server exited: {(self.root / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.5)
        self.__exit__()
        raise TimeoutError(f"mlflow server did not answer /health in {self.start_timeout:.0f} s")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self.log.close()

    # --- MLflow's REST API (https://mlflow.org/docs/latest/api_reference/rest-api.html) -----------------

    def get(self, path: str, **query: Any) -> dict:
        url = f"{self.url}/api/2.0/mlflow/{path}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{self.url}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=30) as r:
            return json.loads(r.read())

    def experiments(self) -> list[dict]:
        return self.post("experiments/search", {"max_results": 1000}).get("experiments", [])

    def runs(self, experiment_id: str) -> list[dict]:
        """Every active run of the experiment, all pages."""
        out, token = [], None
        while True:
            body = {"experiment_ids": [experiment_id], "max_results": 1000, "run_view_type": "ACTIVE_ONLY"}
            if token:
                body["page_token"] = token
            page = self.post("runs/search", body)
            out += page.get("runs", [])
            token = page.get("next_page_token")
            if not token:
                return out

    def history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        """(step, value) of every logged point of one metric, by step."""
        points = self.get("metrics/get-history", run_id=run_id, metric_key=key, max_results=25000).get("metrics", [])
        return sorted((int(p.get("step", 0)), float(p["value"])) for p in points)


def tags(run: dict) -> dict[str, str]:
    return {t["key"]: t["value"] for t in run["data"].get("tags", [])}


def params(run: dict) -> dict[str, str]:
    return {p["key"]: p["value"] for p in run["data"].get("params", [])}


def metrics(run: dict) -> dict[str, float]:
    """The latest value of each metric."""
    return {m["key"]: float(m["value"]) for m in run["data"].get("metrics", [])}
