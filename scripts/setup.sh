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

PY=${PYTHON:-python3}
if ! $PY -c "import tvm_deepchip, tvm, onnxruntime, pytest, torch" 2>/dev/null \
   || [ "${DEEPCHIP_REINSTALL:-0}" = 1 ]; then
    echo "[setup] pip install -e .[test,train]" >&2
    $PY -m pip install -q -e ".[test,train]"
fi
echo "[setup] ok: $($PY -c 'import tvm; print("apache-tvm", tvm.__version__)')" >&2
