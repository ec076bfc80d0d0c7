#!/usr/bin/env bash
# Idempotent setup: system packages (apt), .venv from the system Python 3 with
# --system-site-packages (so Debian's python3-pygpu is visible), pinned requirements.
# Each step is skipped when already done. Called by `make setup` (and so by run/test).
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS="g++ python3-dev python3-venv libopenblas-dev python3-pygpu libgpuarray-dev"
PY=/usr/bin/python3

missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  if ! command -v apt-get >/dev/null; then
    echo "setup: missing system packages:$missing; this script installs them with apt-get, which this machine lacks: install them (g++, Python 3.10/3.11 headers and venv, OpenBLAS headers, pygpu 0.7 and libgpuarray headers) by hand and run make again" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "setup: missing system packages:$missing; run as root or install sudo: apt-get install$missing" >&2; exit 1; }
    SUDO=sudo
  fi
  echo "setup: installing system packages:$missing"
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may have empty package lists: update first.
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends $missing
fi

ver=$($PY -c 'import sys; print("%d.%d" % sys.version_info[:2])')
case "$ver" in
  3.10|3.11) ;;
  *) echo "setup: $PY is Python $ver; Theano 1.0.5 and numpy 1.23 need Python 3.10 or 3.11 (Debian 12, Ubuntu 22.04)" >&2; exit 1 ;;
esac

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv from $PY ($ver)"
  $PY -m venv --system-site-packages .venv
fi
if ! cmp -s requirements.txt .venv/requirements.installed; then
  echo "setup: installing requirements.txt into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/requirements.installed
fi

# The startup hook: a .pth file in the venv's site-packages puts the project on
# sys.path and applies compat.py's shims whenever Theano gets imported, so that
# `import theano`, `import lasagne` and the project's modules work in any order,
# from any directory, in any interpreter or notebook kernel of this venv.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
hook=$(printf '%s\nimport compat; compat.install_import_hook()\n' "$PWD")
if [ "$(cat "$site/feedforward_lasagne_mnist.pth" 2>/dev/null)" != "$hook" ]; then
  echo "setup: installing the startup hook $site/feedforward_lasagne_mnist.pth"
  printf '%s\n' "$hook" > "$site/feedforward_lasagne_mnist.pth"
fi
