#!/usr/bin/env bash
# Audit the installed dependencies, start the local stack if it is not up, run the whole
# suite, stop what this script started.
# Ports and the stack directory follow FAIRSTREAM_STACK_* variables (see README).
set -uo pipefail
cd "$(dirname "$0")/.."
FS=.venv/bin/fairstream

# Dependency audit: pip-audit against PyPI's JSON API (the vulnerability service this
# project's machines reach; OSV is not reachable from them). Known vulnerabilities fail the
# run unless their advisory id is in tests/pip-audit-ignore.txt with a reason.
# FAIRSTREAM_AUDIT_STRICT=1 also fails when a dependency could not be audited at all.
audit_dependencies() {
    local report ignores=() id
    report="$(mktemp)"
    while read -r id _; do
        [ -n "$id" ] && ignores+=(--ignore-vuln "$id")
    done < <(grep -v '^[[:space:]]*#' tests/pip-audit-ignore.txt)
    .venv/bin/pip-audit --vulnerability-service pypi --skip-editable --progress-spinner off \
        --format json --output "$report" "${ignores[@]}"
    local rc=$?
    .venv/bin/python - "$report" "$rc" "${FAIRSTREAM_AUDIT_STRICT:-0}" <<'PY'
import json, sys

report, rc, strict = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
try:
    deps = json.load(open(report))["dependencies"]
except (OSError, ValueError, KeyError):
    print(f"dependency audit: pip-audit failed (exit code {rc}) before writing a report")
    sys.exit(1)
vulnerable = [d for d in deps if d.get("vulns")]
skipped = [d for d in deps if "skip_reason" in d]
for dep in vulnerable:
    for vuln in dep["vulns"]:
        fixed = ", ".join(vuln.get("fix_versions") or []) or "no fixed version"
        print(f"dependency audit: {dep['name']} {dep['version']}: {vuln['id']} (fixed in {fixed})")
print(
    f"dependency audit: {len(deps) - len(skipped)} of {len(deps)} installed distributions "
    f"audited, {len(vulnerable)} with known vulnerabilities"
)
if skipped:
    print(
        f"dependency audit: {'FAILED' if strict else 'WARNING'}: {len(skipped)} could not be "
        f"audited, e.g. {skipped[0]['skip_reason']}"
    )
    sys.exit(1 if strict else 0)
PY
    local summary=$?
    rm -f "$report"
    [ "$rc" -eq 0 ] && [ "$summary" -eq 0 ]
}
if [ "${FAIRSTREAM_SKIP_AUDIT:-0}" != 1 ]; then
    audit_dependencies || { echo "dependency audit failed" >&2; exit 1; }
fi

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
