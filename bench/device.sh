#!/usr/bin/env bash
# The GPU figures, in one call on a lent CUDA machine (its python3 has torch, numpy, pyarrow; the rest comes
# as wheels). Prepare here first:
#   .venv/bin/python bench/quantize.py --sources 8 --save .gpuwork      # the quantize inputs, built with ffmpeg
#   pip download (python 3.12, manylinux) soundfile cffi pycparser webdataset braceexpand -d .whl
# then run this script there with .gpuwork and .whl carried. Outputs under $OUT (or ./device-out).
set -u
export PYTHONUNBUFFERED=1
out=${OUT:-device-out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "installing the carried wheels failed"; exit 1; }
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'cpus', __import__('os').cpu_count())"
command -v ffmpeg >/dev/null && echo "ffmpeg: $(command -v ffmpeg)" || echo "ffmpeg: none on this machine"
python3 bench/quantize.py --prepared .gpuwork --no-v1 --repeat 2 --gpu-batches 32,128 --gpu-load-threads 1,4,8 2>&1 \
  | grep -v "row/s\]" | tee "$out/quantize.txt"
for run in "tiny 64" "icode 64" "icode 256"; do
  set -- $run
  python3 bench/train.py --device cuda --preset $1 --batch-size $2 --workers 4 --threads 4 --batches 20 --repeat 2 \
    2>&1 | tail -4 | tee "$out/train_$1_$2.txt"
done
