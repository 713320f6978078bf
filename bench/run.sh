#!/usr/bin/env bash
# Run every benchmark in bench/ in sequence against the local stack (started here if it is
# not up, and stopped again at the end). Figures are printed and written to bench/results/.
# Sizes are modest so the whole run takes a few minutes; run a script alone for more.
set -uo pipefail
cd "$(dirname "$0")/.."
FS=.venv/bin/fairstream
PY=.venv/bin/python
# The API benchmark's load generator comes from Debian.
if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get install -y -qq wrk || { apt-get update -qq && apt-get install -y -qq wrk; }) >/dev/null
fi
started=0
if ! $FS stack status >/dev/null 2>&1; then
    $FS stack up || exit 1
    started=1
fi
# Point every benchmark and the servers it starts at the stack that is up, whatever its ports.
eval "$($FS stack env)"
rc=0
run() {
    echo "== $*"
    "$@" || { echo "FAILED: $*"; rc=1; }
}
run $PY bench/bias_throughput.py --models fast --events 1000
run $PY bench/projection_throughput.py --pg-events 20000 --mongo-events 5000
run $PY bench/replay_throughput.py --events 20000
if command -v wrk >/dev/null 2>&1; then
    run $PY bench/api_throughput.py --rows 10000 --seconds 10
else
    echo "== skipping bench/api_throughput.py: wrk is missing (apt-get install -y wrk)"
    rc=1
fi
if [ "$started" = 1 ]; then
    $FS stack down || true
fi
exit $rc
