"""A real Spark standalone cluster (master + two workers on 127.0.0.1, from the pyspark wheel):
the default model trained on it matches local mode, and its executors ran on the workers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request

import pytest

from conftest import REPO, cli_env

pytestmark = [pytest.mark.cluster, pytest.mark.spark, pytest.mark.slow, pytest.mark.integration]

SCRIPT = REPO / "scripts" / "spark_cluster.sh"


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _status(ui_port: int, path: str = "/json/") -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}{path}", timeout=5) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Master and two one-core workers on free ports (a worker whose UI port is taken moves to the next
    one; the test reads their addresses from the master); stopped, and checked gone, afterwards."""
    port, ui = _free_ports(2)
    env = cli_env(
        SPARK_CLUSTER_DIR=tmp_path_factory.mktemp("cluster"),
        SPARK_CLUSTER_PORT=port,
        SPARK_CLUSTER_UI_PORT=ui,
        PYTHON=sys.executable,
    )
    started = subprocess.run([str(SCRIPT), "start"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert started.returncode == 0, started.stdout + started.stderr
    try:
        yield {"master": f"spark://127.0.0.1:{port}", "ui": ui, "env": env}
    finally:
        stopped = subprocess.run([str(SCRIPT), "stop"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        assert stopped.returncode == 0, stopped.stderr
        with pytest.raises(OSError):
            _status(ui)


def test_default_model_on_a_cluster_matches_local_mode(cluster, real_model, movielens_zip, tmp_path):
    status = _status(cluster["ui"])
    assert status["status"] == "ALIVE" and len(status["workers"]) == 2
    assert all(w["state"] == "ALIVE" and w["host"] == "127.0.0.1" for w in status["workers"])

    env = {
        **cluster["env"],
        "SPARK_MASTER": cluster["master"],
        "MOVIELENS_DATA": str(movielens_zip),
        "MODEL_DIR": str(tmp_path / "models"),
        "SPARK_CHECKPOINT_DIR": str(tmp_path / "ckpt"),
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_CONF": json.dumps({"spark.executor.memory": "1g", "spark.cores.max": "2"}),
    }
    done = subprocess.run(
        [sys.executable, "-m", "engine", "train", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    on_cluster = json.loads(done.stdout.strip().splitlines()[-1])
    local = real_model[2]["metrics"]
    assert on_cluster["test_rmse"] == pytest.approx(local["test_rmse"], abs=0.002)
    assert on_cluster["split_seed"] == local["split_seed"]
    # the split hashes each rating, so the cluster's (reading the Parquet) is local mode's, rating for rating
    assert (on_cluster["n_train"], on_cluster["n_test"]) == (local["n_train"], local["n_test"])

    # The application ran on the cluster, and its executors on both workers (their own JSON status
    # lists the finished executors with the application's id).
    status = _status(cluster["ui"])
    apps = [a for a in status.get("completedapps", []) + status.get("activeapps", [])]
    assert apps, status
    app_ids = {a["id"] for a in apps}
    hosts_used = []
    for worker in status["workers"]:
        info = _status(int(worker["webuiaddress"].rsplit(":", 1)[1]))
        ran = [e for e in info.get("finishedexecutors", []) + info.get("executors", []) if e.get("appid") in app_ids]
        if ran:
            hosts_used.append(worker["id"])
    assert len(hosts_used) == 2, status
