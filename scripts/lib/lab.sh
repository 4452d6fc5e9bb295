# shellcheck shell=bash
# The project's test environment ("the lab"): Python >= 3.14.2 with requirements_test.txt, plus the
# real programs the tests drive (ffmpeg, llama.cpp's llama-server, PostgreSQL).
#
# Two ways to get it, picked automatically (override with AI_SECURITY_LAB=native|rootfs):
#   native  a python3.14 (>= 3.14.2) on PATH: a virtual environment, programs looked up on PATH.
#   rootfs  as root on a Debian host without it: a Debian root filesystem built with debootstrap,
#           entered with chroot inside a private mount namespace (so its /proc, /dev and repository
#           mounts vanish with the process, even on Ctrl-C or kill -9).
# Everything built lives in a cache folder outside the repository, named by a hash of what it
# installs: a fresh clone on the same machine (CI's) reuses it, a changed package list rebuilds it.
# Sourced by scripts/setup, scripts/test, scripts/lint, scripts/develop and scripts/lab.

set -euo pipefail

LAB_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)

# What the rootfs installs. Changing any of these lines rebuilds the rootfs (a new hash).
LAB_FORMAT=1
LAB_SUITE=testing
LAB_INCLUDE=python3.14,python3.14-venv,ca-certificates
# gcc, g++ and python3.14-dev: Home Assistant builds its voice pipeline's requirements (pymicro-vad,
# pyspeex-noise) from source on the first scripts/develop start; libturbojpeg0 for camera snapshots.
# python3-torch and python3-transformers (the venv sees them: it is made with
# --system-site-packages) run the reference detection server's rtdetr backend on the CPU, and
# libopenblas0 makes torch's CPU kernels about 14 times faster than the reference BLAS.
# chromium (with fonts-dejavu-core for its text) is the browser that the dashboard card's tests
# drive through Playwright.
LAB_APT_PACKAGES="ffmpeg llama.cpp-tools python3-gguf postgresql tzdata gcc g++ python3.14-dev libturbojpeg0 python3-torch python3-transformers libopenblas0 chromium fonts-dejavu-core"
LAB_PYTHON_MIN=3.14.2

if [[ -n ${AI_SECURITY_CACHE:-} ]]; then
    LAB_CACHE=$AI_SECURITY_CACHE
elif [[ $(id -u) == 0 ]]; then
    LAB_CACHE=/var/cache/ai_security
else
    LAB_CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/ai_security
fi

lab_log() { printf 'lab: %s\n' "$*" >&2; }
lab_die() { printf 'lab: error: %s\n' "$*" >&2; exit 1; }

lab_sha() { sha256sum | cut -c1-16; }

# The key of the rootfs: everything debootstrap and apt install.
lab_rootfs_key() {
    printf '%s\n' "$LAB_FORMAT" "$LAB_SUITE" "$LAB_INCLUDE" "$LAB_APT_PACKAGES" | lab_sha
}

# The key of the virtual environment: the requirements (requirements_test.txt includes the
# detection server's) and the interpreter that runs them.
lab_venv_key() {
    local python_version=$1
    {
        printf '%s\n' "$LAB_FORMAT" "$python_version"
        cat "$LAB_REPO/requirements_test.txt" "$LAB_REPO/scripts/detection_server/requirements.txt"
    } | lab_sha
}

# native python3.14 that is new enough, or nothing.
lab_native_python() {
    local candidate
    for candidate in python3.14 python3; do
        if "$candidate" -c "import sys; sys.exit(sys.version_info[:3] < (${LAB_PYTHON_MIN//./, }) or sys.version_info[:2] != (3, 14))" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        fi
    done
    return 1
}

# Decide the mode once: native when a suitable Python exists, rootfs otherwise.
lab_mode() {
    if [[ -n ${AI_SECURITY_LAB:-} ]]; then
        case $AI_SECURITY_LAB in
            native | rootfs) printf '%s\n' "$AI_SECURITY_LAB"; return 0 ;;
            *) lab_die "AI_SECURITY_LAB must be 'native' or 'rootfs', not '$AI_SECURITY_LAB'" ;;
        esac
    fi
    if lab_native_python >/dev/null; then
        echo native
    else
        echo rootfs
    fi
}

LAB_MODE=$(lab_mode)
LAB_ROOTFS=$LAB_CACHE/rootfs-$(lab_rootfs_key)

# The virtual environment's path as seen by the process that runs inside the lab.
lab_venv_path() {
    if [[ $LAB_MODE == native ]]; then
        local py
        py=$(lab_native_python) || lab_die "no python3.14 >= $LAB_PYTHON_MIN on PATH"
        printf '%s\n' "$LAB_CACHE/venv-$(lab_venv_key "$("$py" -VV)")"
    else
        [[ -x $LAB_ROOTFS/usr/bin/python3.14 ]] || lab_die "the lab is not built yet: run scripts/setup"
        printf '%s\n' "/opt/venv-$(lab_venv_key "$(chroot "$LAB_ROOTFS" /usr/bin/python3.14 -VV)")"
    fi
}

