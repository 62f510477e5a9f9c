#!/usr/bin/env bash
# The QEMU aarch64 RPC device for the tests: provision once (cached under .cache/qemu), then start
# one RPC server on 127.0.0.1:9090 and a tracker on 127.0.0.1:9190 with 2 servers under key aarch64
# (the next free ports, in steps of 200, where another checkout's device holds those; the exports
# say which).
# Use: eval "$(bash .ci/qemu_up.sh)"
# stdout carries ONLY shell lines for eval: export lines on success; on failure the single word
# `false`, so a `set -e` shell that evals it stops (the reason is on stderr). Progress -> stderr.
set -uo pipefail
cd "$(dirname "$0")/.."
# the package's virtual environment, and this checkout's device cache whichever copy of the
# package `deepchip` imports (run by hand, it would otherwise record under that copy's .cache)
. scripts/venv.sh && deepchip_activate || { echo false; exit 1; }
export DEEPCHIP_CACHE="${DEEPCHIP_CACHE:-$(pwd -P)/.cache}"
RPC_PORT=${DEEPCHIP_QEMU_PORT:-9090}
TRACKER_PORT=${DEEPCHIP_QEMU_TRACKER_PORT:-9190}
KEY=${DEEPCHIP_QEMU_KEY:-aarch64}
# emulated `import tvm` takes ~6 s on an idle machine, minutes on a loaded one: still a time limit
WAIT=${DEEPCHIP_QEMU_WAIT:-300}

fail() { echo "qemu_up: $*" >&2; echo false; exit 1; }
PORTS=$(mktemp); trap 'rm -f "$PORTS"' EXIT  # the ports the subshell chose

# ports free on this machine: another checkout's device may hold the default ones
free_ports() {  # prints "RPC_PORT TRACKER_PORT": the first base from 9090 (step 200) whose 3 server
    python3 - <<'PY'  # ports and tracker port (base + 100) nobody listens on
import socket
def free(p):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", p))
            return True
        except OSError:
            return False
for base in range(9090, 20000, 200):
    if all(free(p) for p in (base, base + 1, base + 2, base + 100)):
        print(base, base + 100)
        break
PY
}

(
    for pkg in qemu-user-static debootstrap binfmt-support g++-aarch64-linux-gnu; do
        dpkg -s "$pkg" >/dev/null 2>&1 || { echo "qemu_up: Debian package $pkg is not installed (apt-get install $pkg)"; exit 3; }
    done
    st=$(deepchip qemu status 2>&1); echo "$st"
    if echo "$st" | grep -Eq "^server +127.0.0.1:$RPC_PORT .* answers" \
        && echo "$st" | grep -Eq "^tracker +127.0.0.1:$TRACKER_PORT .* answers" \
        && ! echo "$st" | grep -Eq "dead|not answering"; then
        echo "qemu_up: device already up, reusing it"
        echo "$RPC_PORT $TRACKER_PORT" > "$PORTS"
    else
        deepchip qemu down || true
        if [ -z "${DEEPCHIP_QEMU_PORT:-}${DEEPCHIP_QEMU_TRACKER_PORT:-}" ]; then
            read -r RPC_PORT TRACKER_PORT < <(free_ports)
            [ -n "$RPC_PORT" ] || { echo "qemu_up: no free ports from 9090 on"; exit 7; }
        fi
        echo "$RPC_PORT $TRACKER_PORT" > "$PORTS"
        deepchip qemu provision || exit 4
        deepchip qemu up --port "$RPC_PORT" --servers 1 --wait "$WAIT" || exit 5
        deepchip qemu up --port $((RPC_PORT + 1)) --servers 2 --tracker-port "$TRACKER_PORT" --key "$KEY" --wait "$WAIT" || exit 6
    fi
) >&2
rc=$?
[ $rc -eq 0 ] || fail "bringing up the QEMU aarch64 device failed (exit $rc); see the messages above"
read -r RPC_PORT TRACKER_PORT < "$PORTS"

echo "export DEEPCHIP_CACHE=$DEEPCHIP_CACHE"
echo "export DEEPCHIP_RPC=127.0.0.1:$RPC_PORT"
echo "export DEEPCHIP_TRACKER=127.0.0.1:$TRACKER_PORT"
echo "export DEEPCHIP_RPC_KEY=$KEY"
