#!/usr/bin/env bash
# The whole run (`napari-aet run`, through bench_independent.py) on a lent GPU machine, in one
# call of the device tool, within its 10 minutes:
#   1. the run's defaults on the 256-px twinned dumbbell at the study's counts, alone: the end
#      to end time on the card, and the accuracy (the same settings as the CPU tables);
#   2. three processes side by side (their times are upper bounds):
#      a. the same series with the study's final GENFIRE (1000 iterations, oversampling 5,
#         DFT interpolation, radius 0.1), resumed from step 1 (the alignment reused), then the
#         same without the U-Net (the tomogram reused);
#      b. the polyhedron at the study's counts, the run's defaults then the study's GENFIRE;
#      c. the dumbbell at a third of the counts, likewise.
# The series are made beforehand with abTEM (`bench_independent.py --simulate-only
# --case-cache .devcache`) and travel with the tree; the packages the machine lacks travel as
# wheels in .whl (docs/benchmarks.md says which). Each step writes its rows to $OUT as soon as
# they are done; every step has a deadline so that the script ends before the call's limit.
#
# Locally (a rehearsal on the CPU): SIZE=96 DEVICE=cpu STUDY=20,2,dft,0.1 OUT=/tmp/x
#   PY=".venv/bin/python" bash benchmarks/device_end_to_end.sh
set -u
T0=$(date +%s)
SIZE=${SIZE:-256}
DEVICE=${DEVICE:-cuda}
STUDY=${STUDY:-1000,5,dft,0.1}
PY=${PY:-python3}
FIRST=${FIRST:-210}  # seconds for step 1
END=${END:-530}      # seconds after the start by which everything has ended
OUT=${OUT:-out/device}
WORK=${WORK:-/tmp/bench_device}
mkdir -p "$OUT" "$WORK"
CACHE=${CACHE:-.devcache}
left() {  # seconds to the deadline $1 (at least 1: `timeout 0` would mean no limit)
    local n=$(($1 - ($(date +%s) - T0)))
    echo $((n > 1 ? n : 1))
}
exec > >(tee -a "$OUT/device.log") 2>&1

if [ -d .whl ] && [ "$DEVICE" = cuda ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version \
    --format=csv
grep -E "MemTotal|MemAvailable" /proc/meminfo
echo "cores: $(nproc)"
${CHECK:-$PY} -c "import torch, freud, finufft, bm3d, dask.distributed, napari_aet.workflows; \
print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 1

B="$PY benchmarks/bench_independent.py --size $SIZE --case-cache $CACHE --device $DEVICE"
echo "== step 1: defaults, alone ($(left "$FIRST") s)"
timeout "$(left "$FIRST")" $B --out "$WORK/a" --cases pt-dumbbell/study --json "$OUT/1.json" \
    >"$WORK/1.txt" 2>&1
echo "step 1 rc $? at $(($(date +%s) - T0)) s"
grep -v "^{" "$WORK/1.txt" | tail -n 16

echo "== step 2: side by side ($(left "$END") s)"
pids=()  # a bare `wait` would also wait for the log's tee, which never ends
(
    timeout "$(left "$END")" $B --out "$WORK/a" --cases pt-dumbbell/study --recon "$STUDY" \
        --json "$OUT/2a.json" >"$WORK/2a.txt" 2>&1
    timeout "$(left "$END")" $B --out "$WORK/a" --cases pt-dumbbell/study --recon "$STUDY" \
        --weights none --json "$OUT/2a-none.json" >"$WORK/2a-none.txt" 2>&1
) &
pids+=($!)
for c in pt-polyhedron/study pt-dumbbell/third; do
    n=$(echo "$c" | tr / -)
    (
        timeout "$(left "$END")" $B --out "$WORK/$n" --cases "$c" --json "$OUT/$n.json" \
            >"$WORK/$n.txt" 2>&1
        timeout "$(left "$END")" $B --out "$WORK/$n" --cases "$c" --recon "$STUDY" \
            --json "$OUT/$n-study.json" >"$WORK/$n-study.txt" 2>&1
    ) &
    pids+=($!)
done
wait "${pids[@]}"
echo "step 2 ended at $(($(date +%s) - T0)) s"
for f in "$WORK"/2a.txt "$WORK"/2a-none.txt "$WORK"/pt-*.txt; do
    [ -f "$f" ] || continue
    echo "== $f"
    grep -E "^\| |Computed on|Traceback|Error" "$f" | grep -v -E "^\|---" | tail -n 12
done