# Environment variables that cross into the rootfs; everything else (host PIP_* settings that name
# host-only folders, for one) stays outside.
LAB_PASS_ENV=(CI TERM COLUMNS LINES NO_COLOR FORCE_COLOR PYTEST_ADDOPTS TZ)

lab_env_args() {
    local name
    printf '%s\n' "PATH=$1/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    printf '%s\n' "VIRTUAL_ENV=$1" "HOME=/root" "LANG=C.UTF-8" "LC_ALL=C.UTF-8" "PYTHONDONTWRITEBYTECODE=1"
    # The host's trust store (copied in at build time) for every TLS client, uv included, which
    # Home Assistant uses to install an integration's requirements on first start.
    printf '%s\n' "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
    for name in "${LAB_PASS_ENV[@]}"; do
        [[ -n ${!name+x} ]] && printf '%s\n' "$name=${!name}"
    done
    for name in $(compgen -v | grep -E '^AI_SECURITY_' || true); do
        printf '%s\n' "$name=${!name}"
    done
}

# Run "$@" inside the rootfs, in the repository's own path, with the repository bind-mounted.
# Uses a private mount namespace when the kernel allows it; otherwise mounts and unmounts by hand.
lab_chroot() {
    local venv=$1 workdir=$2
    shift 2
    local -a env_args
    mapfile -t env_args < <(lab_env_args "$venv")
    mkdir -p "$LAB_ROOTFS$LAB_REPO"
    if unshare --mount --propagation private true 2>/dev/null; then
        unshare --mount --propagation private -- /bin/bash -c '
            set -e
            root=$1 repo=$2
            mount -t proc proc "$root/proc"
            mount --rbind /dev "$root/dev"
            mount --rbind /sys "$root/sys"
            mount --bind "$repo" "$root$repo"
            shift 2
            exec chroot "$root" "$@"
        ' lab "$LAB_ROOTFS" "$LAB_REPO" \
            /usr/bin/env -i "${env_args[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@"
    else
        lab_log "no private mount namespace here: mounting by hand"
        lab_mount_by_hand
        local rc=0
        chroot "$LAB_ROOTFS" /usr/bin/env -i "${env_args[@]}" /bin/sh -c 'cd "$0" && exec "$@"' "$workdir" "$@" || rc=$?
        lab_unmount_by_hand
        return "$rc"
    fi
}

lab_mount_by_hand() {
    mountpoint -q "$LAB_ROOTFS/proc" || mount -t proc proc "$LAB_ROOTFS/proc"
    mountpoint -q "$LAB_ROOTFS/dev" || { mount --rbind /dev "$LAB_ROOTFS/dev"; mount --make-rslave "$LAB_ROOTFS/dev"; }
    mountpoint -q "$LAB_ROOTFS/sys" || { mount --rbind /sys "$LAB_ROOTFS/sys"; mount --make-rslave "$LAB_ROOTFS/sys"; }
    mountpoint -q "$LAB_ROOTFS$LAB_REPO" || mount --bind "$LAB_REPO" "$LAB_ROOTFS$LAB_REPO"
    trap lab_unmount_by_hand EXIT INT TERM
}

lab_unmount_by_hand() {
    local target
    # Deepest first, so nested mounts come off before their parents.
    for target in $(findmnt -rn -o TARGET | grep -F "$LAB_CACHE/" | sort -r); do
        umount -l "$target" 2>/dev/null || true
    done
}

# Remove a folder of the cache without ever following a mount into the host (a bind-mounted /dev
# left behind by a killed run must not be emptied).
lab_remove() {
    local path=$1
    [[ -e $path ]] || return 0
    if findmnt -rn -o TARGET | grep -qF "$path/"; then
        lab_unmount_by_hand
    fi
    if findmnt -rn -o TARGET | grep -qF "$path/"; then
        lab_die "refusing to remove $path: something is still mounted inside it"
    fi
    rm -rf --one-file-system -- "$path"
}

# Run "$@" inside the lab from the repository root (or from $LAB_WORKDIR).
lab_exec() {
    local venv
    venv=$(lab_venv_path)
    local workdir=${LAB_WORKDIR:-$LAB_REPO}
    if [[ $LAB_MODE == native ]]; then
        (cd "$workdir" && VIRTUAL_ENV=$venv PATH=$venv/bin:$PATH exec "$@")
    else
        lab_chroot "$venv" "$workdir" "$@"
    fi
}
