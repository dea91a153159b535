#!/usr/bin/env bash
# The trainer end to end on a GPU, as a user runs it there: `fpt run`'s demo (PT and FPT_CR on the toy task) with the
# GPU defaults (compiled blocks replayed as CUDA graphs), the same with --no-fast, and an FPT_CR run killed (SIGTERM)
# after its first checkpoint past KILL_AT steps and run again to resume. Writes OUT_DIR/check.log (the runs' output and
# a summary of each run folder) and OUT_DIR/runs.tgz (the run folders without checkpoints).
#
#   bash benchmarks/gpu_trainer_check.sh OUT_DIR [fpt run flags...]   # a few minutes on an H200
#   KILL_AT=100 bash benchmarks/gpu_trainer_check.sh /tmp/x --steps 300 --device cpu   # its logic on a CPU (PYTHON: the
#                                                      # interpreter, python3 by default; CHECKPOINT_EVERY: 100)
set -u -o pipefail
out=${1:?usage: gpu_trainer_check.sh OUT_DIR [fpt run flags...]}; shift
mkdir -p "$out"; out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
KILL_AT=${KILL_AT:-1000}
EVERY=${CHECKPOINT_EVERY:-100}   # the killed run's checkpoint interval
PY=${PYTHON:-python3}   # the interpreter that holds torch
runs=$(mktemp -d)
log=$out/check.log
fpt() { $PY -c 'import sys; from fpt_nb.cli import main; sys.exit(main())' "$@" 2>&1 | grep --line-buffered -v -i 'warn\|^$'; }
say() { echo "$@" | tee -a "$log"; }

for mode in fast no-fast; do
    t=$SECONDS
    say "== fpt run --$mode (the demo: PT and FPT_CR on toy) $*"
    if [ $mode = fast ]; then fpt run --out-dir "$runs/$mode" --no-progress "$@" | tee -a "$log"
    else fpt run --out-dir "$runs/$mode" --no-fast --no-progress "$@" | tee -a "$log"; fi
    say "   exit $?, $((SECONDS - t)) s"
done

say "== fpt run --method fpt_cr, killed after its first checkpoint past step $KILL_AT, then run again $*"
kill_dir=$runs/killed
$PY -c 'import sys; from fpt_nb.cli import main; sys.exit(main())' run --method fpt_cr --out-dir "$kill_dir" \
    --checkpoint-every $EVERY --no-progress "$@" > "$runs/killed.out" 2>&1 &
pid=$!
while kill -0 $pid 2>/dev/null; do
    last=$(ls "$kill_dir/checkpoints" 2>/dev/null | sed -n 's/^step-0*\([0-9][0-9]*\)$/\1/p' | sort -n | tail -1)
    if [ -n "$last" ] && [ "$last" -ge "$KILL_AT" ]; then kill -TERM $pid; say "   SIGTERM at checkpoint $last"; break; fi
    sleep 0.5
done
wait $pid; say "   killed run: exit $?"; grep -v -i 'warn\|^$' "$runs/killed.out" | tail -3 | tee -a "$log"
fpt run --method fpt_cr --out-dir "$kill_dir" --checkpoint-every $EVERY --no-progress "$@" | tee -a "$log"
say "   resumed run: exit $?"

$PY - "$runs" <<'EOF' | tee -a "$log"
import json, sys
from pathlib import Path
for s in sorted(Path(sys.argv[1]).rglob('summary.json')):
    r, c = json.loads(s.read_text()), json.loads((s.parent/'config.json').read_text())
    fp = c.get('fingerprint', {})
    print(f"{s.parent.relative_to(sys.argv[1])}: device {r['device']}, steps {r['steps']}, {r['train_seconds']:.1f} s training "
          f"({1e3 * r['train_seconds'] / max(r['steps'], 1):.1f} ms a step, evaluations included), best {r['best']['value']} "
          f"at step {r['best']['step']}, final {r['final_metrics'].get(r['best']['metric'])}; fast {fp.get('fast')}, compile "
          f"{fp.get('compile')}, precision {fp.get('precision')}; resumed at {r['resumed_at']}, resumed with {c.get('resumed_with', [])}; "
          f"stopped {r['stopped']}; torch {r['versions'].get('torch')}, transformers {r['versions'].get('transformers')}")
EOF
tar czf "$out/runs.tgz" --exclude=checkpoints -C "$runs" .
say "wrote $log and $out/runs.tgz"
