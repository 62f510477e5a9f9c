#!/usr/bin/env bash
# Install everything tvm-deepchip needs on a fresh Debian machine (idempotent; re-run is cheap).
#   system: the aarch64 cross compiler, QEMU user-mode emulation, debootstrap (ARM device)
#   python: this package with its pinned TVM and the test/train extras
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PKGS=(qemu-user-static debootstrap gcc-aarch64-linux-gnu g++-aarch64-linux-gnu binfmt-support)
missing=()
for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "[setup] apt-get install ${missing[*]}" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# shellcheck source=venv.sh
. scripts/venv.sh
VENV=$(deepchip_venv_dir)
if [ ! -x "$VENV/bin/python3" ]; then
    BASE_PY=${PYTHON:-python3}
    command -v "$BASE_PY" >/dev/null || { echo "[setup] no $BASE_PY on PATH: install Python 3.10 or newer" >&2; exit 2; }
    # Debian/Ubuntu split venv (and ensurepip) into python3-venv / python3.X-venv
    if ! "$BASE_PY" -c "import venv, ensurepip" 2>/dev/null; then
        ver=$("$BASE_PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
        echo "[setup] $BASE_PY has no venv/ensurepip: apt-get install python3-venv python$ver-venv" >&2
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv "python$ver-venv" >/dev/null \
            || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
    fi
    echo "[setup] creating the virtual environment $VENV with $(command -v "$BASE_PY")" >&2
    "$BASE_PY" -m venv "$VENV"
    "$VENV/bin/python3" -m pip install -q --upgrade pip
fi
deepchip_activate
PY=python3
# The import check runs outside the checkout: from here, the cwd would shadow whatever is installed.
# An install of another checkout (a different .cache, other code) counts as missing.
here=$(pwd -P)
installed=$(cd / && $PY -c "import tvm_deepchip, tvm, onnxruntime, openvino, pytest, torch, os
print(os.path.dirname(os.path.dirname(os.path.realpath(tvm_deepchip.__file__))))" 2>/dev/null || true)
if [ "$installed" != "$here" ] || [ "${DEEPCHIP_REINSTALL:-0}" = 1 ]; then
    [ -z "$installed" ] || [ "$installed" = "$here" ] || echo "[setup] tvm_deepchip is installed from $installed, not this checkout" >&2
    echo "[setup] pip install -e .[test,train,bench]" >&2
    $PY -m pip install -q -e ".[test,train,bench]"
fi
echo "[setup] ok: $($PY -c 'import tvm; print("apache-tvm", tvm.__version__)')" >&2
