#!/usr/bin/env bash
# Idempotent setup, called by `make setup` (and so by run and test); each step
# is skipped when already done:
#   1. a Python 3.10 or 3.11 (Theano 1.0.5 needs numpy < 1.24, which does not
#      exist for Python 3.12+): $PYTHON if set, else /usr/bin/python3, else
#      python3.11, python3.10 on PATH (deadsnakes, pyenv, uv, conda); where
#      there is none (Debian 13, Ubuntu 24.04), a project-local Python 3.11 in
#      .python311/, unpacked from Debian 12's own packages;
#   2. the system packages that Python and Theano need, with apt;
#   3. .venv from that Python, the pinned requirements.txt, the startup hook.
# Before them: one setup at a time (a second one waits), and PYTHONHOME refused.
# A .venv is never deleted: one that no longer runs is moved aside, one left
# without a pip that starts by an interrupted setup is finished.
#
#   tools/setup.sh                 what `make setup` runs
#   tools/setup.sh --find-python   print which Python a new .venv would be made
#                                  from ("KIND VERSION PATH"), change nothing
#   tools/setup.sh --with-opencl   the same as without, and the OpenCL test bed
#                                  (what `make test` runs): an OpenCL device on
#                                  the CPU (POCL), for the GPU backend's tests,
#                                  and NVRTC in .nvrtc/ for the CUDA kernels' check
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*"; }
die() { echo "setup: $*" >&2; exit 1; }

SYSTEM_PYTHON=${FLM_SYSTEM_PYTHON:-/usr/bin/python3}   # replaced by the tests only
LOCAL=.python311                                       # the project-local Python
# The project-local Python: Debian 12's python3.11 with its stdlib, distutils,
# headers and libpython (Theano compiles its ops against Python.h and links
# them with -lpython3.11), the pip and setuptools wheels for the venv, and the
# libraries of its C modules that a minimal system may lack (ssl, ctypes,
# sqlite3, readline, curses, pyexpat). Then the optional GPU stack, as on
# Debian 12: libgpuarray 0.7.6, pygpu and the Mako it renders kernels with.
LOCAL_DEBS="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib python3.11
  libpython3.11 libpython3.11-dev python3-distutils python3-lib2to3
  python3-pip-whl python3-setuptools-whl
  libssl3 libffi8 libsqlite3-0 libreadline8 libncursesw6 libexpat1
  libgpuarray3 libgpuarray-dev python3-pygpu python3-mako python3-markupsafe"
LOCAL_DEBS=$(echo $LOCAL_DEBS)

