#!/usr/bin/env bash
# Build .device/: a Python 3.11 + Theano 1.0.5 + Lasagne 0.1 + pygpu 0.7.6 that
# runs from any folder of any x86-64 Linux with glibc >= 2.36 and a g++, with no
# apt and no network -- for the GPU machine, whose own Python is 3.12 with
# numpy 2 (Theano 1.0.5 needs 3.10/3.11 and numpy < 1.24). Built on any
# Debian or Ubuntu x86-64 machine after `make setup`: the Debian 12 packages
# come through tools/debian12_debs.sh, as for make setup's project-local Python.
#
#   tools/device_bundle.sh [OUT_DIR]          (default .device)
#   bash .device/run.sh feedforward_lasagne_mnist.py --device cuda
#
# What goes in, and why:
#   - Debian 12's python3.11 (interpreter, stdlib, distutils, headers,
#     libpython3.11.so): the same build the project's .venv and Debian's pygpu
#     use. Theano links its compiled ops with -lpython3.11 and compiles them
#     against Python.h, so the headers and the .so come too.
#   - numpy 1.23.5, Theano 1.0.5, Lasagne 0.1, six, tqdm: copied from .venv
#     (pinned by requirements.txt; `make setup` makes it), tests stripped.
#     scipy is left out: neither the MLP, Lasagne nor Theano's import needs it,
#     and it is 127 MB (Theano treats it as optional).
#   - Debian's libgpuarray3, libgpuarray-dev (headers, libgpuarray.so for
#     -lgpuarray) and python3-pygpu, with python3-mako/-markupsafe (pygpu
#     renders its reduction kernels with Mako).
#   - Debian's OpenBLAS (libopenblas.so.0, for lasagne_mnist_port/compat.py's blas.ldflags=-lopenblas)
#     with libgfortran5/libquadmath0.
#   - libexpat, libz, libffi, libbz2, liblzma, which python3.11 and its
#     modules link to, in lib/fallback/: run.sh puts on LD_LIBRARY_PATH only
#     those the system lacks, so that g++ and other system tools started
#     from Python keep their own (newer) copies.
#   Not included: glibc (>= 2.36), libstdc++/libgcc_s (come with g++), and
#   g++ itself (too big; the GPU machine's CUDA image has one: nvcc needs it).
#
# Everything is packed into OUT_DIR/py311.tar.xz (the unpacked tree is ~130 MB,
# too big to copy around as it is); OUT_DIR/run.sh unpacks it once to
# $FLM_PY311_DIR or ${TMPDIR:-/tmp}/flm-py311-<checksum> and runs its Python.
# OUT_DIR/.gitignore ignores the folder itself, so it never gets committed.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${1:-.device}
SITE=.venv/lib/python3.11/site-packages
PY_DEBS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11 libpython3.11-dev python3-distutils"
GPU_DEBS="libgpuarray3 libgpuarray-dev python3-pygpu python3-mako python3-markupsafe"
BLAS_DEBS="libopenblas0-pthread libgfortran5 libquadmath0"
BASE_DEBS="libexpat1 zlib1g libffi8 libbz2-1.0 liblzma5"    # python3.11's own needs

say() { echo "device_bundle: $*" >&2; }
die() { say "$*"; exit 1; }

# --- 0. what the build needs on this machine ----------------------------------
[ "$(uname -m)" = x86_64 ] || die "builds x86-64 only (this is $(uname -m))"
for tool in tar xz cksum; do
  command -v "$tool" >/dev/null || die "needs $tool (apt-get install xz-utils)"
done
[ -d "$SITE/theano" ] && [ -d "$SITE/lasagne" ] && [ -d "$SITE/numpy" ] ||
  die "no Theano/Lasagne/numpy in $SITE: run \`make setup\` first"
numpy_version=$(.venv/bin/python -c 'import numpy; print(numpy.__version__)')
[ "$numpy_version" = 1.23.5 ] || die "$SITE has numpy $numpy_version, not the pinned 1.23.5: run \`make setup\`"

STAGE=$(mktemp -d "${TMPDIR:-/tmp}/flm-device-bundle.XXXXXX")
trap '[ -n "${KEEP_STAGE:-}" ] || rm -rf "$STAGE"' EXIT
B="$STAGE/py311"           # the prefix: bin/ lib/ include/, as PYTHONHOME sees it
ROOT="$STAGE/root"         # the Debian packages, unpacked
mkdir -p "$B/bin" "$B/lib/python3/dist-packages" "$B/include"

# --- 1. Debian 12's packages: downloaded and unpacked, never installed ---------
tools/debian12_debs.sh "$ROOT" $PY_DEBS $GPU_DEBS $BLAS_DEBS $BASE_DEBS > "$STAGE/debs.txt" ||
  die "could not fetch Debian 12's packages (the line above says why)"

