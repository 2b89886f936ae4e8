#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment.
#
# The environment holds torch and the Triton server wheel (several GB), so it
# lives in a cache outside the repository, keyed by the Python version and
# the dependency list in pyproject.toml; ./.venv is a symlink to it. A second
# clone or a repeat CI run with the same dependencies reuses it in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
CACHE=${MODELOPS_CACHE:-$HOME/.cache/modelops}
pyver=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$( { echo "$pyver"; sed -n '/^dependencies = \[/,/^\]/p;/^\[project.optional-dependencies\]/,/^\[project.scripts\]/p' pyproject.toml; } | sha256sum | cut -c1-12)
venv="$CACHE/venv/py$pyver-$key"

if [ ! -f "$venv/.complete" ]; then
  echo "venv: creating $venv (cold: downloads torch and tritonserver, several minutes)" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$PYTHON" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  # The PyPI torch wheel pulls CUDA runtime wheels; pip keeps them in its own
  # cache (~/.cache/pip) so a rebuilt environment does not download them again.
  "$venv/bin/pip" install --quiet -e ".[dev]"
  touch "$venv/.complete"
else
  # The environment is reused; the editable install must point at this clone.
  "$venv/bin/pip" install --quiet --no-deps -e .
fi
# Several clones share one cached environment, and the editable install points at
# whichever clone installed last. A process started through a clone's own .venv
# link (sys.prefix is then <clone>/.venv), or a console script run from a
# clone's root (make lint), imports that clone's source first.
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > "$site/zz_modelops_checkout.pth" <<'PTH'
import os, sys; _o = next((p for p in (os.path.join(os.path.dirname(sys.prefix), "operator"), os.path.join(os.getcwd(), "operator")) if os.path.isfile(os.path.join(p, "modelops", "__init__.py"))), None); _o and sys.path.insert(0, _o)
PTH
ln -sfn "$venv" .venv
echo "venv: $venv" >&2