# --- 1. which Python -----------------------------------------------------------
# probe CMD: "MAJOR.MINOR REALPATH" of the interpreter CMD runs, or nothing.
probe() {
  "$1" -c 'import os, sys; print("%d.%d %s" % (sys.version_info[:2] + (os.path.realpath(sys.executable),)))' \
    2>/dev/null || true
}
# kind_of REALPATH: local (.python311), system (/usr/bin/python3), deb (another
# interpreter of the distribution, e.g. deadsnakes' python3.11) or other.
kind_of() {
  case "$1" in
    "$PWD/$LOCAL"/*) echo local ;;
    "$(readlink -f "$SYSTEM_PYTHON" 2>/dev/null)") echo system ;;
    *) if command -v dpkg-query >/dev/null && dpkg-query -S "$1" >/dev/null 2>&1; then
         echo deb; else echo other; fi ;;
  esac
}
# The MAJOR.MINOR of the python3 package apt would install, or nothing.
apt_python3() {
  command -v apt-cache >/dev/null || return 0
  apt-cache policy python3 2>/dev/null |
    sed -n 's/^ *Candidate: *\([0-9]*:\)\{0,1\}\([0-9][0-9]*\.[0-9][0-9]*\).*/\2/p' | head -n 1
}
# sudo_cmd: prints "" as root, "sudo" where sudo exists; fails otherwise.
sudo_cmd() {
  if [ "$(id -u)" = 0 ]; then echo; elif command -v sudo >/dev/null; then echo sudo; else return 1; fi
}
apt_update() {       # once per run: a fresh machine may have empty package lists
  [ -z "${APT_UPDATED:-}" ] || return 0
  APT_UPDATED=1
  command -v apt-get >/dev/null || return 0
  $(sudo_cmd) apt-get update -q || true
}
# find_python: sets KIND, VERSION, PY for a new .venv, or dies with one line.
find_python() {
  local cand path ver exe tried=""
  if [ -n "${PYTHON:-}" ]; then
    path=$(command -v -- "$PYTHON") ||
      die "PYTHON=$PYTHON: no such program: set PYTHON to a Python 3.10 or 3.11, or unset it (setup then finds or builds one)"
    read -r ver exe <<< "$(probe "$path")" || true
    [ -n "${exe:-}" ] || die "PYTHON=$PYTHON does not run as a Python: set PYTHON to a Python 3.10 or 3.11, or unset it"
    case "$ver" in
      3.10|3.11) ;;
      *) die "PYTHON=$PYTHON is Python $ver; Theano 1.0.5 and numpy 1.23 need Python 3.10 or 3.11: set PYTHON to one, or unset it (setup then finds or builds one)" ;;
    esac
    KIND=$(kind_of "$exe") VERSION=$ver PY=$exe
    return
  fi
  for cand in "$SYSTEM_PYTHON" python3.11 python3.10; do
    if ! path=$(command -v -- "$cand"); then
      if [ "$cand" = "$SYSTEM_PYTHON" ]; then
        # Not installed (a minimal Debian 12 or Ubuntu 22.04): the distribution's
        # python3 will do if it is a 3.10/3.11; step 2 installs it.
        ver=$(apt_python3)
        if [ -z "$ver" ] && [ -z "${FIND_ONLY:-}" ] && sudo_cmd >/dev/null; then
          apt_update; ver=$(apt_python3)       # empty package lists, as in containers
        fi
        case "$ver" in
          3.10|3.11) KIND=system VERSION=$ver PY=$SYSTEM_PYTHON; return ;;
          "") tried="$tried, no $cand" ;;
          *) tried="$tried, no $cand (the distribution's python3 is $ver)" ;;
        esac
      else
        tried="$tried, no $cand"
      fi
      continue
    fi
    read -r ver exe <<< "$(probe "$path")" || true
    case "${ver:-}" in
      3.10|3.11) KIND=$(kind_of "$exe") VERSION=$ver PY=$exe; return ;;
      "") tried="$tried, $cand does not run" ;;
      *) tried="$tried, $cand is $ver" ;;
    esac
  done
  KIND=local VERSION=3.11 PY="$PWD/$LOCAL/usr/bin/python3.11" TRIED=${tried#, }
}

if [ "${1:-}" = --find-python ]; then
  FIND_ONLY=1; find_python; echo "$KIND $VERSION $PY"; exit 0
