#!/usr/bin/env bash
# rspamd's verdicts next to smtpgate's on the content corpus (issue 18):
# tests/fixtures/content/{abuse,legit}/*.eml, each judged with the corpus
# envelope of tests/content_corpus.rs (MAIL FROM site@customer.test,
# RCPT someone@example.net, HELO web1.customer.test, client 127.0.0.1, no
# login). Prints, per category, how many messages each engine stopped,
# then a confusion matrix for each engine.
#
# rspamd (Debian's package) runs as a private instance in the foreground:
# config, database and logs under $RSPAMD_DIR (default /tmp/rspamd-cmp),
# stock rules, its resolver an unreachable loopback port (127.0.0.1:1) so
# RBL/URIBL/SURBL/DNS lookups fail, fuzzy off, no Redis (Bayes, reputation,
# ratelimit, replies... disable themselves). As root the whole run is in a
# private network namespace (loopback only); otherwise only the dead
# resolver keeps it off the network.
#
# "Stopped": rspamd = action reject, soft reject, rewrite subject or add
# header (stock thresholds: add header 6, rewrite subject 8, reject 15;
# greylist at 4 is not counted); smtpgate = `smtpgate check` action other
# than "pass" (score >= 2.00, a blocking symbol or a refusal).
#
# Usage: benches/rspamd_compare.sh   (SMTPGATE_BIN=path to use another build;
#        details per message in $RSPAMD_DIR/results.tsv)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

if ! command -v rspamd >/dev/null || ! command -v rspamc >/dev/null; then
  echo "rspamd is not installed (apt-get install rspamd): no comparison made"
  exit 0
fi

if [ -z "${RSPAMD_CMP_NETNS:-}" ]; then
  if [ -z "${SMTPGATE_BIN:-}" ]; then cargo build --release --locked -q; fi
  if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
    exec unshare --net -- env RSPAMD_CMP_NETNS=1 SMTPGATE_BIN="${SMTPGATE_BIN:-$ROOT/target/release/smtpgate}" bash "$0" "$@"
  fi
  ISOLATION="host network; rspamd's resolver is 127.0.0.1:1"
else
  ip link set lo up
  ISOLATION="private network namespace (loopback only); rspamd's resolver is 127.0.0.1:1"
fi
BIN=${SMTPGATE_BIN:-$ROOT/target/release/smtpgate}
CORPUS=$ROOT/tests/fixtures/content
DIR=${RSPAMD_DIR:-/tmp/rspamd-cmp}
FROM=site@customer.test RCPT=someone@example.net HELO=web1.customer.test IP=127.0.0.1

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
NORMAL_PORT=$(free_port)
CONTROLLER_PORT=$(free_port)

# A fresh config each run; var/ keeps rspamd's compiled regexp cache.
rm -rf "$DIR/local" "$DIR/run" "$DIR/log" "$DIR/out"
mkdir -p "$DIR/local/local.d" "$DIR/var" "$DIR/run" "$DIR/log" "$DIR/out/rspamd" "$DIR/out/smtpgate"
cat > "$DIR/rspamd.conf" <<CONF
.include "\$CONFDIR/common.conf"
options {
    pidfile = "\$RUNDIR/rspamd.pid";
    .include "\$CONFDIR/options.inc"
    .include(try=true; priority=1,duplicate=merge) "\$LOCAL_CONFDIR/local.d/options.inc"
}
logging {
    type = "file";
    filename = "\$LOGDIR/rspamd.log";
    level = "info";
}
worker "normal" {
    bind_socket = "127.0.0.1:$NORMAL_PORT";
    .include "\$CONFDIR/worker-normal.inc"
    count = 1;
}
worker "controller" {
    bind_socket = "127.0.0.1:$CONTROLLER_PORT";
    .include "\$CONFDIR/worker-controller.inc"
}
CONF
cat > "$DIR/local/local.d/options.inc" <<'CONF'
dns {
    nameserver = ["127.0.0.1:1"];
    timeout = 0.5s;
    retransmits = 1;
}
CONF
echo 'enabled = false;' > "$DIR/local/local.d/fuzzy_check.conf"
cat > "$DIR/smtpgate.toml" <<TOML
# The corpus test's configuration (tests/common/mod.rs config_text), with
# the resolver on the same dead loopback port as rspamd's.
[server]
hostname = "gw.example.test"
listen = ["127.0.0.1:0"]
[upstream]
address = "127.0.0.1:1"
timeout = "2s"
connect_timeout = "2s"
[scoring]
spam_action = "reject"
rules_dir = "$ROOT/rules"
[dns]
nameservers = ["127.0.0.1:1"]
timeout = "500ms"
attempts = 1
TOML

