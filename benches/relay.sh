#!/usr/bin/env bash
# End-to-end relay throughput, in one run on one machine:
#   Postfix smtp-source -> smtp-sink                 (direct)
#   Postfix smtp-source -> smtpgate -> smtp-sink     (through the gateway)
# 20 parallel sessions, 4 KB messages, with and without connection reuse
# (smtp-source -d). Prints msgs/s for each and the ratio gateway/direct.
# Loopback only; every load is bounded by a message count and a timeout.
#
# Usage: benches/relay.sh            (MSGS=2000 SESSIONS=20 SIZE=4096 to change)
set -euo pipefail
cd "$(dirname "$0")/.."

MSGS=${MSGS:-2000}
SESSIONS=${SESSIONS:-20}
SIZE=${SIZE:-4096}
ROUNDS=${ROUNDS:-3}
for tool in smtp-source smtp-sink; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || { echo "missing $tool (apt-get install postfix)"; exit 1; }
done
export PATH="$PATH:/usr/sbin"

# SMTPGATE_BIN=path measures another build (e.g. an older commit's binary;
# give it LIMIT_KEYS="" when it predates the per-client limits).
if [ -z "${SMTPGATE_BIN:-}" ]; then cargo build --release --locked -q; fi
BIN=${SMTPGATE_BIN:-target/release/smtpgate}
LIMIT_KEYS=${LIMIT_KEYS-"max_connections_per_client = 0
max_connection_rate_per_client = 0"}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
SINK_PORT=$(free_port)
GW_PORT=$(free_port)
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

wait_port() {
  for _ in $(seq 100); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "port $1 did not open"; exit 1
}

smtp-sink -u nobody -m 200 "127.0.0.1:$SINK_PORT" 256 &
PIDS+=($!)
cat > "$WORK/gw.toml" <<TOML
[server]
hostname = "gw.example.test"
listen = ["127.0.0.1:$GW_PORT"]
# The load generator is one client: no per-client limits.
$LIMIT_KEYS
[upstream]
address = "127.0.0.1:$SINK_PORT"
pool_size = 64
[scoring]
spam_action = "reject"
rules_dir = "$PWD/rules"
TOML
SMTPGATE_LOG=warn "$BIN" serve --config "$WORK/gw.toml" &
PIDS+=($!)
wait_port "$SINK_PORT"
wait_port "$GW_PORT"

# Prints msgs/s for one smtp-source run against port $1 with extra flags $2.
rate() {
  local port=$1 flags=$2 start end
  start=$(date +%s.%N)
  timeout 300 smtp-source $flags -s "$SESSIONS" -l "$SIZE" -m "$MSGS" -M client.example.test -S "bench message" \
    -f sender@example.test -t rcpt@example.net "127.0.0.1:$port"
  end=$(date +%s.%N)
  python3 -c "print(f'{$MSGS/($end-$start):.0f}')"
}

# Best of ROUNDS, alternating direct and gateway so noise hits both.
best() {
  local port=$1 flags=$2 best=0 r
  for _ in $(seq "$ROUNDS"); do
    r=$(rate "$port" "$flags")
    [ "$r" -gt "$best" ] && best=$r
  done
  echo "$best"
}

printf '%-22s %12s %12s %8s\n' "mode" "direct" "smtpgate" "ratio"
for mode in "new connection per msg:" "connection reuse (-d):-d"; do
  label=${mode%%:*}
  flags=${mode#*:}
  rate "$SINK_PORT" "$flags" >/dev/null   # warm-up
  rate "$GW_PORT" "$flags" >/dev/null
  direct=$(best "$SINK_PORT" "$flags")
  gateway=$(best "$GW_PORT" "$flags")
  ratio=$(python3 -c "print(f'{$gateway/$direct:.2f}')")
  printf '%-22s %10s/s %10s/s %8s\n' "$label" "$direct" "$gateway" "$ratio"
done
echo "($MSGS messages of $SIZE bytes, $SESSIONS sessions, best of $ROUNDS; target ratio >= 0.80)"
