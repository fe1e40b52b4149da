#!/usr/bin/env bash
# Soak: SOAK_MESSAGES messages (default 1,000,000) through the release
# smtpgate with the Redis store, to see whether its memory stays flat.
#   smtp-source -> smtpgate (serve, Redis store, greylisting, rate limits)
#               -> smtp-sink
# Runs of smtp-source rotate through message sizes (1,000 / 4,000 / 20,000
# bytes) and two kinds of sender: a whitelisted sender domain (never
# greylisted) and a greylisted one whose triplet passed once before the
# load (each message runs the greylist script and counts a pass). Beside
# them a small client sprays fresh triplets (a new recipient each time, RSET
# after the 450) at SOAK_SPRAY per second, as a botnet would: smtp-source
# itself treats a refused recipient as fatal. Rate limits count every
# delivery (a GET at RCPT, an INCR batch after the upstream's 250). DNS is
# a tiny local server answering NXDOMAIN, so no query leaves the machine.
# The gateway's VmRSS (and Redis's used_memory_rss) is sampled every 10 s,
# printed as a table and drawn as $OUT/soak.png with gnuplot.
#
# Usage: benches/soak.sh
#   SOAK_MESSAGES=1000000   messages to send (stops earlier at SOAK_SECONDS)
#   SOAK_SECONDS=21600      wall-time bound
#   SOAK_SESSIONS=20        parallel smtp-source sessions
#   SOAK_RUN=5000           messages per smtp-source run
#   SOAK_SPRAY=50           fresh greylist triplets per second
#   SOAK_OUT=target/soak    where the table, the plot and the logs go
set -euo pipefail
cd "$(dirname "$0")/.."

MESSAGES=${SOAK_MESSAGES:-1000000}
SECONDS_BOUND=${SOAK_SECONDS:-21600}
SESSIONS=${SOAK_SESSIONS:-20}
RUN=${SOAK_RUN:-5000}
SPRAY=${SOAK_SPRAY:-50}
OUT=${SOAK_OUT:-target/soak}
export PATH="$PATH:/usr/sbin"
for tool in smtp-source smtp-sink redis-server redis-cli gnuplot python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool"; exit 1; }
done

cargo build --release --locked -q
BIN=$PWD/target/release/smtpgate
mkdir -p "$OUT"
rm -f "$OUT"/{smtp-source.log,sprayer.log,soak.tsv,soak.png}
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
wait_port() {
  for _ in $(seq 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),1)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "port $1 did not open"; exit 1
}
SINK_PORT=$(free_port)
GW_PORT=$(free_port)
REDIS_PORT=$(free_port)
DNS_PORT=$(free_port)

# DNS: NXDOMAIN (RCODE 3) to every query, over UDP, echoing the question.
cat > "$WORK/nxdomain.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
while True:
    q, peer = s.recvfrom(4096)
    if len(q) < 12:
        continue
    # ID, flags QR|opcode|RD from the query + RA + NXDOMAIN, 1 question.
    flags = 0x8000 | (q[2] & 0x79) << 8 | 0x80 | 3
    s.sendto(q[:2] + flags.to_bytes(2, "big") + q[4:6] + b"\0\0\0\0\0\0" + q[12:], peer)
PY
python3 "$WORK/nxdomain.py" "$DNS_PORT" &
PIDS+=($!)

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$WORK" \
  >"$OUT/redis.log" 2>&1 &
PIDS+=($!)
smtp-sink -u nobody -m 200 "127.0.0.1:$SINK_PORT" 256 &
PIDS+=($!)
wait_port "$REDIS_PORT"
wait_port "$SINK_PORT"

cat > "$WORK/gw.toml" <<TOML
[server]
hostname = "gw.example.test"
listen = ["127.0.0.1:$GW_PORT"]
[upstream]
address = "127.0.0.1:$SINK_PORT"
pool_size = 64
[scoring]
spam_action = "reject"
rules_dir = "$PWD/rules"
[dns]
nameservers = ["127.0.0.1:$DNS_PORT"]
timeout = "1s"
attempts = 1
[store]
backend = "redis"
redis_url = "redis://127.0.0.1:$REDIS_PORT/0"
key_prefix = "soak:"
[envelope]
reject_unknown_helo_hostname = false
reject_unknown_sender_domain = false
reject_known_bad_recipient_address = true
reject_unverified_sender = "none"
[greylist]
delay = "1s"
auto_whitelist_after = 0
whitelist_sender_domains = ["trusted.test"]
[ratelimit]
messages_per_day = 1000000000
recipients_per_hour = 1000000000
TOML
SMTPGATE_LOG=warn "$BIN" serve --config "$WORK/gw.toml" >"$OUT/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=($GW_PID)
wait_port "$GW_PORT"

# The known triplet passes from now on (greylisted once, retried after 1 s);
# then the sprayer of fresh triplets starts.
cat > "$WORK/smtp.py" <<'PY'
import smtplib, sys, time, os
port, mode = int(sys.argv[1]), sys.argv[2]
c = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example.test", timeout=30)
c.ehlo()
if mode == "prime":
    for attempt in range(2):
        c.mail("known@bulk.test")
        code, _ = c.rcpt("rcpt@example.net")
        c.rset()
        if code == 250:
            break
        time.sleep(1.5)
    else:
        sys.exit(f"the known triplet did not pass: {code}")
