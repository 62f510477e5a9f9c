# Sourced by the scripts that need the package: puts tvm-deepchip's virtual environment first on
# PATH (python3, pip, deepchip). Which environment (one rule, also used by setup.sh):
#   an active venv ($VIRTUAL_ENV) as is; else $DEEPCHIP_VENV; else .venv/ in the checkout.
# Debian and Ubuntu's own python3 is externally managed (PEP 668): pip cannot install into it,
# so the package always lives in a venv of its own.
deepchip_venv_dir() {
    if [ -n "${VIRTUAL_ENV:-}" ]; then
        echo "$VIRTUAL_ENV"
    elif [ -n "${DEEPCHIP_VENV:-}" ]; then
        echo "$DEEPCHIP_VENV"
    else
        echo "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)/.venv"
    fi
}
deepchip_activate() {
    local dir
    dir=$(deepchip_venv_dir)
    if [ ! -x "$dir/bin/python3" ]; then
        echo "tvm-deepchip: no virtual environment at $dir (run: bash scripts/setup.sh)" >&2
        return 2
    fi
    export VIRTUAL_ENV="$dir"
    case ":$PATH:" in *":$dir/bin:"*) ;; *) export PATH="$dir/bin:$PATH" ;; esac
    hash -r
}
