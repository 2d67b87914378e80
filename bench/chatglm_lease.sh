#!/bin/bash
# The ChatGLM GPU benchmark (bench/chatglm.py) as one short lease of a GPU machine: sections
# in priority order, each in its own process under a time limit, so a failure or the end of
# the lease costs only what had not run yet. Output: $OUT/log.txt (every result row as it
# comes) and one JSON file per section.
#
#   BUDGET=570 bash bench/chatglm_lease.sh                 # on the GPU machine, OUT set
#   OUT=/tmp/out PY=.venv/bin/python EXTRA=--tiny bash bench/chatglm_lease.sh   # CPU check
out=${OUT:-/tmp/chatglm-lease}; mkdir -p "$out"; log=$out/log.txt
PY=${PY:-python3}; start=$(date +%s); deadline=$((start + ${BUDGET:-540}))
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; git rev-parse HEAD
  $PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
} >>"$log" 2>&1

section() {  # name, seconds at most, then bench/chatglm.py's arguments
  local name=$1 cap=$2; shift 2
  local left=$((deadline - $(date +%s))); local limit=$((left < cap ? left : cap))
  if [ "$limit" -lt 30 ]; then echo "== $name skipped: ${left}s left" >>"$log"; return; fi
  echo "== $name (limit ${limit}s): $*" >>"$log"
  # shellcheck disable=SC2086 # EXTRA is a list of arguments
  timeout -k 5 "$limit" $PY bench/chatglm.py "$@" $EXTRA --json "$out/$name.json" >>"$log" 2>&1
  echo "== $name rc=$? at $(($(date +%s) - start))s" >>"$log"
}

# Transformers' rows of 2026-11-26 (H200) stand where this lease does not reach them; ours
# are re-measured after the decode step lost half its kernels. The target first: v1 at
# batch 64, where its step time goes, and whether another attention kernel or
# torch.compile shortens the step.
section v1-graphs 150 --versions v1 --runs graphs,profile
section v1-attention 90 --versions v1 --runs graphs-efficient,graphs-math,graphs-cudnn --batches 16,64 --max-batch 64
section v1-compile 120 --versions v1 --runs compile --batches 1,64 --max-batch 64
section v3-graphs 150 --versions v3 --runs graphs,profile --max-batch 1024
section hf-rest 100 --versions v1,v3 --runs hf --batches 16 --max-batch 1024
section int8 150 --versions v1,v3 --runs int8,int8-compile --batches 1,64 --max-batch 64
# ChatGLM3-6B at the largest batch that fits (about 4,900 rows on an H200), one call.
section v3-largest 240 --versions v3 --runs graphs --batches "" --once
grep -v '\.\.\.$' "$log"