fi
WITH_OPENCL=""
[ "${1:-}" != --with-opencl ] || { WITH_OPENCL=1; shift; }
[ $# -eq 0 ] || die "unknown argument $1 (usage: tools/setup.sh [--find-python | --with-opencl])"

# --- 0. one setup at a time, in an environment that lets Python run ---------------
# A second `make setup` in this folder (two terminals, make -j) waits for the
# first, then finds its work done.
# (Read-only where another user, e.g. root, made the lock file: flock needs no more.)
if command -v flock >/dev/null && { exec 9>>.setup.lock || exec 9<.setup.lock; } 2>/dev/null; then
  if ! flock -n 9; then
    say "another make setup is running in this folder: waiting for it to finish"
    flock 9
  fi
fi
# A variable that stops every Python from starting (a conda shell's PYTHONHOME,
# a PYTHONPATH folder with its own encodings/, PYTHONIOENCODING=bogus ...)
# would make a working .venv, and every Python of the system, look broken:
# named here, before anything is looked at or changed.
python_env_problem() {
  local py vars v culprit=""
  py=$(command -v .venv/bin/python "$SYSTEM_PYTHON" python3 2>/dev/null | head -n 1 || true)
  [ -n "$py" ] && ! "$py" -c pass >/dev/null 2>&1 || return 0
  vars=$(compgen -e | grep '^PYTHON' || true)
  [ -n "$vars" ] && env $(printf -- '-u %s ' $vars) "$py" -c pass >/dev/null 2>&1 || return 0
  for v in $vars; do
    env -u "$v" "$py" -c pass >/dev/null 2>&1 && culprit="$culprit $v"
  done
  set -- ${culprit:-$vars}
  die "$(for v in "$@"; do printf '%s=%s ' "$v" "${!v}"; done)makes $py fail to start (a conda or other Python shell leaves such variables set): unset $* and run make again"
}
python_env_problem

# .venv, if it runs a Python 3.10/3.11, stays as it is (one without its pip, left
# by an interrupted setup, is finished in step 3). One that does not run (its
# Python is gone or was upgraded, e.g. Debian 12 -> 13) is moved aside, never
# deleted: the packages a user added to it are still there.
venv_ok="" venv_half=""
rm -f .venv/lib/python3*/site-packages/feedforward_lasagne_mnist.pth  # an earlier layout's hook
if [ -e .venv ] || [ -L .venv ]; then
  read -r ver exe <<< "$(probe .venv/bin/python)" || true
  case "${ver:-}" in
    3.10|3.11)
      venv_ok=1
      # Its own pip, and one that starts: a setup stopped while pip installed
      # itself into the new .venv leaves pip/__init__.py without the rest
      # ("No module named 'pip._internal'").
      { ls .venv/lib/python3*/site-packages/pip/__init__.py &&
        .venv/bin/python -m pip --version; } >/dev/null 2>&1 || venv_half=1 ;;
    *)
      aside=.venv.broken-$(date +%Y%m%d-%H%M%S)-$$
      mv .venv "$aside"
      say ".venv does not run a Python 3.10/3.11 (${ver:-its Python is missing or does not start}): moved aside to $aside, making a new one" ;;
  esac
fi

# PYTHONPATH comes before the venv's own packages: a folder there holding one of
# them (another numpy, a Theano checkout) would replace it in every run.
check_pythonpath() {
  [ -n "${PYTHONPATH:-}" ] || return 0
  local shadowed
  shadowed=$(.venv/bin/python - <<'PY'
import importlib.util, os
roots = [os.path.realpath(p) for p in os.environ["PYTHONPATH"].split(os.pathsep) if p]
for name in ("numpy", "scipy", "theano", "lasagne", "tqdm", "PIL", "matplotlib", "pytest",
             "feedforward_lasagne_mnist", "mnist_loader", "lasagne_mnist_port"):
    try:
        spec = importlib.util.find_spec(name)
    except Exception:
        continue
    where = spec and (spec.origin or "".join(list(spec.submodule_search_locations or [])[:1]))
    if where and any(os.path.realpath(where).startswith(r + os.sep) for r in roots):
        print("%s (%s)" % (name, where))
        break
PY
)
  [ -z "$shadowed" ] ||
    die "PYTHONPATH=$PYTHONPATH holds $shadowed, which would replace the .venv's own: unset PYTHONPATH or take that folder out of it, and run make again"
}
[ -z "$venv_ok" ] || [ -n "$venv_half" ] || check_pythonpath

TRIED=""
if [ -n "$venv_ok" ]; then
  base=$exe
  if [ -n "${PYTHON:-}" ]; then
    want=$(probe "$(command -v -- "$PYTHON" || echo "$PYTHON")" | cut -d' ' -f2)
    [ "$want" = "$base" ] ||
      die ".venv was made from $base, not from PYTHON=$PYTHON: move it away (mv .venv .venv.old) and run make again to make it from PYTHON"
  fi
  KIND=$(kind_of "$base") VERSION=$ver PY=$base
else
  find_python
fi

# --- 2. system packages ---------------------------------------------------------
# need [--optional] PACKAGE...: installs with apt those not installed. Without
# --optional, a failure stops setup with one line; with it, need returns 1.
need() {
  local optional="" p missing="" sudo
  [ "$1" = --optional ] && { optional=1; shift; }
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -n "$missing" ] || return 0
  if ! command -v apt-get >/dev/null; then
    [ -z "$optional" ] || return 1
    die "missing system packages:$missing; this system has no apt-get to install them: install them (or your system's equivalents) by hand and run make again"
  fi
  if ! sudo=$(sudo_cmd); then
    [ -z "$optional" ] || return 1
    die "missing system packages:$missing; run as root or install sudo, or install them: apt-get install$missing"
  fi
  say "installing system packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt_update
  if ! $sudo apt-get install -y -q --no-install-recommends $missing; then
    [ -z "$optional" ] || return 1
    die "could not install$missing with apt-get (its message is above): fix that, or run: apt-get install$missing"
  fi
}

