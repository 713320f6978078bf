#!/usr/bin/env bash
# Install the system packages the local stack (`fairstream stack up`) runs on: Debian's
# PostgreSQL and Redis servers. Idempotent: installs with apt only what is missing, and
# checks the toolchains the stack builds with (Java 17+ and Maven for the Kafka jars, Go 1.22+
# for FerretDB). Run as root (CI runs as root) or with sudo available.
#
# Usage: deploy/native/install-system-deps.sh [--check]   (--check: report only, never install)
set -euo pipefail

CHECK_ONLY=0
[[ "${1:-}" == "--check" ]] && CHECK_ONLY=1

log() { printf 'install-system-deps: %s\n' "$*"; }
die() { printf 'install-system-deps: ERROR: %s\n' "$*" >&2; exit 1; }

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
fi

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# Debian package -> the file that proves it is usable.
declare -A WANT=(
  [postgresql]="/usr/lib/postgresql"
  [redis-server]="/usr/bin/redis-server"
  [util-linux]="/usr/bin/setpriv"
  # For the tests: a real Prometheus scrapes the API, and headless Chromium checks /lag.
  [prometheus]="/usr/bin/prometheus"
  [chromium]="/usr/bin/chromium"
  # For `make bench`: the API benchmark's HTTP load generator.
  [wrk]="/usr/bin/wrk"
)
# Toolchains: installed from apt only when absent (a machine image usually ships newer ones).
command -v java >/dev/null 2>&1 || WANT[openjdk-17-jdk-headless]="/usr/bin/java"
command -v mvn >/dev/null 2>&1 || WANT[maven]="/usr/bin/mvn"

missing=()
for pkg in "${!WANT[@]}"; do
  if ! installed "$pkg" && [[ ! -e "${WANT[$pkg]}" ]]; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]})); then
  if ((CHECK_ONLY)); then
    die "missing packages: ${missing[*]}"
  fi
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install ${missing[*]} by hand"
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packages from creating and starting their own system services and clusters:
  # the stack runs private instances on its own ports.
  $SUDO mkdir -p /etc/postgresql-common
  if [[ ! -e /etc/postgresql-common/createcluster.conf ]]; then
    echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  policy_added=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    policy_added=1
  fi
  trap 'if ((policy_added)); then $SUDO rm -f /usr/sbin/policy-rc.d; fi' EXIT
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confold "${missing[@]}"
else
  log "system packages present: ${!WANT[*]}"
fi

# Verify what the stack needs, whatever installed it.
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null 2>&1 \
  || die "PostgreSQL server binaries not found"
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || die "user 'postgres' missing (PostgreSQL refuses to run as root)"
fi
command -v redis-server >/dev/null 2>&1 || die "redis-server not found"
command -v setpriv >/dev/null 2>&1 || die "setpriv (util-linux) not found"

java_major=$(java -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')
[[ -n "$java_major" && "$java_major" -ge 17 ]] || die "Java 17+ required (found: ${java_major:-none})"
command -v mvn >/dev/null 2>&1 || die "Maven (mvn) not found"

command -v go >/dev/null 2>&1 || die "Go 1.22+ not found (needed to build FerretDB; Debian's golang is too old)"
go_version=$(go env GOVERSION | sed 's/^go//')
go_major=${go_version%%.*}; go_rest=${go_version#*.}; go_minor=${go_rest%%.*}
if ((go_major < 1 || (go_major == 1 && go_minor < 22))); then
  die "Go 1.22+ required to build FerretDB (found go$go_version)"
fi

log "ok: $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | tail -1), $(redis-server --version | awk '{print $3}'), java $java_major, $(mvn -v 2>/dev/null | head -1 | sed 's/\x1b\[[0-9;]*m//g'), go$go_version"
