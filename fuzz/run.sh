#!/bin/sh
# Builds every fuzz target and runs each for N seconds (default 20) over
# its seed corpus; exits non-zero if any target crashes or fails to build.
# Usage: fuzz/run.sh [SECONDS] [TARGET...]
set -eu
cd "$(dirname "$0")"
secs=${1:-20}
[ $# -gt 0 ] && shift
export RUSTC_BOOTSTRAP=1
targets=${*:-$(cargo fuzz list)}
cargo fuzz build --sanitizer none
failed=""
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    # A scratch corpus copy, so a CI run never grows the committed seeds.
    work=$(mktemp -d)
    cp -r "corpus/$t/." "$work/"
    echo "== $t: ${secs}s"
    if cargo fuzz run --sanitizer none "$t" "$work" -- \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 \
        -timeout=10 -artifact_prefix="artifacts/$t/" 2>"artifacts/$t.log"; then
        grep -E 'stat::number_of_executed_units|^Done' "artifacts/$t.log" || true
    else
        tail -n 40 "artifacts/$t.log"
        failed="$failed $t"
    fi
    rm -rf "$work"
done
if [ -n "$failed" ]; then
    echo "fuzz targets failed:$failed (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "all fuzz targets ran ${secs}s without a crash"
