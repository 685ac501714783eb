#!/usr/bin/env bash
# Install and verify the third-party programs the interop tests and the
# benchmark run against (Debian 12, run as root).
#
# Idempotent: when every program is already present, apt is skipped entirely.
# If another apt/dpkg run holds the lock (for instance a provisioning step
# still running in the background), wait for it instead of failing.
#
# Exit status: 0 when every program runs, non-zero with a message naming the
# missing ones otherwise.
set -euo pipefail

PACKAGES=(python3-libtorrent aria2 transmission-daemon transmission-cli opentracker python3-pytest time iproute2 util-linux python3-pip chromium)
# Node.js for the ethers interop script. A Node.js from elsewhere (e.g. NodeSource, which
# bundles npm) is used as is: Debian's npm package would conflict with it.
NODE_PACKAGES=(nodejs npm)
# Ethereum client libraries from the package registries, pinned exactly. ethers is pinned in
# tests/interop/js/package.json and its committed package-lock.json (installed with `npm ci`).
WEB3_VERSION=7.16.0
# The Transmission RPC client that Python remotes use, driving btt node's Transmission RPC.
TRANSMISSION_RPC_VERSION=7.0.11
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JS_DIR=$REPO/tests/interop/js
# Debian's interpreter: python3-libtorrent and python3-pytest install there,
# not into any other python3 that may come first on PATH.
PY=/usr/bin/python3
LOCK_WAIT_S=${LOCK_WAIT_S:-900}

log() { printf 'setup-test-env: %s\n' "$*" >&2; }

# Each check prints nothing and returns non-zero when the program is unusable.
check_libtorrent() { "$PY" -c 'import libtorrent' >/dev/null 2>&1; }
check_aria2() { aria2c --version >/dev/null 2>&1; }
check_transmission_daemon() { transmission-daemon --version >/dev/null 2>&1; }
check_transmission_remote() { command -v transmission-remote >/dev/null 2>&1; }
check_opentracker() { command -v opentracker >/dev/null 2>&1; }
check_pytest() { "$PY" -m pytest --version >/dev/null 2>&1; }
check_time() { [ -x /usr/bin/time ]; }
# The LSD test runs two btt processes in a network namespace of their own.
check_netns() { command -v ip >/dev/null 2>&1 && command -v unshare >/dev/null 2>&1; }
check_pip() { "$PY" -m pip --version >/dev/null 2>&1; }
# The web UI test drives Debian's Chromium with playwright-core (which cannot download a browser here).
check_chromium() { [ -x /usr/bin/chromium ] && /usr/bin/chromium --version 2>/dev/null | grep -q Chromium; }
check_node() {
    command -v npm >/dev/null 2>&1 &&
        node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' >/dev/null 2>&1
}
# Registry installs (after apt): web3.py importable from Debian's python, ethers in tests/interop/js.
check_web3() { "$PY" -c "import web3, sys; sys.exit(web3.__version__ != '$WEB3_VERSION')" >/dev/null 2>&1; }
check_transmission_rpc() {
    [ "$("$PY" -m pip show transmission-rpc 2>/dev/null | sed -n 's/^Version: //p')" = "$TRANSMISSION_RPC_VERSION" ]
}
# Every dependency in package.json is installed at its pinned version.
check_ethers() {
    local pkg want
    for pkg in ethers playwright-core; do
        want=$(node -p "require(process.argv[1]).dependencies['$pkg']" "$JS_DIR/package.json" 2>/dev/null) &&
            [ -n "$want" ] &&
            [ "$(node -p 'require(process.argv[1]).version' "$JS_DIR/node_modules/$pkg/package.json" 2>/dev/null)" = "$want" ] ||
            return 1
    done
    # npm ci records what it installed; a changed lock file means a reinstall.
    [ "$JS_DIR/node_modules/.package-lock.json" -nt "$JS_DIR/package-lock.json" ]
}

CHECKS=(
    "check_libtorrent:python3-libtorrent ($PY -c 'import libtorrent')"
    "check_aria2:aria2 (aria2c --version)"
    "check_transmission_daemon:transmission-daemon (transmission-daemon --version)"
    "check_transmission_remote:transmission-cli (transmission-remote)"
    "check_opentracker:opentracker (opentracker binary)"
    "check_pytest:python3-pytest ($PY -m pytest --version)"
    "check_time:time (/usr/bin/time)"
    "check_netns:iproute2 and util-linux (ip, unshare)"
    "check_pip:python3-pip ($PY -m pip --version)"
    "check_node:Node.js 18+ with npm (node, npm)"
    "check_chromium:chromium (/usr/bin/chromium)"
)
REGISTRY_CHECKS=(
    "check_web3:web3==$WEB3_VERSION from PyPI ($PY -c 'import web3')"
    "check_ethers:ethers and playwright-core from npm (npm ci in $JS_DIR)"
    "check_transmission_rpc:transmission-rpc==$TRANSMISSION_RPC_VERSION from PyPI"
)

