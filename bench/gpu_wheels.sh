#!/usr/bin/env bash
# Download, into .whl/, the wheels that bench/gpu_bench.py needs on a GPU machine whose image
# lacks them (it has torch, accelerate, tokenizers, safetensors, hf-xet, fsspec, tqdm, pandas,
# pyarrow and matplotlib, but not trl, datasets, av or sqlite-utils, and an older transformers).
# PyAV, not decord, reads the videos there (tpo.video falls back to it): the wheels and the
# repository must travel in 64 MiB, and both readers give the same frames on the synthetic
# videos. Run from the repository root on a machine that reaches PyPI; the versions are
# requirements.txt's. Then, on the GPU machine (the device tool: carry [".whl"], timeout 600):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl \
#     && export PYTHONPATH=/tmp/site:$PWD && python3 bench/gpu_bench.py
# (num2words's docopt is left out: it has no wheel and only its command line uses it)
# (together ~53 MB; add .whl to .git/info/exclude so it never gets committed)
set -euo pipefail
mkdir -p .whl
grep -qxF '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
platforms=()
for n in 28 27 24 17 5; do platforms+=(--platform "manylinux_2_${n}_x86_64"); done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp "${platforms[@]}" -d .whl \
  transformers==5.24.0 huggingface-hub==2.4.0 trl==1.16.0 peft==0.21.2 datasets==5.2.0 \
  dill==0.4.1 multiprocess==0.70.19 sqlite-utils==4.2.1 sqlite-fts4==1.0.3 \
  click-default-group==1.2.4 av==18.1.0 num2words==0.5.14
du -sh .whl
