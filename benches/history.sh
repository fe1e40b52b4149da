#!/usr/bin/env bash
# What the message history costs the hot path: two gateways from one binary,
# [history] on and off, in front of one smtp-sink, measured in alternating
# rounds so the machine's noise hits both. Per round: one session sending
# MSGS messages one after another (the time per message is the latency a
# client sees) and SESSIONS parallel sessions (the rate); CPU per message
# from /proc/PID/stat of each gateway. Prints min/median/max per figure.
# Loopback only; every load is bounded by a message count and a timeout.
#
# Usage: benches/history.sh   (MSGS=2000 SESSIONS=20 SIZE=4096 ROUNDS=5; STORE=redis for a Redis store)
set -euo pipefail
cd "$(dirname "$0")/.."

MSGS=${MSGS:-2000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
ROUNDS=${ROUNDS:-5}
STORE=${STORE:-memory}
export PATH="$PATH:/usr/sbin"
for tool in smtp-source smtp-sink; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install postfix)"; exit 1; }
done
if [ -z "${SMTPGATE_BIN:-}" ]; then cargo build --release --locked -q; fi
BIN=${SMTPGATE_BIN:-target/release/smtpgate}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
wait_port() {
  for _ in $(seq 100); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null && return 0
    sleep 0.1
  done
  echo "port $1 did not open"; exit 1
}

SINK_PORT=$(free_port)
smtp-sink -u nobody "127.0.0.1:$SINK_PORT" 256 &
PIDS+=($!)
STORE_TOML=""
if [ "$STORE" = redis ]; then
  REDIS_PORT=$(free_port)
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >/dev/null &
  PIDS+=($!)
  wait_port "$REDIS_PORT"
  STORE_TOML="[store]
backend = \"redis\"
redis_url = \"redis://127.0.0.1:$REDIS_PORT\""
fi

declare -A PORT GPID
for h in on off; do
  PORT[$h]=$(free_port)
  enabled=true; [ "$h" = off ] && enabled=false
  cat > "$WORK/$h.toml" <<TOML
[server]
hostname = "gw.example.test"
listen = ["127.0.0.1:${PORT[$h]}"]
max_connections_per_client = 0
max_connection_rate_per_client = 0
[upstream]
address = "127.0.0.1:$SINK_PORT"
pool_size = 64
[scoring]
spam_action = "reject"
rules_dir = "$PWD/rules"
[history]
enabled = $enabled
$STORE_TOML
TOML
  SMTPGATE_LOG=warn "$BIN" serve --config "$WORK/$h.toml" &
  GPID[$h]=$!
  PIDS+=($!)
done
wait_port "$SINK_PORT"; wait_port "${PORT[on]}"; wait_port "${PORT[off]}"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# One run: prints "seconds cpu_ms_per_msg".
run() {
  local h=$1 sessions=$2 t0 t1 c0 c1
  c0=$(ticks "${GPID[$h]}"); t0=$(date +%s.%N)
  timeout 300 smtp-source -s "$sessions" -l "$SIZE" -m "$MSGS" -M client.example.test -S "bench message" \
    -f sender@example.test -t rcpt@example.net "127.0.0.1:${PORT[$h]}"
  t1=$(date +%s.%N); c1=$(ticks "${GPID[$h]}")
  python3 -c "print($t1-$t0, ($c1-$c0)*1000/$HZ/$MSGS)"
}

for h in on off; do run "$h" 4 >/dev/null; done   # warm-up
for r in $(seq "$ROUNDS"); do
  for h in on off; do
    echo "$h serial $(run "$h" 1)" >> "$WORK/results"
    echo "$h parallel $(run "$h" "$SESSIONS")" >> "$WORK/results"
  done
done

python3 - "$WORK/results" "$MSGS" <<'PY'
import sys, statistics as st
rows = [l.split() for l in open(sys.argv[1])]
msgs = int(sys.argv[2])
def fig(vals): return f"{min(vals):8.3f} {st.median(vals):8.3f} {max(vals):8.3f}"
print(f"{'figure':44} {'min':>8} {'median':>8} {'max':>8}")
for mode in ("serial", "parallel"):
    for h in ("on", "off"):
        secs = [float(r[2]) for r in rows if r[0] == h and r[1] == mode]
        cpu = [float(r[3]) for r in rows if r[0] == h and r[1] == mode]
        if mode == "serial":
            print(f"{'history ' + h + ': ms per message, one session':44} {fig([s * 1000 / msgs for s in secs])}")
        else:
            print(f"{'history ' + h + ': msgs/s, parallel':44} {fig([msgs / s for s in secs])}")
        print(f"{'history ' + h + ': CPU ms per message (' + mode + ')':44} {fig(cpu)}")
PY
echo "($MSGS messages of $SIZE bytes per run, $ROUNDS rounds alternating on/off, store: $STORE)"