else:
    stop, rate, n, refused = sys.argv[3], float(sys.argv[4]), 0, 0
    while not os.path.exists(stop):
        c.mail("spray@bulk.test")
        code, _ = c.rcpt(f"fresh{n}@example.net")
        refused += code == 450
        c.rset()
        n += 1
        time.sleep(1 / rate)
    print(f"sprayer: {n} fresh triplets, {refused} greylisted (450)")
c.quit()
PY
python3 "$WORK/smtp.py" "$GW_PORT" prime
python3 "$WORK/smtp.py" "$GW_PORT" spray "$WORK/stop" "$SPRAY" > "$OUT/sprayer.log" 2>&1 &
SPRAYER=$!

# The sampler: seconds, messages sent so far, gateway VmRSS kB, Redis RSS kB.
echo 0 > "$WORK/sent"
TABLE=$OUT/soak.tsv
(
  start=$(date +%s)
  while [ ! -e "$WORK/stop" ] && kill -0 "$GW_PID" 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$GW_PID/status" 2>/dev/null || echo 0)
    redis=$(redis-cli -p "$REDIS_PORT" info memory 2>/dev/null | awk -F: '/^used_memory_rss:/ {printf "%d", $2/1024}')
    printf '%s\t%s\t%s\t%s\n' "$(( $(date +%s) - start ))" "$(cat "$WORK/sent")" "$rss" "${redis:-0}"
    sleep 10
  done
) > "$TABLE" &
SAMPLER=$!

sizes=(1000 4000 20000)
kinds=(trusted known)
sent=0 run=0 failed=0 started=$(date +%s)
while [ "$sent" -lt "$MESSAGES" ] && [ $(( $(date +%s) - started )) -lt "$SECONDS_BOUND" ]; do
  size=${sizes[$(( run % 3 ))]}
  kind=${kinds[$(( (run / 3) % 2 ))]}
  n=$(( MESSAGES - sent < RUN ? MESSAGES - sent : RUN ))
  case $kind in
    trusted) flags=(-f "sender@trusted.test" -t "rcpt@example.net") ;;
    known)   flags=(-f "known@bulk.test" -t "rcpt@example.net") ;;
  esac
  timeout 600 smtp-source -s "$SESSIONS" -l "$size" -m "$n" -M client.example.test \
    -S "soak $kind $size" "${flags[@]}" "127.0.0.1:$GW_PORT" 2>>"$OUT/smtp-source.log" \
    || failed=$(( failed + 1 ))
  sent=$(( sent + n ))
  run=$(( run + 1 ))
  echo "$sent" > "$WORK/sent"
done
elapsed=$(( $(date +%s) - started ))
sleep 11   # one more sample after the load
touch "$WORK/stop"
wait "$SAMPLER"
wait "$SPRAYER" || true

echo "sent $sent messages in ${elapsed}s ($(( sent / (elapsed > 0 ? elapsed : 1) ))/s), $run runs of $SESSIONS sessions"
echo "redis keys at the end: $(redis-cli -p "$REDIS_PORT" dbsize)"
echo "smtp-source runs that failed: $failed (see $OUT/smtp-source.log); $(cat "$OUT/sprayer.log")"
printf '%8s %10s %12s %12s\n' seconds messages "gateway kB" "redis kB"
awk -F'\t' '{printf "%8s %10s %12s %12s\n", $1, $2, $3, $4}' "$TABLE"
# Peak, and the spread after warm-up (the first fifth of the samples).
awk -F'\t' '
  { rss[NR] = $3; if ($3 > peak) peak = $3 }
  END {
    warm = int(NR / 5) + 1; lo = 0; hi = 0
    for (i = warm; i <= NR; i++) { if (lo == 0 || rss[i] < lo) lo = rss[i]; if (rss[i] > hi) hi = rss[i] }
    spread = lo > 0 ? (hi - lo) * 100 / lo : 0
    printf "peak %d kB; after warm-up (sample %d on) %d..%d kB, spread %.1f%% -> %s\n",
      peak, warm, lo, hi, spread, spread <= 10 ? "flat within 10%" : "NOT flat within 10%"
  }' "$TABLE"

gnuplot <<GP
set terminal png size 900,500
set output "$OUT/soak.png"
set title "smtpgate soak: $sent messages, Redis store"
set xlabel "seconds"
set ylabel "RSS (MB)"
set y2label "messages sent"
set y2tics
set ytics nomirror
set yrange [0:*]
set grid
set key below
plot "$TABLE" using 1:(\$3/1024) with linespoints title "gateway VmRSS", \
     "$TABLE" using 1:(\$4/1024) with lines title "redis RSS", \
     "$TABLE" using 1:2 axes x1y2 with lines title "messages sent"
GP
echo "table: $TABLE  plot: $OUT/soak.png"
