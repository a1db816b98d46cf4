#!/usr/bin/env bash
# A real Spark standalone cluster on this machine, from the pinned pyspark wheel (nothing downloaded):
# one master and two workers, every port and web UI on 127.0.0.1.
#
#   scripts/spark_cluster.sh start    # then: SPARK_MASTER=spark://127.0.0.1:7077 python -m engine train
#   scripts/spark_cluster.sh status   # the master's JSON status (workers, applications)
#   scripts/spark_cluster.sh stop
#
# Settings (environment): SPARK_CLUSTER_DIR (pid files, logs, work dirs; default data/spark-cluster),
# SPARK_CLUSTER_PORT (7077), SPARK_CLUSTER_UI_PORT (8080; workers use the next ports),
# SPARK_CLUSTER_WORKERS (2), SPARK_WORKER_CORES (1), SPARK_WORKER_MEMORY (2g), PYTHON (.venv/bin/python).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
DIR="${SPARK_CLUSTER_DIR:-$ROOT/data/spark-cluster}"
PORT="${SPARK_CLUSTER_PORT:-7077}"
UI_PORT="${SPARK_CLUSTER_UI_PORT:-8080}"
WORKERS="${SPARK_CLUSTER_WORKERS:-2}"
CORES="${SPARK_WORKER_CORES:-1}"
MEMORY="${SPARK_WORKER_MEMORY:-2g}"
HOST=127.0.0.1
MASTER="spark://$HOST:$PORT"

spark_home() {
  "$PYTHON" -c "import os, pyspark; print(os.path.dirname(pyspark.__file__))" 2>/dev/null || {
    echo "error: no pyspark in $PYTHON (run 'make venv' first, or set PYTHON)" >&2; exit 1; }
}

wait_json() {   # wait_json URL CONDITION(python expression over `s`, the parsed JSON) SECONDS
  "$PYTHON" - "$1" "$2" "$3" <<'EOF'
import json, sys, time, urllib.request
url, cond, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.time() + limit
while time.time() < end:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            s = json.load(r)
        if eval(cond):
            sys.exit(0)
    except OSError:
        pass
    time.sleep(0.5)
sys.exit(1)
EOF
}

start() {
  "$ROOT/scripts/check_java.sh"
  local home; home="$(spark_home)"
  mkdir -p "$DIR/logs"
  if [ -f "$DIR/master.pid" ] && kill -0 "$(cat "$DIR/master.pid")" 2>/dev/null; then
    echo "a cluster already runs (master pid $(cat "$DIR/master.pid")); 'stop' it first" >&2; exit 1
  fi
  export SPARK_HOME="$home" SPARK_LOCAL_IP="$HOST"   # web UIs bind to SPARK_LOCAL_IP, not every interface
  export SPARK_NO_DAEMONIZE=1 PYSPARK_PYTHON="$PYTHON"
  # No REST submission server (a fixed port 6066): jobs come from drivers, status from the web UI's JSON.
  export SPARK_MASTER_OPTS="${SPARK_MASTER_OPTS:-} -Dspark.master.rest.enabled=false"
  nohup "$home/bin/spark-class" org.apache.spark.deploy.master.Master \
    --host "$HOST" --port "$PORT" --webui-port "$UI_PORT" >"$DIR/logs/master.log" 2>&1 &
  echo $! >"$DIR/master.pid"
  if ! wait_json "http://$HOST:$UI_PORT/json/" "s.get('status') == 'ALIVE'" 90; then
    echo "error: the master did not come up; see $DIR/logs/master.log" >&2; tail -20 "$DIR/logs/master.log" >&2
    stop; exit 1
  fi
  for i in $(seq 1 "$WORKERS"); do
    mkdir -p "$DIR/work-$i"
    nohup "$home/bin/spark-class" org.apache.spark.deploy.worker.Worker \
      --host "$HOST" --cores "$CORES" --memory "$MEMORY" --webui-port "$((UI_PORT + i))" \
      --work-dir "$DIR/work-$i" "$MASTER" >"$DIR/logs/worker-$i.log" 2>&1 &
    echo $! >"$DIR/worker-$i.pid"
  done
  if ! wait_json "http://$HOST:$UI_PORT/json/" \
       "sum(w['state'] == 'ALIVE' for w in s.get('workers', [])) >= $WORKERS" 90; then
    echo "error: the workers did not register; see $DIR/logs/worker-*.log" >&2; stop; exit 1
  fi
  echo "Spark cluster up: $MASTER, $WORKERS workers x $CORES core(s); status http://$HOST:$UI_PORT/json/"
}

stop() {
  local any=0
  for pidfile in "$DIR"/worker-*.pid "$DIR"/master.pid; do
    [ -f "$pidfile" ] || continue
    local pid; pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      pkill -TERM -P "$pid" 2>/dev/null || true   # spark-class runs java as its child
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -KILL "$pid" 2>/dev/null || true
      any=1
    fi
    rm -f "$pidfile"
  done
  [ "$any" = 1 ] && echo "Spark cluster stopped" || echo "no Spark cluster was running"
}

status() {
  "$PYTHON" -c "import json, sys, urllib.request; print(json.dumps(json.load(urllib.request.urlopen(sys.argv[1], timeout=5)), indent=2))" \
    "http://$HOST:$UI_PORT/json/" 2>/dev/null || { echo "no Spark master answers on http://$HOST:$UI_PORT" >&2; exit 1; }
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