# --- 2. the interpreter, its stdlib and headers -------------------------------
# Debian's python3.11 has libpython linked in; it finds its stdlib from
# PYTHONHOME, which run.sh sets. Left out of the stdlib: tests, GUI, 2to3,
# docs, the static libpython and the C extensions nothing here imports (or
# whose libraries a foreign system may lack: curses, readline, dbm, sqlite).
cp -a "$ROOT/usr/bin/python3.11" "$B/bin/"
ln -s python3.11 "$B/bin/python3"
ln -s python3.11 "$B/bin/python"
cp -a "$ROOT/usr/lib/python3.11" "$B/lib/"
(cd "$B/lib/python3.11" &&
  rm -rf test idlelib tkinter turtledemo turtle.py ensurepip lib2to3 pydoc_data \
         config-3.11-x86_64-linux-gnu/*.a config-3.11-x86_64-linux-gnu/*.o dist-packages &&
  cd lib-dynload &&
  rm -f _test*.so _xx*.so xx*.so _ctypes_test*.so _curses*.so _dbm*.so nis*.so \
        _sqlite3*.so readline*.so ossaudiodev*.so audioop*.so _crypt*.so)
cp -a "$ROOT/usr/lib/x86_64-linux-gnu/libpython3.11.so.1.0" "$B/lib/"
ln -s libpython3.11.so.1.0 "$B/lib/libpython3.11.so.1"
ln -s libpython3.11.so.1.0 "$B/lib/libpython3.11.so"          # for -lpython3.11
cp -a "$ROOT/usr/include/python3.11" "$B/include/"
# Debian's include/python3.11/pyconfig.h only includes the multiarch one from
# /usr/include, which a foreign system lacks: put the real file in its place.
cp "$ROOT/usr/include/x86_64-linux-gnu/python3.11/pyconfig.h" "$B/include/python3.11/pyconfig.h"
mkdir -p "$B/include/x86_64-linux-gnu/python3.11"
cp "$ROOT/usr/include/x86_64-linux-gnu/python3.11/pyconfig.h" "$B/include/x86_64-linux-gnu/python3.11/"

# --- 3. libgpuarray, pygpu, OpenBLAS -------------------------------------------
# lib/ goes on LD_LIBRARY_PATH (run time) and LIBRARY_PATH (g++'s -l search);
# include/ on CPATH (g++'s #include search): that is how Theano's generated
# code finds <gpuarray/*.h>, -lgpuarray, -lopenblas and -lpython3.11 without
# any path in THEANO_FLAGS.
cp -a "$ROOT"/usr/lib/libgpuarray.so* "$B/lib/"
cp -a "$ROOT/usr/include/gpuarray" "$B/include/"
cp -a "$ROOT/usr/lib/python3/dist-packages/pygpu" "$B/lib/python3/dist-packages/"
cp -a "$ROOT"/usr/lib/python3/dist-packages/pygpu-*.egg-info "$B/lib/python3/dist-packages/"
rm -rf "$B/lib/python3/dist-packages/pygpu/tests" "$B"/lib/python3/dist-packages/pygpu/*.c
cp -a "$ROOT"/usr/lib/python3/dist-packages/{mako,markupsafe} "$B/lib/python3/dist-packages/"
cp -L "$ROOT/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0" "$B/lib/libopenblas.so.0"
ln -s libopenblas.so.0 "$B/lib/libopenblas.so"
cp -a "$ROOT"/usr/lib/x86_64-linux-gnu/libgfortran.so.5* "$ROOT"/usr/lib/x86_64-linux-gnu/libquadmath.so.0* "$B/lib/"
mkdir -p "$B/lib/fallback"
for so in libexpat.so.1 libz.so.1 libffi.so.8 libbz2.so.1.0 liblzma.so.5; do
  cp -L "$(find "$ROOT" -name "$so" | head -1)" "$B/lib/fallback/$so"
done

# --- 4. the pinned Python packages, from .venv ----------------------------------
# (pkg_resources, from setuptools, because lasagne/__init__.py asks it its version.)
# Tests are dropped, except theano/tests itself: `import theano` imports it
# (and theano.gpuarray.opt its breakpoint module); only its test_*.py go.
DP="$B/lib/python3/dist-packages"
for pkg in numpy numpy.libs theano lasagne tqdm six.py pkg_resources; do
  [ -e "$SITE/$pkg" ] || die "$SITE/$pkg is missing: run \`make setup\`"
  cp -a "$SITE/$pkg" "$DP/"
done
# Their metadata: *.dist-info, or *.egg-info where pip installed an sdist
# (Theano, Lasagne) with setup.py because the venv has no `wheel` package.
for pkg in numpy [Tt]heano [Ll]asagne tqdm six; do
  meta=$(ls -d "$SITE"/$pkg-*.dist-info "$SITE"/$pkg-*.egg-info 2>/dev/null) ||
    [ -n "$meta" ] || die "no metadata of $pkg in $SITE: run \`make setup\`"
  cp -a $meta "$DP/"
done
find "$DP" -depth -type d -name tests ! -path "$DP/theano/tests" -exec rm -rf {} +
rm -f "$DP"/theano/tests/test_*.py
find "$B" -depth -type d -name __pycache__ -exec rm -rf {} +
find "$DP/numpy" \( -name '*.pyi' -o -name '*.pxd' -o -name '*.pyx' \) -delete

# --- 5. pack, and the launcher ---------------------------------------------------
mkdir -p "$OUT"
printf '*\n' > "$OUT/.gitignore"
rm -rf "$OUT/py311" "$OUT/py311.tar.xz"
unpacked=$(du -sm "$B" | cut -f1)
tar -C "$STAGE" --owner=0 --group=0 --numeric-owner -cf - py311 | xz -T0 -9 > "$OUT/py311.tar.xz.tmp"
mv "$OUT/py311.tar.xz.tmp" "$OUT/py311.tar.xz"

cat > "$OUT/run.sh" <<'RUN'
#!/usr/bin/env bash
# Python 3.11 with Theano 1.0.5, Lasagne 0.1, numpy 1.23.5 and pygpu 0.7.6,
# from py311.tar.xz beside this file (built by tools/device_bundle.sh).
#   bash .device/run.sh SCRIPT.py ARGS...     bash .device/run.sh -c CODE
# Unpacks once to $FLM_PY311_DIR (default ${TMPDIR:-/tmp}/flm-py311-<cksum>),
# then runs its python3.11 with PYTHONHOME/PYTHONPATH/LD_LIBRARY_PATH and the
# compiler's CPATH/LIBRARY_PATH pointing into it. Needs bash, tar, xz (or any
# python3), glibc >= 2.36, and g++ for Theano's compiled ops.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
archive="$here/py311.tar.xz"
if [ -x "$here/py311/bin/python3.11" ]; then
  B="$here/py311"                               # an unpacked copy beside run.sh
else
  [ -f "$archive" ] || { echo "run.sh: $archive is missing: run tools/device_bundle.sh" >&2; exit 1; }
  B="${FLM_PY311_DIR:-${TMPDIR:-/tmp}/flm-py311-$(cksum < "$archive" | cut -d' ' -f1)}"
  if [ ! -x "$B/bin/python3.11" ]; then
    tmp=$(mktemp -d "$B.XXXXXX")
    if ! tar -C "$tmp" -xJf "$archive" 2>/dev/null; then
      rm -rf "$tmp/py311"                           # no xz: any python3 can unpack it
      python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
        "$archive" "$tmp"
    fi
    mv -T "$tmp/py311" "$B" 2>/dev/null || true     # another run may have won the race
    rm -rf "$tmp"
  fi
fi
export PYTHONHOME="$B"
export PYTHONPATH="$B/lib/python3/dist-packages"   # replaces, never extends: a 3.12 path would break 3.11
export PYTHONNOUSERSITE=1
# lib/fallback holds python3.11's base libraries (libexpat, libz, libffi...):
# link in only those this system lacks, so that g++ & co keep their own.
lacks=""
for so in "$B"/lib/fallback/*; do
  so=${so##*/}
  found=""
  for d in /lib/x86_64-linux-gnu /usr/lib/x86_64-linux-gnu /lib64 /usr/lib64 /lib /usr/lib; do
    [ -e "$d/$so" ] && { found=1; break; }
  done
  [ -n "$found" ] || lacks="$lacks $so"
