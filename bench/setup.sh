#!/usr/bin/env bash
# Install what bench/inits.py, bench/scale.py and bench/ctl.py need on a fresh Debian/Ubuntu machine.
# Run as root:  sudo bash bench/setup.sh
# Idempotent: re-running it only checks that everything is in place.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${SUPERVISOR_VENV:-$here/.venv-supervisor}"

if [ "$(id -u)" -ne 0 ]; then
    echo "setup.sh: run as root (apt-get install, and the benchmarks need unshare --pid)" >&2
    exit 1
fi

need=()
command -v tini >/dev/null 2>&1 || need+=(tini)
command -v dumb-init >/dev/null 2>&1 || need+=(dumb-init)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v python3 >/dev/null 2>&1 || need+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
quietly() {  # run a command, showing its output only if it fails
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "setup.sh: failed: $*" >&2
        exit 1
    fi
}

if [ "${#need[@]}" -gt 0 ]; then
    echo "setup.sh: apt-get install ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    quietly apt-get update
    quietly apt-get install -y --no-install-recommends "${need[@]}"
fi

if [ ! -x "$venv/bin/supervisord" ]; then
    echo "setup.sh: supervisord from PyPI into $venv"
    quietly python3 -m venv "$venv"
    quietly "$venv/bin/python" -m pip install --disable-pip-version-check supervisor
fi

echo "setup.sh: ok"
echo "  tini:        $(tini --version 2>&1 | head -n1)"
echo "  dumb-init:   $(dumb-init --version 2>&1 | head -n1)"
echo "  supervisord: $("$venv/bin/supervisord" --version 2>&1 | head -n1) ($venv/bin/supervisord, supervisorctl beside it)"
echo "  cc:          $(cc --version | head -n1)"
echo "  unshare:     $(unshare --version | head -n1)"
