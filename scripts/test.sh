#!/usr/bin/env bash
# The test suite, from nothing: install, bring up the QEMU aarch64 RPC device, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. scripts/venv.sh && deepchip_activate
# one device cache for the CLI and the tests, whichever copy of the package either imports
export DEEPCHIP_CACHE="${DEEPCHIP_CACHE:-$(pwd -P)/.cache}"
if [ "${DEEPCHIP_SKIP_QEMU:-0}" != 1 ]; then
    # provisions once (cached under .cache/), then starts the RPC server(s); prints the exports
    eval "$(bash .ci/qemu_up.sh)"
fi
set +e
python3 -m pytest -q tests "$@"
status=$?
set -e
[ "${DEEPCHIP_SKIP_QEMU:-0}" = 1 ] || deepchip qemu down >/dev/null 2>&1 || true
exit $status
