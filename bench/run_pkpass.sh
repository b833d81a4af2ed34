#!/usr/bin/env bash
# Time walletsvc's .pkpass production beside the PKCS7-sign-only reference and the floor of
# the shared pkpass bench, in the same run, each process pinned to one CPU, one at a time.
#
#   bash bench/run_pkpass.sh                  # from the project root
#   RUNS=5 N=5000 bash bench/run_pkpass.sh
#   PEERS=1 PEER_RUNS=1 SLOW_N=200 bash bench/run_pkpass.sh   # the shared run.sh first
#
# Env knobs:
#   N         passes per timed loop (walletsvc, floor, sign-only reference)       [2000]
#   RUNS      rounds; every process runs once per round, rounds back to back     [3]
#   WARMUP    untimed passes at the start of each process                         [50]
#   PIN_CPU   CPU every measured process is pinned to (taskset); empty = no pin   [1]
#   VARIANTS  walletsvc variants to time, see bench/pkpass_walletsvc.py
#                                                    [sign model renderer package]
#   DISK      1 = also time the model variant writing each pass to a file        [1]
#   PEERS     1 = run the shared run.sh (passkit-generator, py-pkpass, ...) first [0]
#   PEER_RUNS, SLOW_N   its RUNS and SLOW_N when PEERS=1                          [1, 200]
#   PEER_RESULTS  an existing shared out/results.jsonl to quote instead
#   VERIFY_SAMPLE  files checked per output directory by the shared verify.py    [25]
#   OUT       where results and passes go (git-ignored)             [bench/out/pkpass]
#   SHARED    the shared bench                             [../shared/bench/pkpass]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
N="${N:-2000}"; RUNS="${RUNS:-3}"; WARMUP="${WARMUP:-50}"; PIN_CPU="${PIN_CPU-1}"
VARIANTS="${VARIANTS:-sign model renderer package}"; DISK="${DISK:-1}"
PEERS="${PEERS:-0}"; PEER_RUNS="${PEER_RUNS:-1}"; SLOW_N="${SLOW_N:-200}"
VERIFY_SAMPLE="${VERIFY_SAMPLE:-25}"
OUT="$(mkdir -p "${OUT:-bench/out/pkpass}" && cd "${OUT:-bench/out/pkpass}" && pwd)"
SHARED="$(cd "${SHARED:-$ROOT/../shared/bench/pkpass}" && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
PIN=(); if [[ -n "$PIN_CPU" ]] && command -v taskset >/dev/null; then PIN=(taskset -c "$PIN_CPU"); fi
RES="$OUT/results.jsonl"; CMDS="$OUT/commands.txt"; LOAD="$OUT/loadavg.txt"

# The shared bench's dev certificates and pass model (idempotent; they stay in its folder).
bash "$SHARED/scripts/make_certs.sh" >/dev/null
python3 "$SHARED/scripts/make_model.py" >/dev/null

peer_results="${PEER_RESULTS:-}"
if [[ "$PEERS" == 1 ]]; then
  echo "== shared run.sh (RUNS=$PEER_RUNS N=$N SLOW_N=$SLOW_N WARMUP=$WARMUP) =="
  (cd "$SHARED" && RUNS="$PEER_RUNS" N="$N" SLOW_N="$SLOW_N" WARMUP="$WARMUP" PIN_CPU="$PIN_CPU" \
    REPORT="$OUT/shared-report.md" bash run.sh)
  cp "$SHARED/out/results.jsonl" "$OUT/shared-results.jsonl"
  peer_results="$OUT/shared-results.jsonl"
fi

rm -rf "$OUT"/walletsvc-* "$OUT"/floor-*; : > "$RES"; : > "$CMDS"; : > "$LOAD"
"$PY" - "$N" "$RUNS" "$WARMUP" "$PIN_CPU" > "$OUT/env.json" <<'PYEOF'
import json, os, platform, sys
from importlib.metadata import version
from cryptography.hazmat.backends.openssl import backend
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
print(json.dumps({
    "cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
    "python": platform.python_version(), "walletsvc": version("walletsvc"),
    "cryptography": version("cryptography"), "openssl": backend.openssl_version_text(),
    "N": sys.argv[1], "RUNS": sys.argv[2], "WARMUP": sys.argv[3], "PIN_CPU": sys.argv[4],
}))
PYEOF
{ date -u +%Y-%m-%dT%H:%M:%SZ; git rev-parse --short HEAD 2>/dev/null || true; sha1sum walletsvc/apple/pkpass.py; } >> "$OUT/env.json"

run() {  # run CMD... pinned; record it; tag its JSON lines with the round
  echo "${PIN[*]} $*" >> "$CMDS"
  local o
  o="$("${PIN[@]}" "$@")" || { echo "FAILED: $*" >&2; exit 1; }
  printf '%s\n' "$o" | "$PY" "$SHARED/scripts/tag.py" "$ROUND" "$RES"
}

for ROUND in $(seq 1 "$RUNS"); do
  echo "== round $ROUND/$RUNS =="
  echo "round $ROUND start $(cat /proc/loadavg)" >> "$LOAD"
  # The shared scripts run with walletsvc's interpreter, so the same cryptography and OpenSSL
  # build is on both sides of every ratio.
  run "$PY" "$SHARED/py/ref_sign.py" --n "$N" --n-slow 5
  for variant in $VARIANTS; do
    run "$PY" bench/pkpass_walletsvc.py run --variant "$variant" --mode mem --n "$N" \
      --warmup "$WARMUP" --out "$OUT" --shared "$SHARED"
  done
  run "$PY" "$SHARED/py/bench_floor.py" --n "$N" --warmup "$WARMUP" --mode mem --key plain \
    --out "$OUT/floor-plain-mem"
  if [[ "$DISK" == 1 ]]; then  # both write into directories emptied before the run
    rm -rf "$OUT/floor-plain-disk"
    run "$PY" bench/pkpass_walletsvc.py run --variant model --mode disk --n "$N" \
      --warmup "$WARMUP" --out "$OUT" --shared "$SHARED"
    run "$PY" "$SHARED/py/bench_floor.py" --n "$N" --warmup "$WARMUP" --mode disk --key plain \
      --out "$OUT/floor-plain-disk"
  fi
  echo "round $ROUND end   $(cat /proc/loadavg)" >> "$LOAD"
done

echo "== verify =="
vrc=0
dirs=("$OUT"/walletsvc-*-mem/ "$OUT"/floor-plain-mem/)
[[ "$DISK" == 1 ]] && dirs+=("$OUT"/walletsvc-model-disk/ "$OUT"/floor-plain-disk/)
"$PY" "$SHARED/py/verify.py" --sample "$VERIFY_SAMPLE" "${dirs[@]}" > "$OUT/verify.jsonl" || vrc=$?
for f in "$OUT"/walletsvc-*-mem/_last_in_memory.pkpass; do
  unzip -tq "$f" >/dev/null || { echo "unzip -t failed: $f" >&2; vrc=1; }
done
echo "verify exit code: $vrc (shared verify.py and unzip -t)" | tee -a "$CMDS"

SUMMARY=("$PY" bench/pkpass_walletsvc.py summarize "$RES" --verify "$OUT/verify.jsonl")
[[ -n "$peer_results" ]] && SUMMARY+=(--peers "$peer_results")
"${SUMMARY[@]}" > "$OUT/summary.md"
echo; cat "$OUT/summary.md"; echo
echo "load average per round:"; cat "$LOAD"
echo "results: $RES, summary: $OUT/summary.md"
exit "$vrc"
