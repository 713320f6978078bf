#!/usr/bin/env bash
# Start the local stack if it is not up, run the whole suite, stop what this script started.
# Ports and the stack directory follow FAIRSTREAM_STACK_* variables (see README).
set -uo pipefail
cd "$(dirname "$0")/.."
FS=.venv/bin/fairstream
started=0
if ! $FS stack status >/dev/null 2>&1; then
    $FS stack up || exit 1
    started=1
fi
# Point every test and subprocess at the stack that is up, whatever its ports.
eval "$($FS stack env)"
.venv/bin/pytest "$@"
rc=$?
if [ "$started" = 1 ]; then
    $FS stack down || true
fi
exit $rc