GPU_NOTE=""
if command -v dpkg-query >/dev/null; then
  case "$KIND" in
    system)
      need g++ python3-dev python3-venv libopenblas-dev
      # The GPU stack is optional: the CPU path needs neither.
      need --optional python3-pygpu libgpuarray-dev ||
        GPU_NOTE="python3-pygpu and libgpuarray-dev could not be installed; the CPU path does not need them" ;;
    deb)
      # e.g. deadsnakes' python3.11 on Ubuntu 24.04: its own -dev, -venv, -distutils
      v=python$VERSION
      pkgs="g++ libopenblas-dev $v-dev $v-venv"
      apt-cache show "$v-distutils" >/dev/null 2>&1 && pkgs="$pkgs $v-distutils"
      need $pkgs ;;
    local)
      # Debian 12's packages are verified with Debian's archive keyring;
      # patchelf gives the interpreter its library path; Debian's pip reads
      # the system's CA certificates.
      need g++ libopenblas-dev patchelf debian-archive-keyring ca-certificates ;;
    other)
      command -v g++ >/dev/null || need g++ ;;
  esac
  # The OpenCL test bed: Theano's gpuarray backend (pygpu, above) on POCL's
  # OpenCL device, which runs on the CPU; libgpuarray opens libOpenCL.so and
  # libclblast.so by those names, which the -dev packages provide.
  if [ -n "$WITH_OPENCL" ] && [ "$KIND" != deb ] && [ "$KIND" != other ]; then
    need --optional ocl-icd-opencl-dev pocl-opencl-icd libclblast-dev ||
      say "OpenCL test bed: ocl-icd-opencl-dev pocl-opencl-icd libclblast-dev could not be installed; the tests of the GPU backend will be skipped"
  fi
else
  command -v g++ >/dev/null ||
    die "no C++ compiler g++, which Theano compiles its ops with: install g++ and run make again"
fi