done
extra=""
if [ -n "$lacks" ]; then
  extra="$B/lib/provided-$(echo "$lacks" | cksum | cut -d' ' -f1)"
  if [ ! -d "$extra" ]; then
    mkdir -p "$extra.tmp$$"
    for so in $lacks; do ln -s "../fallback/$so" "$extra.tmp$$/$so"; done
    mv -T "$extra.tmp$$" "$extra" 2>/dev/null || rm -rf "$extra.tmp$$"
  fi
fi
export LD_LIBRARY_PATH="$B/lib${extra:+:$extra}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LIBRARY_PATH="$B/lib${LIBRARY_PATH:+:$LIBRARY_PATH}"
export CPATH="$B/include${CPATH:+:$CPATH}"
export PATH="$B/bin:$PATH"
missing=$(ldd "$B/bin/python3.11" "$B"/lib/python3.11/lib-dynload/_ctypes*.so \
              "$B"/lib/python3/dist-packages/pygpu/gpuarray*.so "$B/lib/libopenblas.so.0" 2>/dev/null |
          awk '/not found/ {print $1}' | sort -u | tr '\n' ' ' || true)
[ -z "$missing" ] || echo "run.sh: this system lacks ${missing}- install them" >&2
exec "$B/bin/python3.11" "$@"
RUN
chmod +x "$OUT/run.sh"

packed=$(du -k "$OUT/py311.tar.xz" | cut -f1)
{
  echo "built $(date -u +%Y-%m-%dT%H:%MZ) on $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "unpacked: ${unpacked} MB; $OUT: $(du -sk "$OUT" | cut -f1) KiB (py311.tar.xz ${packed} KiB)"
  echo "debs:"; sed 's/^/  /' "$STAGE/debs.txt"
  echo "from .venv:"; (cd "$DP" && ls -d *.dist-info *.egg-info 2>/dev/null | sed 's/^/  /')
} > "$OUT/MANIFEST.txt"
cat "$OUT/MANIFEST.txt" >&2