VARS=(--var="LOCAL_CONFDIR=$DIR/local" --var="DBDIR=$DIR/var" --var="RUNDIR=$DIR/run" --var="LOGDIR=$DIR/log")
RUN_AS=(-i)
if [ "$(id -u)" = 0 ] && id _rspamd >/dev/null 2>&1; then
  chown -R _rspamd:_rspamd "$DIR/var" "$DIR/run" "$DIR/log"
  RUN_AS=(-u _rspamd -g _rspamd)
fi
rspamd -f "${RUN_AS[@]}" -c "$DIR/rspamd.conf" "${VARS[@]}" > "$DIR/log/stdout" 2>&1 &
RSPAMD_PID=$!
cleanup() { kill "$RSPAMD_PID" 2>/dev/null || true; wait "$RSPAMD_PID" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 600); do
  if ! kill -0 "$RSPAMD_PID" 2>/dev/null; then
    echo "rspamd exited at start-up:"; tail -20 "$DIR/log/stdout" "$DIR/log/rspamd.log" 2>/dev/null; exit 1
  fi
  if python3 -c "import socket; socket.create_connection(('127.0.0.1',$NORMAL_PORT),1)" 2>/dev/null; then break; fi
  sleep 0.2
done
python3 -c "import socket; socket.create_connection(('127.0.0.1',$NORMAL_PORT),1)" 2>/dev/null \
  || { echo "rspamd did not open 127.0.0.1:$NORMAL_PORT"; exit 1; }
echo "rspamd $(rspamd --version | awk '{print $NF}') pid $RSPAMD_PID on 127.0.0.1:$NORMAL_PORT ($ISOLATION)"
echo "smtpgate $BIN"