# --- the project-local Python 3.11 ---------------------------------------------
# Unpacked from Debian 12's packages by tools/debian12_debs.sh (apt with a
# temporary source list, verified against Debian's archive keyring; nothing is
# installed system-wide) into $LOCAL.tmp, made to run from there, then renamed.
build_local_python() {
  local tmp="$LOCAL.tmp" usr triplet
  rm -rf "$tmp"
  say "building a project-local Python 3.11 in $LOCAL/ from Debian 12's packages (nothing is installed system-wide)"
  tools/debian12_debs.sh "$tmp" $LOCAL_DEBS > "$LOCAL.debs" || {
    rm -rf "$tmp" "$LOCAL.debs"
    die "could not fetch Debian 12's Python 3.11 (the line above says why); fix that and run make again"
  }
  usr="$tmp/usr"
  # Some of Debian 12's packages still ship /lib: merge it into usr/lib, as
  # Debian 12 systems do.
  if [ -d "$tmp/lib" ]; then cp -a "$tmp/lib/." "$usr/lib/" && rm -rf "$tmp/lib"; fi
  triplet=$(cd "$usr/include" && ls -d *-linux-gnu* | head -n 1)
  # Debian's include/python3.11/pyconfig.h only includes <TRIPLET/python3.11/pyconfig.h>
  # from /usr/include: put the real file in its place.
  cp "$usr/include/$triplet/python3.11/pyconfig.h" "$usr/include/python3.11/pyconfig.h"
  # The interpreter's own library path (DT_RPATH, which also serves the modules
  # and Theano's ops it loads): libpython3.11 and the other libraries of
  # LOCAL_DEBS, then libgpuarray; relative to the interpreter, so it holds
  # before and after the rename.
  patchelf --force-rpath --set-rpath "\$ORIGIN/../lib/$triplet:\$ORIGIN/../lib" "$usr/bin/python3.11"
  # Debian's build variables name /usr: Theano compiles its ops with
  # -I$INCLUDEPY and links them with -L$LIBDIR -lpython3.11. Point those that
  # name install locations at this tree (where it will be after the rename).
  "$usr/bin/python3.11" -B - "$PWD/$LOCAL/usr" "$usr"/lib/python3.11/_sysconfigdata_*.py <<'PY'
import os, re, sys
usr = sys.argv[1]
keys = ("INCLUDEPY CONFINCLUDEPY INCLUDEDIR CONFINCLUDEDIR LIBDIR LIBPL LIBPC LIBDEST "
        "BINLIBDEST MACHDESTLIB DESTSHARED BINDIR").split()
for path in sys.argv[2:]:
    if os.path.islink(path):
        continue
    with open(path) as f:
        text = f.read()
    text, n = re.subn(r"^( '(?:%s)': ')/usr(?=[/'])" % "|".join(keys),
                      lambda m: m.group(1) + usr, text, flags=re.M)
    assert n == len(keys), "%s: %d of %d build variables found" % (path, n, len(keys))
    with open(path, "w") as f:
        f.write(text)
PY
  rm -f "$usr/lib/$triplet/libpython3.11.a" "$usr"/lib/python3.11/config-3.11-*/*.a   # static, unused
  mv "$LOCAL.debs" "$tmp/DEBIAN12-PACKAGES"
  printf '%s\n' "$STAMP" > "$tmp/REQUESTED"
  local err
  err=$("$usr/bin/python3.11" -B -c 'import ssl, hashlib, ctypes, sqlite3, readline, pyexpat, zlib, bz2, lzma, decimal, uuid, venv, distutils.sysconfig' 2>&1) || {
    rm -rf "$tmp"
    die "the project-local Python 3.11 does not run here ($(echo "$err" | tail -n 1)): this system lacks what it names; install it and run make again"
  }
  rm -rf "$LOCAL"
  mv "$tmp" "$LOCAL"
}

# Rebuilt when the list of packages changes or the project moves (the build
# variables above name its path, as .venv does).
STAMP="$LOCAL_DEBS
$PWD"
if [ "$KIND" = local ]; then
  if [ "$(cat "$LOCAL/REQUESTED" 2>/dev/null)" != "$STAMP" ] || [ ! -x "$PY" ]; then
    [ -n "$TRIED" ] && say "no Python 3.10/3.11 on this system ($TRIED)"
    build_local_python
  fi
fi

# --- 3. .venv, requirements, startup hook ----------------------------------------
case "$KIND" in
  system) where="the system's" ;;
  local)  where="project-local, from Debian 12's packages" ;;
  deb)    where="the distribution's" ;;
  *)      where="found on PATH" ;;
esac
[ "$KIND" = other ] && [ -n "${PYTHON:-}" ] && where="PYTHON"
full=$("$PY" -c 'import platform; print(platform.python_version())')
say "Python $full ($PY, $where)"

if [ -n "$venv_half" ]; then
  say ".venv has no working pip of its own (an interrupted setup): finishing it"
  # What there is of a pip that does not start goes, so that pip installs
  # itself whole (it would take a pip whose metadata is there as installed).
  rm -rf .venv/lib/python3*/site-packages/pip .venv/lib/python3*/site-packages/pip-*.dist-info
fi
if [ ! -x .venv/bin/python ] || [ -n "$venv_half" ]; then
  [ -n "$venv_half" ] || say "creating .venv from $PY"
  case "$KIND" in
    system)
      # --system-site-packages: Debian's python3-pygpu (/usr/lib/python3/dist-packages)
      "$PY" -m venv --system-site-packages .venv || die "could not create .venv with $PY -m venv" ;;
    local)
      # --system-site-packages: the unpacked pygpu ($LOCAL/usr/lib/python3/dist-packages);
      # pip and setuptools from Debian 12's wheels, as Debian 12's own venvs get them.
      whl=$(ls "$LOCAL"/usr/share/python-wheels/pip-*.whl)
      { "$PY" -m venv --system-site-packages --without-pip .venv &&
        .venv/bin/python "$whl/pip" install -q --no-index --disable-pip-version-check \
          "$LOCAL"/usr/share/python-wheels/{pip,setuptools}-*.whl; } ||
        die "could not create .venv with $PY -m venv" ;;
    *)
      # Not the system's packages: a Python from elsewhere would see other
      # versions of them (e.g. Python 3.12's, in /usr/lib/python3/dist-packages).
      "$PY" -m venv .venv ||
        die "could not create .venv with $PY -m venv: install its venv module (and ensurepip) and run make again" ;;
  esac
  NEW_VENV=1
