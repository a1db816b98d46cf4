"""Spark stays off the network unless asked, and leaves no checkpoints behind (issue 23, items 5 and 17)."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.settings import get_settings
from engine.spark import _is_local, checkpoint_dir, safe_conf

REPO = Path(__file__).resolve().parent.parent


def listening_addresses(pid: int) -> list[str]:
    """The local addresses of every TCP socket process ``pid`` listens on (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            cols = line.split()
            local, state, inode = cols[1], cols[3], cols[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            hex_ip, hex_port = local.split(":")
            raw = bytes.fromhex(hex_ip)
            # /proc prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            found.append(f"{ipaddress.ip_address(raw)}:{int(hex_port, 16)}")
    return found


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.rsplit(":", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def test_local_masters_are_recognised():
    assert _is_local("local[*]") and _is_local("local[2]") and _is_local("spark://127.0.0.1:7077")
    assert not _is_local("spark://10.0.0.5:7077") and not _is_local("yarn")


def test_conf_keeps_spark_on_loopback_and_ui_off(monkeypatch):
    monkeypatch.delenv("SPARK_UI", raising=False)
    monkeypatch.setenv("SPARK_MASTER", "local[*]")
    conf = safe_conf(get_settings())
    assert conf["spark.ui.enabled"] == "false"
    assert conf["spark.driver.bindAddress"] == conf["spark.driver.host"] == "127.0.0.1"
    monkeypatch.setenv("SPARK_MASTER", "spark://10.1.2.3:7077")  # executors elsewhere must reach the driver
    assert "spark.driver.bindAddress" not in safe_conf(get_settings())
    monkeypatch.setenv("SPARK_UI", "1")
    assert safe_conf(get_settings())["spark.ui.enabled"] == "true"
    monkeypatch.setenv("SPARK_UI", "yes please")
    with pytest.raises(ValueError, match="SPARK_UI"):
        get_settings()


@pytest.mark.spark
def test_running_session_listens_on_loopback_only(spark):
    assert spark.sparkContext.uiWebUrl is None  # no web UI
    pid = int(spark._jvm.java.lang.ProcessHandle.current().pid())
    spark.range(100).selectExpr("sum(id)").collect()  # the block manager and executors are up
    addresses = listening_addresses(pid)
    assert addresses, "the JVM listens on no socket at all: the /proc reading is broken"
    assert all(is_loopback(a) for a in addresses), addresses


@pytest.mark.spark
@pytest.mark.slow
def test_ui_when_asked_for_listens_on_loopback_only(tmp_path):
    """SPARK_UI=1 turns the UI on, still only on 127.0.0.1 (a fresh JVM: its own process)."""
    script = (
        "import json; from engine.spark import get_spark\n"
        "s = get_spark(app_name='ui-test')\n"
        "pid = int(s._jvm.java.lang.ProcessHandle.current().pid())\n"
        "from tests.test_faults_spark import listening_addresses\n"
        "print(json.dumps({'ui': s.sparkContext.uiWebUrl, 'listen': listening_addresses(pid)}))\n"
        "s.stop()\n"
    )
    env = {
        **os.environ,
        "SPARK_UI": "1",
        "SPARK_MASTER": "local[1]",
        "PYTHONPATH": str(REPO),
        "SPARK_CHECKPOINT_DIR": str(tmp_path / "ckpt"),
    }
    env.pop("SPARK_LOCAL_IP", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ui"] and "127.0.0.1" in result["ui"]
    ui_port = int(result["ui"].rsplit(":", 1)[1])
    assert any(a.endswith(f":{ui_port}") for a in result["listen"]), result
    assert all(is_loopback(a) for a in result["listen"]), result
    assert list((tmp_path / "ckpt").iterdir()) == []  # its own checkpoint folder went at exit


def test_checkpoint_leftovers_of_dead_runs_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    for name in (f"run-{dead.pid}", "3f2a9c1e-uuid-of-an-old-spark", f"run-{os.getppid()}"):
        (tmp_path / name / "rdd-12").mkdir(parents=True)
        (tmp_path / name / "rdd-12" / "part-00000").write_bytes(b"x" * 1000)
    (tmp_path / "notes.txt").write_text("not a folder: left alone")
    mine = checkpoint_dir(str(tmp_path))
    assert Path(mine) == tmp_path / f"run-{os.getpid()}" and Path(mine).is_dir()
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["notes.txt", f"run-{os.getppid()}", f"run-{os.getpid()}"])  # the live one stays
    assert checkpoint_dir("hdfs://nn/ckpt") == "hdfs://nn/ckpt"
