#!/usr/bin/env bash
# The main job, from nothing: install, bring up the QEMU aarch64 device, run `deepchip demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/venv.sh && deepchip_activate
if [ "${DEEPCHIP_SKIP_QEMU:-0}" != 1 ]; then
    # the aarch64 step needs the QEMU device; the main job (x86) runs without it
    device=$(bash .ci/qemu_up.sh) || true
    if [ "$device" = false ] || [ -z "$device" ]; then
        echo "[demo] the QEMU aarch64 device did not come up (see above): its step is skipped" >&2
    else
        eval "$device"
    fi
fi
deepchip demo --out out/demo "$@"
