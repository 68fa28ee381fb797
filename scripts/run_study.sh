#!/usr/bin/env bash
# Runs an experiment file run by run, one process per call, and commits each finished run's small
# files (metrics.json, history.json, config.yaml, plots and the report; never checkpoints):
#   nohup scripts/run_study.sh src/phgmm/configs/experiments/budget_camvid.yaml > runs/budget-1.log 2>&1 &
# Start one copy per core: each takes the first run of the file that has not finished and that no
# other copy holds (a lock per run under runs/locks/), so the order can change while they run.
# An interrupted run resumes from its last.pt. Checkpoints live in $STUDY_RUNS/<study> (default: a
# folder beside the clone), linked from the experiment's output_dir, so that a run longer than one
# session resumes in the next one on the same machine. ONLY=a,b limits the runs; WAIT_PID=N first
# waits for process N. The code is a snapshot of the committed tree (git archive HEAD src) taken
# at the start of every run, so uncommitted edits never reach a run; STUDY_SNAPSHOT=0 uses the
# installed package instead. With each finished run it also commits the study's summarize.py output and
# the doc pages' generated figures (make docs), where those pages have no uncommitted edits.
set -u
EXP=$(readlink -f "${1:?usage: scripts/run_study.sh EXPERIMENT.yaml}")
cd "$(dirname "$0")/.."
PY=.venv/bin/python
read -r KIND RES OUTDIR < <($PY -c "import sys,yaml; d=yaml.safe_load(open(sys.argv[1])); \
print(d['kind'], d['results_dir'], d.get('output_dir') or 'runs/experiments/' + sys.argv[2])" "$EXP" "$(basename "$EXP" .yaml)")
STUDY=$(basename "$EXP" .yaml)
# a shipped experiment file is named as `--config` takes it (experiments/NAME), so that the report's
# command is one a user can type, and the run reads the snapshot's copy of the file
CONFIG=$EXP
case "$EXP" in "$(pwd -P)/src/phgmm/configs/"*) CONFIG=${EXP#"$(pwd -P)/src/phgmm/configs/"}; CONFIG=${CONFIG%.yaml} ;; esac
STUDY_RUNS=${STUDY_RUNS:-$(readlink -f ..)/phgmm-runs}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} PYTHONUNBUFFERED=1
mkdir -p runs/locks "$STUDY_RUNS/$STUDY" "$(dirname "$OUTDIR")"
[ -e "$OUTDIR" ] || ln -s "$STUDY_RUNS/$STUDY" "$OUTDIR"
if [ -n "${WAIT_PID:-}" ]; then
  echo "waiting for process $WAIT_PID"; while kill -0 "$WAIT_PID" 2>/dev/null; do sleep 30; done
fi

refresh_pages() {   # the study's summary, and the doc pages' generated figures (only pages with no edits of yours)
  [ -f "$RES/summarize.py" ] && $PY "$RES/summarize.py" >/dev/null
  PAGES=""
  if git diff --quiet HEAD -- README.md docs/*.md; then
    $PY -m cogapp -r README.md docs/*.md >/dev/null 2>&1 && PAGES=$(git diff --name-only -- README.md docs/*.md)
  fi
}

commit_finished() {   # every finished run whose files are not committed yet
  for dir in "$RES"/*/; do
    run=$(basename "$dir")
    [ -f "$dir/metrics.json" ] || continue
    git ls-files --error-unmatch "$dir/metrics.json" >/dev/null 2>&1 && git diff --quiet HEAD -- "$dir" && continue
    refresh_pages
    for _ in $(seq 12); do
      # shellcheck disable=SC2086  # PAGES is a list of paths
      if [ ! -e .git/index.lock ] && git add "$dir" $(ls "$RES"/*.json "$RES"/*.yaml "$RES"/*.md "$RES"/*.csv \
          "$RES"/*.png 2>/dev/null) $PAGES && git commit -q -m "$STUDY: run $run finished (small result files)" -- "$RES" $PAGES; then
        echo "[$run] $(date -u +%FT%TZ) committed"; break
      fi
      sleep 5
    done
  done
}

next_run() {   # the first run that has not finished and that no other copy holds; its lock on fd 9
  local name
  for name in $($PY -c "import sys,yaml; [print(r['name']) for r in yaml.safe_load(open(sys.argv[1]))['runs']]" "$EXP"); do
    [ -f "$RES/$name/metrics.json" ] && continue
    [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]] && continue
    exec 9>"runs/locks/$STUDY.$name.lock"
    if flock -n 9; then echo "$name"; return; fi
    exec 9>&-
  done
}

while true; do
  commit_finished
  run=$(next_run)
  [ -z "$run" ] && break
  exec 9>"runs/locks/$STUDY.$run.lock"; flock -n 9 || continue     # the subshell's lock ended with it
  snap=""
  if [ "${STUDY_SNAPSHOT:-1}" = 1 ]; then
    snap=$(mktemp -d "/tmp/${STUDY}_src.XXXX")
    git archive HEAD src | tar -x -C "$snap"
  fi
  echo "[$run] $(date -u +%FT%TZ) start; code $(git rev-parse --short HEAD)${snap:+ (snapshot $snap)}"
  PYTHONPATH="${snap:+$snap/src}" $PY -m phgmm experiment "$KIND" --config "$CONFIG" --only "$run" --no-progress \
    --threads "$OMP_NUM_THREADS"
  rc=$?
  [ -n "$snap" ] && rm -rf "$snap"
  exec 9>&-
  if [ ! -f "$RES/$run/metrics.json" ]; then
    echo "[$run] $(date -u +%FT%TZ) did not finish (exit $rc); stopping"; break
  fi
done
commit_finished
echo "study stopped $(date -u +%FT%TZ)"
