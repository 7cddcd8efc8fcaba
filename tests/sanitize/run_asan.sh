#!/usr/bin/env bash
# Builds the framework-free core (tfsvd_core) and its pybind11 module (_core) with
# AddressSanitizer + UndefinedBehaviorSanitizer (CMake option TFSVD_SANITIZE=ON, Debug) in a
# build directory of its own, then runs tests/core against that module.
#
#   tests/sanitize/run_asan.sh [extra pytest arguments]
#
# Environment:
#   TFSVD_ASAN_BUILD_DIR  build directory (default: <repo>/build-asan; a .gitignore holding "*"
#                         is written into it so git never sees it)
#   PYTHON                interpreter (default: python3 on PATH); it must import TensorFlow at
#                         configure time (CMake reads TF's flags even though _core never uses TF)
#   JOBS                  parallel build jobs (default: nproc)
#
# How the sanitized module is used: python itself is not instrumented, so libasan and libubsan
# are LD_PRELOADed (ASan must come first in the library list); detect_leaks=0 because the
# interpreter leaks by design at exit. tests/core load _core through tests/core_module.py, which
# honours TFSVD_CORE_PATH; the pytest plugin tests/sanitize/asan_plugin.py also makes
# `from tfsvd import _core` resolve to that module without importing the real tfsvd package
# (which would import TensorFlow, which is not built with ASan). Any ASan report or UBSan error
# aborts the process (halt_on_error, -fno-sanitize-recover), so the run fails loudly.
#
# Exit status 0 and a last line "ASAN RUN: PASS" when everything passed; otherwise non-zero and
# "ASAN RUN: FAIL (...)".
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${TFSVD_ASAN_BUILD_DIR:-$ROOT/build-asan}"
PY="${PYTHON:-$(command -v python3 || command -v python)}"
# Resolve version-manager shims (pyenv) to the real interpreter.
PY="$("$PY" -c 'import sys; print(sys.executable)')" || { echo "ASAN RUN: FAIL (no python)"; exit 1; }
JOBS="${JOBS:-$(nproc)}"

fail() {
  echo "ASAN RUN: FAIL ($*)"
  exit 1
}

echo "== tfsvd ASan/UBSan run: source $ROOT, build $BUILD, python $PY"
mkdir -p "$BUILD" || fail "cannot create $BUILD"
[ -f "$BUILD/.gitignore" ] || echo "*" > "$BUILD/.gitignore"

generator=()
if command -v ninja > /dev/null 2>&1; then generator=(-G Ninja); fi
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  cmake -S "$ROOT" -B "$BUILD" "${generator[@]}" \
    -DTFSVD_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DTFSVD_CUDA=OFF \
    -DPython_EXECUTABLE="$PY" > "$BUILD/configure.log" 2>&1 \
    || { tail -n 30 "$BUILD/configure.log"; fail "cmake configure, see $BUILD/configure.log"; }
fi
grep -q '^TFSVD_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" || fail "$BUILD was configured without TFSVD_SANITIZE=ON"
echo "== building _core (and tfsvd_core) with -fsanitize=address,undefined"
cmake --build "$BUILD" --target _core -j "$JOBS" > "$BUILD/build.log" 2>&1 \
  || { tail -n 40 "$BUILD/build.log"; fail "build, see $BUILD/build.log"; }

CORE="$(ls "$BUILD"/_core*.so 2> /dev/null | head -n 1)"
[ -n "$CORE" ] || fail "no _core*.so in $BUILD"
# The module must really be instrumented: it references the ASan and UBSan runtimes.
symbols="$(nm -D --undefined-only "$CORE")" || fail "nm $CORE"
grep -q '__asan_report' <<< "$symbols" || fail "$CORE has no ASan instrumentation"
grep -q '__ubsan_handle' <<< "$symbols" || fail "$CORE has no UBSan instrumentation"
echo "== module: $CORE (ASan and UBSan instrumented)"

CXX_BIN="${CXX:-g++}"
LIBASAN="$("$CXX_BIN" -print-file-name=libasan.so)"
LIBUBSAN="$("$CXX_BIN" -print-file-name=libubsan.so)"
[ -f "$LIBASAN" ] || fail "libasan.so not found ($LIBASAN)"
[ -f "$LIBUBSAN" ] || fail "libubsan.so not found ($LIBUBSAN)"

export_sanitizer_env() {
  export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:print_summary=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  export LD_PRELOAD="$LIBASAN $LIBUBSAN${LD_PRELOAD:+ $LD_PRELOAD}"
}

# Self-check: in exactly this setup (python + LD_PRELOAD + these options), a heap overflow in an
# instrumented extension must abort the process with an ASan report; otherwise a clean run below
# would prove nothing.
CANARY_DIR="$BUILD/canary"
mkdir -p "$CANARY_DIR"
cat > "$CANARY_DIR/canary.cc" << 'CANARY'
#include <cstdlib>
extern "C" int tfsvd_asan_canary(int i) {
  int* p = static_cast<int*>(std::malloc(4 * sizeof(int)));
  p[i] = 1;  // i = 4: one past the end
  int r = p[0];
  std::free(p);
  return r;
}
CANARY
"${CXX:-g++}" -shared -fPIC -g -fsanitize=address,undefined -fno-omit-frame-pointer \
  -o "$CANARY_DIR/libcanary.so" "$CANARY_DIR/canary.cc" || fail "cannot build the canary"
canary_out="$(
  export_sanitizer_env
  "$PY" -c "import ctypes; ctypes.CDLL('$CANARY_DIR/libcanary.so').tfsvd_asan_canary(4)" 2>&1
)" && fail "the ASan canary (heap overflow) was not caught: sanitizers are not active"
grep -q 'heap-buffer-overflow' <<< "$canary_out" || fail "the canary died without an ASan report: $canary_out"
echo "== self-check: ASan catches a heap overflow in an extension loaded by python"

LOG="$BUILD/pytest.log"
echo "== running tests/core under ASan (log: $LOG)"
(
  cd "$ROOT" || exit 1
  # The opt-in pytest that calls this script must not recurse into itself.
  unset TFSVD_RUN_ASAN
  export TFSVD_CORE_PATH="$CORE"
  export PYTHONPATH="$ROOT/tests${PYTHONPATH:+:$PYTHONPATH}"
  export_sanitizer_env
  # OpenBLAS is not instrumented; keep its thread pool out of the picture (tfsvd sets it to 1 too).
  export OPENBLAS_NUM_THREADS=1
  "$PY" -m pytest tests/core -p sanitize.asan_plugin -q -p no:cacheprovider "$@"
) 2>&1 | tee "$LOG"
status=${PIPESTATUS[0]}

if grep -q -E 'ERROR: AddressSanitizer|runtime error:|ERROR: LeakSanitizer|SUMMARY: (Address|UndefinedBehavior)Sanitizer' "$LOG"; then
  grep -E -A 20 'ERROR: AddressSanitizer|runtime error:' "$LOG" | head -n 60
  fail "sanitizer report in $LOG"
fi
[ "$status" -eq 0 ] || fail "pytest exit status $status, see $LOG"
echo "ASAN RUN: PASS (tests/core, module $CORE)"
