#!/usr/bin/env bash
# Runs latent2_camvid one run per process, on one core, and commits each finished run's small files
# (metrics.json, history.json, config.yaml, tsne.png and the report; never checkpoints):
#   nohup docs/results/latent2_camvid/run_study.sh > runs/latent2_camvid.log 2>&1 &
# Before every run it re-reads the experiment file and takes its first unfinished run, so the order
# can change while it runs; a finished run is skipped, an interrupted one resumes from its last.pt
# (output_dir). One copy runs at a time (a lock in runs/). WAIT_PID=N first waits for process N.
# The code is a snapshot of the committed tree (git archive HEAD src) taken at the start of every
# run, so that uncommitted edits in the working tree never reach a run; STUDY_SNAPSHOT=0 uses the
# installed package instead.
set -u
cd "$(dirname "$0")/../../.."
EXP=${EXP:-src/phgmm/configs/experiments/latent2_camvid.yaml}
RES=$(.venv/bin/python -c "import sys,yaml; print(yaml.safe_load(open(sys.argv[1]))['results_dir'])" "$EXP")
PY=.venv/bin/python
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
mkdir -p runs
exec 9>"runs/$(basename "$EXP" .yaml).lock"
flock -n 9 || { echo "another run_study.sh holds runs/$(basename "$EXP" .yaml).lock"; exit 1; }
if [ -n "${WAIT_PID:-}" ]; then
  echo "waiting for process $WAIT_PID"; while kill -0 "$WAIT_PID" 2>/dev/null; do sleep 30; done
fi

commit_finished() {   # every finished run whose metrics.json is not committed yet
  for dir in "$RES"/*/; do
    run=$(basename "$dir")
    [ -f "$dir/metrics.json" ] || continue
    git diff --quiet HEAD -- "$dir" 2>/dev/null && git ls-files --error-unmatch "$dir/metrics.json" >/dev/null 2>&1 && continue
    for i in 1 2 3 4 5 6 7 8 9 10 11 12; do
      if [ ! -e .git/index.lock ] && git add "$dir" "$RES"/experiment.json "$RES"/experiment.yaml "$RES"/results.md \
          "$RES"/results.csv $(ls "$RES"/*.png 2>/dev/null) && \
          git commit -q -m "$(basename "$RES"): run $run finished (small result files)" -- "$RES"; then
        echo "[$run] $(date -u +%FT%TZ) committed"; break
      fi
      sleep 5
    done
  done
}

reevaluate() {   # finished runs measured before evaluate had the fair latent-use measures
  [ -f "$RES/reevaluate.py" ] || return 0     # a study measured with them from the start has none
  local snap=""
  if [ "${STUDY_SNAPSHOT:-1}" = 1 ]; then snap=$(mktemp -d /tmp/latent2_src.XXXX); git archive HEAD src | tar -x -C "$snap"; fi
  PYTHONPATH="${snap:+$snap/src}" $PY "$RES/reevaluate.py" && \
    PYTHONPATH="${snap:+$snap/src}" $PY -m phgmm experiment report "$RES" >/dev/null
  [ -n "$snap" ] && rm -rf "$snap"
}

while true; do
  commit_finished
  reevaluate
  commit_finished
  run=$($PY - "$EXP" "$RES" <<'PY'
import os, sys, yaml
exp, res = sys.argv[1:3]
todo = [r["name"] for r in yaml.safe_load(open(exp))["runs"] if not os.path.isfile(f"{res}/{r['name']}/metrics.json")]
print(todo[0] if todo else "")
PY
)
  [ -z "$run" ] && break
  snap=""
  if [ "${STUDY_SNAPSHOT:-1}" = 1 ]; then
    snap=$(mktemp -d /tmp/latent2_src.XXXX)
    git archive HEAD src | tar -x -C "$snap"
  fi
  echo "[$run] $(date -u +%FT%TZ) start; code $(git rev-parse --short HEAD)${snap:+ (snapshot $snap)}"
  PYTHONPATH="${snap:+$snap/src}" $PY -m phgmm experiment latent --config "$EXP" --only "$run" --no-progress
  rc=$?
  [ -n "$snap" ] && rm -rf "$snap"
  if [ ! -f "$RES/$run/metrics.json" ]; then
    echo "[$run] $(date -u +%FT%TZ) did not finish (exit $rc); stopping"; break
  fi
done
commit_finished
echo "study stopped $(date -u +%FT%TZ)"