ask_rspamd() { # file -> out/rspamd/<dir>/<name>.json
  local f=$1 out="$DIR/out/rspamd/$(basename "$(dirname "$1")")-$(basename "$1" .eml).json"
  rspamc -h "127.0.0.1:$NORMAL_PORT" -t 30 -j --from "$FROM" --rcpt "$RCPT" --helo "$HELO" --ip "$IP" symbols "$f" > "$out"
}
export -f ask_rspamd
export DIR NORMAL_PORT FROM RCPT HELO IP
ls "$CORPUS"/abuse/*.eml "$CORPUS"/legit/*.eml | xargs -P 6 -I{} bash -c 'ask_rspamd "$@"' _ {}
for f in "$CORPUS"/abuse/*.eml "$CORPUS"/legit/*.eml; do
  out="$DIR/out/smtpgate/$(basename "$(dirname "$f")")-$(basename "$f" .eml).json"
  SMTPGATE_LOG=error "$BIN" check --json --config "$DIR/smtpgate.toml" \
    --from "$FROM" --rcpt "$RCPT" --helo "$HELO" --ip "$IP" "$f" > "$out" || true
done

python3 - "$CORPUS" "$DIR" <<'PY'
import json, os, re, sys
corpus, d = sys.argv[1], sys.argv[2]
# Abuse categories, after the sections of tests/fixtures/content/make.py.
CATEGORIES = [
    ("brand links", r"brand-lookalike|brand-foreign-domain|link-text-mismatch"),
    ("phishing links", r"bare-ip-lure|http-login-form|redirector"),
    ("pharma links", r"shortener-pharma|many-domains"),
    ("sextortion", r"sextortion"),
    ("advance-fee", r"scam-freemail-reply"),
    ("display-name spoof", r"display-brand|spoofed-display-address"),
    ("hacked-site mailers", r"php-upload-script|spamtool-mailer|outdated-mailer|no-date-no-mid"),
    ("crypto/credentials", r"crypto-returns|urgent-credentials"),
    ("attachments", r"exe-|scr-|-in-zip|encrypted-zip|macro|iso-|img-|double-ext"),
    ("image/HTML-only/hidden", r"image-only|html-only-bulk|hidden-text"),
    ("GTUBE", r"gtube"),
    ("malformed headers/MIME", r"mime-too-deep|empty-subject|missing-subject|broken-mime"),
]
STOP = {"reject", "soft reject", "rewrite subject", "add header"}
def category(kind, name):
    if kind == "legit":
        return "legitimate"
    for label, rx in CATEGORIES:
        if re.search(rx, name):
            return label
    return "other abuse"
rows = []
for kind in ("abuse", "legit"):
    for f in sorted(os.listdir(os.path.join(corpus, kind))):
        if not f.endswith(".eml"):
            continue
        name = f[:-4]
        key = f"{kind}-{name}.json"
        try:
            r = json.load(open(os.path.join(d, "out/rspamd", key)))
        except (OSError, ValueError):
            r = {"action": "error", "score": 0, "symbols": {}}
        try:
            s = json.load(open(os.path.join(d, "out/smtpgate", key)))
        except (OSError, ValueError):
            s = {"action": "error", "score": 0, "symbols": []}
        rsyms = sorted((v for v in r.get("symbols", {}).values() if v.get("score", 0) != 0),
                       key=lambda v: -v["score"])
        rows.append({
            "kind": kind, "name": name, "cat": category(kind, name),
            "r_action": r.get("action", "error"), "r_score": r.get("score", 0),
            "r_stop": r.get("action") in STOP,
            "r_syms": " ".join(f"{v['name']}({v['score']:g})" for v in rsyms),
            "s_action": s.get("action", "error"), "s_score": s.get("score", 0),
            "s_stop": s.get("action") != "pass",
            "s_syms": " ".join(f"{v['name']}({v['score']:g})" for v in s.get("symbols", [])),
        })
with open(os.path.join(d, "results.tsv"), "w") as out:
    out.write("kind\tname\tcategory\trspamd_action\trspamd_score\trspamd_symbols\t"
              "smtpgate_action\tsmtpgate_score\tsmtpgate_symbols\n")
    for x in rows:
        out.write("\t".join(str(x[k]) for k in ("kind", "name", "cat", "r_action", "r_score", "r_syms",
                                                 "s_action", "s_score", "s_syms")) + "\n")
order = [c for c, _ in CATEGORIES] + ["other abuse", "legitimate"]
print(f"\n{'category':<24}{'msgs':>5}{'rspamd':>8}{'smtpgate':>10}{'both':>6}{'neither':>9}")
def line(label, xs):
    n = len(xs)
    rs = sum(x["r_stop"] for x in xs); ss = sum(x["s_stop"] for x in xs)
    both = sum(x["r_stop"] and x["s_stop"] for x in xs)
    neither = sum(not x["r_stop"] and not x["s_stop"] for x in xs)
    print(f"{label:<24}{n:>5}{rs:>8}{ss:>10}{both:>6}{neither:>9}")
for c in order:
    xs = [x for x in rows if x["cat"] == c]
    if xs:
        if c == "legitimate":
            line("total abuse", [x for x in rows if x["kind"] == "abuse"])
        line(c, xs)
print("(columns: messages stopped; legitimate rows count false positives)")
for eng, key in (("rspamd", "r_stop"), ("smtpgate", "s_stop")):
    a = [x for x in rows if x["kind"] == "abuse"]; l = [x for x in rows if x["kind"] == "legit"]
    tp = sum(x[key] for x in a); fp = sum(x[key] for x in l)
    print(f"\n{eng}: confusion matrix   stopped  passed")
    print(f"  abuse ({len(a):>3})            {tp:>7}  {len(a) - tp:>6}")
    print(f"  legitimate ({len(l):>3})       {fp:>7}  {len(l) - fp:>6}")
    print(f"  detection {100 * tp / len(a):.1f}%, false positives {100 * fp / len(l):.1f}%")
a = [x for x in rows if x["kind"] == "abuse"]; l = [x for x in rows if x["kind"] == "legit"]
grey = lambda xs: sum(x["r_stop"] or x["r_action"] == "greylist" for x in xs)
print(f"\nrspamd with greylist (score >= 4) counted as stopped: abuse {grey(a)}/{len(a)}, "
      f"legitimate {grey(l)}/{len(l)}")
acts = {}
for x in rows:
    acts.setdefault(x["r_action"], 0); acts[x["r_action"]] += 1
print("\nrspamd actions:", ", ".join(f"{k} {v}" for k, v in sorted(acts.items())))
errs = [x["name"] for x in rows if "error" in (x["r_action"], x["s_action"]) or x["s_action"].startswith("tempfail")]
if errs:
    print("no verdict (error or tempfail):", " ".join(errs))
for x in rows:
    if x["kind"] == "legit" and (x["r_stop"] or x["s_stop"]):
        print(f"legit stopped: {x['name']}: rspamd {x['r_action']} {x['r_score']:g} [{x['r_syms']}]; "
              f"smtpgate {x['s_action']} {x['s_score']:g} [{x['s_syms']}]")
print(f"\nper message: {d}/results.tsv")
PY
