#!/usr/bin/env bash
# The main job, from nothing: install, bring up the QEMU aarch64 device, run `deepchip demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/venv.sh && deepchip_activate
if [ "${DEEPCHIP_SKIP_QEMU:-0}" != 1 ]; then
    eval "$(bash .ci/qemu_up.sh)"
fi
deepchip demo --out out/demo "$@"
