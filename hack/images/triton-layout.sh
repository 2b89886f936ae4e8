#!/bin/sh
# Lays out the tritonserver of the nvidia-pytriton wheel (installed in the
# venv /opt/modelops) as Triton's default paths under ROOT/opt/tritonserver:
#
#   bin/tritonserver                 the wheel's server binary (PATH has bin/)
#   backends/python/                 the wheel's python backend, plus the
#                                    python-backend stub for Python 3.11 beside
#                                    libtriton_python.so, where the backend looks
#   caches -> the wheel's caches/    (--cache-directory default)
#   lib    -> nvidia_pytriton.libs   (LD_LIBRARY_PATH: libtriton_python.so is
#                                    loaded through a link, so its $ORIGIN RPATH
#                                    does not reach the wheel's bundled libraries)
#
# So the rendered pod's plain `tritonserver --model-repository=/models` needs no
# --backend-directory. Only links: the wheel stays as pip installed it. The same
# layout as tests.support.triton_server.prepare_backend_directory, fixed at build time.
#
#   triton-layout.sh ROOT    (ROOT: the image's root file system, "/" in a Dockerfile)
set -eu
r=${1%/}
t=/opt/tritonserver
w=/opt/modelops/lib/python3.11/site-packages/pytriton/tritonserver
[ -x "$r$w/bin/tritonserver" ] || { echo "no tritonserver in $r$w" >&2; exit 1; }
mkdir -p "$r$t/bin" "$r$t/backends/python"
ln -s "$w/bin/tritonserver" "$r$t/bin/tritonserver"
ln -s "$w/caches" "$r$t/caches"
ln -s "/opt/modelops/lib/python3.11/site-packages/nvidia_pytriton.libs" "$r$t/lib"
for f in "$r$w"/backends/python/*; do
  name=$(basename "$f")
  [ "$name" = __pycache__ ] && continue
  ln -s "$w/backends/python/$name" "$r$t/backends/python/$name"
done
ln -s "$w/python_backend_stubs/3.11/triton_python_backend_stub" "$r$t/backends/python/triton_python_backend_stub"