fi

if ! cmp -s requirements.txt .venv/requirements.installed; then
  say "installing requirements.txt into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/requirements.installed
fi

# With the OpenCL test bed, NVIDIA's NVRTC (CUDA 12 and 13), with which
# tools/cuda_kernels.py compiles the tutorial's CUDA kernels without a GPU: into
# .nvrtc/, a folder of its own (not .venv, where the GPU path's library search
# would find it). Optional: the check is skipped where it cannot be installed.
if [ -n "$WITH_OPENCL" ] && ! cmp -s requirements-nvrtc.txt .nvrtc/requirements.installed; then
  say "installing requirements-nvrtc.txt into .nvrtc"
  rm -rf .nvrtc
  if .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target .nvrtc \
       -r requirements-nvrtc.txt; then
    cp requirements-nvrtc.txt .nvrtc/requirements.installed
  else
    rm -rf .nvrtc
    say "NVRTC wheels (requirements-nvrtc.txt) could not be installed; the CUDA kernel check will be skipped"
  fi
fi

# A new .venv: the same check of PYTHONPATH as for an existing one (step 0).
[ -z "${NEW_VENV:-}" ] || check_pythonpath

# The GPU path, said once, when .venv is new (pygpu needs numpy, installed above).
if [ -n "${NEW_VENV:-}" ] && [ -z "$GPU_NOTE" ]; then
  if err=$(.venv/bin/python -c 'import pygpu; print(pygpu.__version__)' 2>&1); then
    say "GPU path: pygpu $err is importable (docs/gpu.md: what else the GPU needs)"
  else
    GPU_NOTE="pygpu is not importable by .venv ($(echo "$err" | tail -n 1)); the CPU path does not need it"
  fi
fi
[ -z "$GPU_NOTE" ] || say "GPU path: $GPU_NOTE"

# The venv sees the project's three public names, and nothing else of it:
# links in its site-packages to the tutorial, the loader and the package (so
# that a user's own compat.py or speedups.py is still the one they import).
# And a startup hook, a .pth file that applies lasagne_mnist_port/compat.py's shims whenever
# Theano gets imported, so that `import theano`, `import lasagne` and the
# tutorial work in any order, from any directory, in any interpreter or
# notebook kernel of this venv.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for name in feedforward_lasagne_mnist.py mnist_loader.py lasagne_mnist_port; do
  if [ "$(readlink "$site/$name")" != "$PWD/$name" ]; then
    ln -sfn "$PWD/$name" "$site/$name"
  fi
done
hook='import lasagne_mnist_port.import_hook as h; h.install()'
if [ "$(cat "$site/lasagne_mnist_port.pth" 2>/dev/null)" != "$hook" ]; then
  say "installing the startup hook $site/lasagne_mnist_port.pth"
  printf '%s\n' "$hook" > "$site/lasagne_mnist_port.pth.tmp"
  mv "$site/lasagne_mnist_port.pth.tmp" "$site/lasagne_mnist_port.pth"
fi

# Theano cannot take a path with a space, a comma, a quote or a # in
# blas.ldflags: compat.py then reaches the wheel's OpenBLAS through a link in
# the temporary directory. Said here if even that fails, since Theano would
# link the system's instead.
case "$PWD" in
  *[!A-Za-z0-9_./+@%=-]*)
    blas=$(.venv/bin/python -c 'import importlib.util as u; from lasagne_mnist_port import compat as c; f = c.default_blas_ldflags(); print("" if "scipy_openblas" in f or u.find_spec("scipy_openblas32") is None else f)')
    [ -z "$blas" ] || say "Theano will link the system's OpenBLAS ($blas), not the wheel's: this folder's path holds a character that breaks THEANO_FLAGS, and no link to the wheel could be made in the temporary directory" ;;
esac
