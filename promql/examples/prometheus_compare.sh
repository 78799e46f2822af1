#!/usr/bin/env bash
# Times the eval_bench queries on Debian's Prometheus over the same data.
#
#   cargo build --release -p tidewatch-promql --example eval_bench
#   promql/examples/prometheus_compare.sh [RUNS] [SERIES]
#
# Generates the eval_bench workload as remote-write requests, starts
# `prometheus --web.enable-remote-write-receiver` on a free port with a
# temporary data directory, remote-writes the data in time order, then runs
# each query through /api/v1/query_range RUNS times. It prints the median
# CPU time Prometheus spent per query (utime + stime of the process from
# /proc/PID/stat, clock-tick resolution) and the median wall time of the
# HTTP call, plus the result's series count and a checksum comparable with
# eval_bench's (sum of finite values).
set -euo pipefail
RUNS=${1:-7}
SERIES=${2:-10000}
BENCH=${BENCH:-${CARGO_TARGET_DIR:-target}/release/examples/eval_bench}
W=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$W"
}
trap cleanup EXIT

"$BENCH" --series "$SERIES" --dump-remote-write "$W/rw" >/dev/null
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf 'global:\n  scrape_interval: 1h\n' >"$W/p.yml"
prometheus --config.file="$W/p.yml" --storage.tsdb.path="$W/data" \
  --web.listen-address="127.0.0.1:$PORT" --web.enable-remote-write-receiver \
  --log.level=warn 2>"$W/prometheus.log" &
PID=$!
BASE="http://127.0.0.1:$PORT"
deadline=$((SECONDS + 60))
until curl -sf "$BASE/-/ready" >/dev/null; do
  if [ $SECONDS -ge $deadline ]; then echo "prometheus not ready" >&2; cat "$W/prometheus.log" >&2; exit 1; fi
  sleep 0.2
done
for f in "$W"/rw/*.pb; do
  curl -sf --data-binary "@$f" -H 'Content-Encoding: snappy' \
    -H 'Content-Type: application/x-protobuf' \
    -H 'X-Prometheus-Remote-Write-Version: 0.1.0' "$BASE/api/v1/write"
done

TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$PID/stat"; }
{ read -r START END STEP; mapfile -t QUERIES; } <"$W/rw/queries.txt"
echo "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'): $RUNS runs per query, medians"
printf '%9s %9s %6s %8s %22s  %s\n' "cpu ms" "wall ms" series points checksum query
for q in "${QUERIES[@]}"; do
  cpus=() walls=()
  for _ in $(seq "$RUNS"); do
    c0=$(cpu_ticks)
    w=$(curl -sf -o "$W/out.json" -w '%{time_total}' "$BASE/api/v1/query_range" \
      --data-urlencode "query=$q" -d "start=$START" -d "end=$END" -d "step=$STEP")
    c1=$(cpu_ticks)
    cpus+=("$(( (c1 - c0) * 1000 / TICK ))")
    walls+=("$w")
  done
  python3 - "$W/out.json" "$q" "${cpus[*]}" "${walls[*]}" <<'PY'
import json, math, statistics, sys
out = json.load(open(sys.argv[1]))
assert out["status"] == "success", out
m = out["data"]["result"]
vals = [float(v) for s in m for _, v in s["values"]]
checksum = sum(v for v in vals if math.isfinite(v))
cpu = sorted(float(x) for x in sys.argv[3].split())
wall = sorted(float(x) * 1000 for x in sys.argv[4].split())
print(f"{cpu[len(cpu)//2]:9.1f} {wall[len(wall)//2]:9.1f} {len(m):6d} {len(vals):8d} {checksum:22.10e}  {sys.argv[2]}")
PY
done