# Prints the description of every failing check (of CHECKS, or of the named array);
# returns non-zero if any failed.
missing() {
    local -n list=${1:-CHECKS}
    local entry fn desc rc=0
    for entry in "${list[@]}"; do
        fn=${entry%%:*}
        desc=${entry#*:}
        if ! "$fn"; then
            printf '%s\n' "$desc"
            rc=1
        fi
    done
    return $rc
}

dpkg_busy() {
    # fuser exits 0 when some process holds one of the files.
    if command -v fuser >/dev/null 2>&1; then
        fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock \
            /var/cache/apt/archives/lock >/dev/null 2>&1 && return 0
    fi
    pgrep -x apt-get >/dev/null 2>&1 || pgrep -x apt >/dev/null 2>&1 || pgrep -x dpkg >/dev/null 2>&1
}

wait_for_dpkg() {
    local deadline=$((SECONDS + LOCK_WAIT_S)) said=0
    while dpkg_busy; do
        if [ $said -eq 0 ]; then
            log "another apt/dpkg run holds the lock (see /tmp/apt.log if present); waiting up to ${LOCK_WAIT_S}s"
            said=1
        fi
        if [ $SECONDS -ge $deadline ]; then
            log "dpkg lock still held after ${LOCK_WAIT_S}s; giving up (raise LOCK_WAIT_S or stop the other apt run)"
            exit 1
        fi
        sleep 2
    done
}

if gaps=$(missing); then
    log "all programs already present; skipping apt"
else
    log "missing:"
    printf '  %s\n' "$gaps" >&2
    if [ "$(id -u)" -ne 0 ]; then
        log "must run as root to install packages (try: sudo $0)"
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    wait_for_dpkg
    # A background install may have finished what we need while we waited.
    if ! missing >/dev/null; then
        # apt-get waits for the lock itself too (DPkg::Lock::Timeout), which
        # covers a run that starts between our check and this command.
        apt-get -o DPkg::Lock::Timeout="$LOCK_WAIT_S" update
        wanted=("${PACKAGES[@]}")
        check_node || wanted+=("${NODE_PACKAGES[@]}")
        apt-get -o DPkg::Lock::Timeout="$LOCK_WAIT_S" install -y "${wanted[@]}"
    fi
fi

# Registry installs, each only when its check fails (so a second run changes nothing).
if ! check_web3 && check_pip; then
    # Debian marks its python "externally managed"; these go to /usr/local/lib/python3.*/
    # dist-packages, which Debian's python imports and apt never touches.
    log "installing web3==$WEB3_VERSION for $PY"
    "$PY" -m pip install --quiet --break-system-packages --root-user-action=ignore "web3==$WEB3_VERSION"
fi
if ! check_transmission_rpc && check_pip; then
    log "installing transmission-rpc==$TRANSMISSION_RPC_VERSION for $PY"
    "$PY" -m pip install --quiet --break-system-packages --root-user-action=ignore "transmission-rpc==$TRANSMISSION_RPC_VERSION"
fi
if ! check_ethers && check_node; then
    log "installing the JavaScript clients in $JS_DIR (npm ci)"
    (cd "$JS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
fi

status=0
gaps=$(missing) || status=1
registry_gaps=$(missing REGISTRY_CHECKS) || status=1
if [ $status -eq 0 ]; then
    log "ok: $("$PY" -c 'import libtorrent; print("libtorrent", libtorrent.__version__)'), $(aria2c --version | head -n1), $(transmission-daemon --version 2>&1 | head -n1), $("$PY" -m pytest --version 2>&1 | head -n1), opentracker at $(command -v opentracker)"
    log "ok: node $(node --version), ethers $(node -p 'require(process.argv[1]).version' "$JS_DIR/node_modules/ethers/package.json"), web3 $("$PY" -c 'import web3; print(web3.__version__)')"
else
    log "these programs are still missing or do not run after installing:"
    for gap in "$gaps" "$registry_gaps"; do
        [ -n "$gap" ] && printf '  %s\n' "$gap" >&2
    done
    exit 1
fi
