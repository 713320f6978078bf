#!/usr/bin/env bash
# Build the Docker Compose v2 CLI plugin from source (Go module proxy) and install it as
# ${DOCKER_CONFIG:-~/.docker}/cli-plugins/docker-compose, so that
# `docker compose -f docker-compose.kafka.yml config` works on a machine that has only the
# docker client (no engine, no compose plugin) and no access to GitHub release binaries.
#
# Idempotent: does nothing when the installed plugin already reports the pinned version.
# Build directories live under a cache dir (never in the repository).
#
# Environment:
#   COMPOSE_VERSION          pinned compose version (default below; newest v2 release that builds
#                            with the machine's Go toolchain)
#   DOCKER_CONFIG            docker client config dir (default ~/.docker)
#   FAIRSTREAM_CACHE_DIR     cache root (default ${XDG_CACHE_HOME:-~/.cache}/fairstream)
#   COMPOSE_BUILD_JOBS       go build -p value (default 1: the machine's 2 cores are shared)
#   FORCE=1                  rebuild and reinstall even when the pinned version is present
set -euo pipefail

COMPOSE_MODULE="github.com/docker/compose/v2"
COMPOSE_VERSION="${COMPOSE_VERSION:-v2.40.3}"
case "$COMPOSE_VERSION" in v*) ;; *) COMPOSE_VERSION="v$COMPOSE_VERSION" ;; esac

PLUGIN_DIR="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
TARGET="$PLUGIN_DIR/docker-compose"
CACHE_ROOT="${FAIRSTREAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fairstream}"
BUILD_DIR="$CACHE_ROOT/compose-plugin/$COMPOSE_VERSION"
JOBS="${COMPOSE_BUILD_JOBS:-1}"

log() { printf 'install-compose-plugin: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

installed_version() {
    [ -x "$TARGET" ] || return 1
    "$TARGET" version --short 2>/dev/null | tr -d '[:space:]'
}

if [ "${FORCE:-0}" != "1" ]; then
    have="$(installed_version || true)"
    if [ "v${have#v}" = "$COMPOSE_VERSION" ]; then
        log "docker-compose $COMPOSE_VERSION already installed at $TARGET"
        exit 0
    fi
    [ -n "$have" ] && log "found docker-compose $have at $TARGET; replacing it with $COMPOSE_VERSION"
fi

command -v go >/dev/null 2>&1 || die "Go toolchain not found (need go >= the 'go' line of $COMPOSE_MODULE@$COMPOSE_VERSION's go.mod)"

# Never let the go command fetch another toolchain (only the module proxy is reachable).
export GOTOOLCHAIN=local
export GOFLAGS="-mod=mod -buildvcs=false -p=$JOBS"
export CGO_ENABLED=0
# Outside the module proxy there is nothing to reach: GOPROXY=direct would need GitHub.
export GOPROXY="${GOPROXY:-https://proxy.golang.org}"

mkdir -p "$BUILD_DIR"
cd "$BUILD_DIR"

# 1. Fetch the upstream go.mod of the pinned release (exact version: no @v/list lookup).
log "fetching $COMPOSE_MODULE@$COMPOSE_VERSION metadata"
upstream_mod="$(cd "$CACHE_ROOT/compose-plugin" && GOFLAGS= GOWORK=off go mod download -json "$COMPOSE_MODULE@$COMPOSE_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod":[[:space:]]*"\(.*\)",\{0,1\}$/\1/p')"
[ -n "$upstream_mod" ] && [ -f "$upstream_mod" ] || die "could not download $COMPOSE_MODULE@$COMPOSE_VERSION from $GOPROXY"

# 2. A throwaway module that requires the release and copies its require/exclude blocks, so the
#    build selects exactly the dependency versions upstream releases with (exclude and replace
#    directives of a dependency are otherwise ignored). Upstream has no replace directives;
#    fail loudly if a future pin adds some, since they would need copying too.
if grep -q '^replace' "$upstream_mod"; then
    die "$COMPOSE_MODULE@$COMPOSE_VERSION go.mod has replace directives; this script does not copy them"
fi
go_line="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$upstream_mod" | head -n1)"
{
    echo "module fairstream.local/compose-plugin-build"
    echo
    echo "go ${go_line:-1.24}"
    echo
    echo "require $COMPOSE_MODULE $COMPOSE_VERSION"
    echo
    sed -e '/^module /d' -e '/^go /d' -e '/^toolchain /d' "$upstream_mod"
} > go.mod.new
if ! cmp -s go.mod.new go.mod 2>/dev/null; then
    mv go.mod.new go.mod
    rm -f go.sum
else
    rm -f go.mod.new
fi
cat > tools.go <<EOF
//go:build tools

// Package tools pins the compose CLI plugin's main package in this throwaway module.
package tools

import _ "$COMPOSE_MODULE/cmd"
EOF

# 3. Build. The version string is what `docker compose version` prints (same -X as upstream's
#    Makefile). nice: the machine's cores are shared with other work.
log "building $COMPOSE_MODULE/cmd@$COMPOSE_VERSION with $(go version | cut -d' ' -f3) (-p=$JOBS); this takes a while"
start=$(date +%s)
nice -n 15 go build -trimpath \
    -ldflags "-s -w -X $COMPOSE_MODULE/internal.Version=$COMPOSE_VERSION" \
    -o "$BUILD_DIR/docker-compose" "$COMPOSE_MODULE/cmd"
log "build finished in $(( $(date +%s) - start ))s"

# 4. Install atomically.
mkdir -p "$PLUGIN_DIR"
install -m 0755 "$BUILD_DIR/docker-compose" "$TARGET.tmp.$$"
mv -f "$TARGET.tmp.$$" "$TARGET"
log "installed $("$TARGET" version) at $TARGET"
if command -v docker >/dev/null 2>&1; then
    docker compose version >/dev/null 2>&1 \
        && log "docker compose: $(docker compose version)" \
        || log "warning: 'docker compose version' fails; is DOCKER_CONFIG pointing elsewhere?"
fi
