#!/usr/bin/env bash
# Smoke benchmark for regression tracking: a tiny suite (32 hidden, 100 or 1000 steps over the 1 s
# window of the embedded synthetic set, seeds 0-3, one thread; the settings are below)
# run into a temporary directory, reported, and compared with .ci/baseline.json with --strict
# (a baseline entry without a comparable run fails too).
#
#   bash .ci/smoke.sh                    # exit 1 on a regression, a failed run or a baseline entry
#                                        # without a comparable run; 2 on bad input
#   bash .ci/smoke.sh --update-baseline  # rewrite .ci/baseline.json from this run (keeps its
#                                        # "tolerances" section); review and commit the file
#
# SMOKE_METHODS overrides the methods (default: bptt-snntorch,eventprop; those not registered are
# left out with a note). PY overrides the interpreter (default .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PY:-.venv/bin/python}
METHODS=${SMOKE_METHODS:-bptt-snntorch,eventprop}
BASELINE=.ci/baseline.json
if [ "$#" -gt 1 ] || { [ "$#" -eq 1 ] && [ "$1" != "--update-baseline" ]; }; then
  echo "usage: bash .ci/smoke.sh [--update-baseline]" >&2
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export SNN_BENCH_DATA="$work/data"  # the synthetic set is generated deterministically here

methods=$("$PY" - "$METHODS" <<'PYEOF'
import sys
from bench import registry
wanted = [m for m in sys.argv[1].split(",") if m]
for name in wanted:
    if name not in registry.METHODS:
        print(f"note: {name} is not registered; left out of the smoke suite", file=sys.stderr)
print(",".join(m for m in wanted if m in registry.METHODS))
PYEOF
)
if [ -z "$methods" ]; then
  echo "error: none of $METHODS is registered" >&2
  exit 2
fi

# Shared by every method: a small network, 100 steps over the 1 s window (EventProp: 1000), batch
# 16, learning rate 0.02. Chosen so that the accuracy holds across machines: on another CPU
# (another instruction set: other rounding) a run moves like a run of another seed, so the check
# allows max(4 points, 2 x the seed std of the baseline's own four runs). bptt-snntorch, with the
# plain `sum` readout, settles within 2 epochs at the level per-channel spike counts allow on this
# set (about 0.5; its seeds agree within a test sample or two). EventProp runs `sum_exp` for 5
# epochs at 1000 steps of 1 ms (its epoch costs about the same as at 10 ms): at 10 ms its grid-mode
# hidden gradients are far from the exact ones (docs/eventprop.md, section 9) and training there is
# erratic, so that a change of floating-point summation order alone moved its four seeds' spread
# from 3.4 to 9.8 points. Both allowances stay below 10 points: a rerun passes, a 10-point drop
# fails (tests/test_compare.py checks both). The comparison runs with --any-cpu. Peak training
# memory is allowed 32 MiB either way (the baseline's "tolerances"): these runs peak at 14-55 MiB,
# and code pages the process first touches while training count in the resident size, so the same
# commit measured 13.8 MiB in one install of the environment and 26.9 MiB in another on the same
# machine; a fraction of a figure this small cannot hold across installs.
SEEDS=0,1,2,3
COMMON=(--set hidden=32 --set steps=100 --set dt_ms=10 --set batch_size=16 --set lr=0.02)
declare -A EPOCHS=([bptt-snntorch]=2 [eventprop]=5)
declare -A EXTRA=(
  [bptt-snntorch]="--set loss=sum"
  [eventprop]="--set loss=sum_exp --set steps=1000 --set dt_ms=1"
)

echo "smoke suite: $methods"
suite_status=0
IFS=, read -r -a method_list <<< "$methods"
for method in "${method_list[@]}"; do
  read -r -a extra <<< "${EXTRA[$method]:-}"
  status=0
  "$PY" -m bench suite --methods "$method" --datasets synthetic --seeds "$SEEDS" \
    --epochs "${EPOCHS[$method]:-2}" \
    "${COMMON[@]}" "${extra[@]}" --threads 1 --time-limit 900 --out "$work/runs" || status=$?
  if [ "$status" -eq 2 ]; then
    exit 2
  fi
  if [ "$status" -ne 0 ]; then
    suite_status=$status
  fi
done

"$PY" -m bench report --runs "$work/runs" --out "$work/report"
cat "$work/report/report.md"

if [ "${1:-}" = "--update-baseline" ]; then
  "$PY" -m bench compare --baseline "$BASELINE" --runs "$work/runs" --update-baseline
  exit "$suite_status"
fi

compare_status=0
"$PY" -m bench compare --baseline "$BASELINE" --runs "$work/runs" --strict --any-cpu \
  || compare_status=$?
if [ "$compare_status" -ne 0 ]; then
  exit "$compare_status"
fi
exit "$suite_status"
