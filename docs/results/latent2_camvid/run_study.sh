#!/usr/bin/env bash
# Runs latent2_camvid one run per process, in the experiment file's order, on one core, and commits
# each finished run's small files (metrics.json, history.json, config.yaml, tsne.png, the report;
# never checkpoints). Finished runs are skipped, an interrupted one resumes from its last.pt.
#   nohup docs/results/latent2_camvid/run_study.sh > runs/latent2_camvid.log 2>&1 &
# The code is a snapshot of the committed tree (git archive HEAD src) taken at the start of every run,
# so that the working tree's uncommitted edits by others never reach a run. Set STUDY_SNAPSHOT=0 to
# use the installed package instead.
set -u
cd "$(dirname "$0")/../../.."
EXP=src/phgmm/configs/experiments/latent2_camvid.yaml
RES=docs/results/latent2_camvid
PY=.venv/bin/python
export OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1
runs=$($PY - "$EXP" <<'PY'
import sys, yaml
print(" ".join(r["name"] for r in yaml.safe_load(open(sys.argv[1]))["runs"]))
PY
)
for run in $runs; do
  if [ -f "$RES/$run/metrics.json" ]; then echo "[$run] finished earlier"; continue; fi
  snap=""
  if [ "${STUDY_SNAPSHOT:-1}" = 1 ]; then
    snap=$(mktemp -d /tmp/latent2_src.XXXX)
    git archive HEAD src | tar -x -C "$snap"
    echo "[$run] $(date -u +%FT%TZ) code: $(git rev-parse --short HEAD) (snapshot $snap)"
  fi
  PYTHONPATH="${snap:+$snap/src}" $PY -m phgmm experiment latent --config "$EXP" --only "$run" --no-progress
  [ -n "$snap" ] && rm -rf "$snap"
  if [ -f "$RES/$run/metrics.json" ]; then
    for i in 1 2 3 4 5 6 7 8 9 10; do
      [ -e .git/index.lock ] && { sleep 5; continue; }
      git add "$RES/$run" "$RES/experiment.json" "$RES/experiment.yaml" "$RES/results.md" "$RES/results.csv" \
          $(ls "$RES"/*.png 2>/dev/null) && \
      git commit -q -m "latent2_camvid: run $run finished (small result files)" -- "$RES" && break
      sleep 5
    done
    echo "[$run] $(date -u +%FT%TZ) committed"
  else
    echo "[$run] $(date -u +%FT%TZ) did not finish; see the log above"
  fi
done
echo "study done $(date -u +%FT%TZ)"
