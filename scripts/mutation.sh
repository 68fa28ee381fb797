#!/usr/bin/env bash
# Mutation testing (mutmut 3) of one group of modules against the tests that cover it. Not in CI:
# a group takes minutes to hours on a small CPU. Each group runs in its own scratch copy of the
# tree (mutmut reads its settings from pyproject.toml, so the scratch copy gets a [tool.mutmut]
# section naming the group's files and tests; the repository's pyproject.toml is left as it is),
# and mutmut itself runs only the tests that call the mutated function.
#
#   scripts/mutation.sh GROUP            GROUP: classes report benchmark losses metrics heads hrnet
#   MUTMUT=/path/to/mutmut scripts/mutation.sh heads
#
# Writes docs/results/mutation/GROUP/{results.txt,stats.json,survivors.txt,survivors.md,command.txt}.
# A run stopped part-way keeps what it finished: COLLECT_ONLY=1 scripts/mutation.sh GROUP records it.
# Needs mutmut 3.8 (pip install mutmut==3.8.1) beside the project's dependencies.
set -euo pipefail
group=${1:?usage: scripts/mutation.sh GROUP}
repo=$(cd "$(dirname "$0")/.." && pwd)
mutmut=${MUTMUT:-mutmut}
children=${MAX_CHILDREN:-2}
select=()
case $group in
  classes)   mutate=(src/phgmm/data/classes.py)
             tests=(tests/test_data_classes.py tests/test_score_native_ids.py) ;;
  # report and benchmark: the fast tests only. test_experiments.py trains networks before it writes
  # a report, and test_benchmark.py's run_benchmark/CLI tests time every model: minutes per mutant on
  # a small CPU. run_benchmark's pipeline is reached instead by test_benchmark_pipeline.py (stand-in
  # networks and times, about a second) and timing.py/user.py by test_benchmark_timing.py (scripted
  # clocks). What only the slow tests reach shows up as "no tests".
  report)    mutate=(src/phgmm/experiments/report.py)
             tests=(tests/test_experiment_report_cells.py tests/test_experiment_report_text.py) ;;
  benchmark) mutate=("src/phgmm/benchmark/*")
             tests=(tests/test_benchmark.py tests/test_benchmark_pipeline.py tests/test_benchmark_timing.py
                    tests/test_roofline.py tests/test_opcount.py)
             select=(-k "not test_run_benchmark_tiny and not test_cli_with_config") ;;
  losses)    mutate=(src/phgmm/losses.py)
             tests=(tests/test_losses.py tests/test_recipes.py) ;;
  # metrics: the seven test_metrics_* files and test_latent_use (the swap partners', information
  # measures' and decoder sensitivity's own tests; about 12 s in all)
  metrics)   mutate=("src/phgmm/metrics/*")
             tests=(tests/test_metrics_boundary.py tests/test_metrics_calibration.py
                    tests/test_metrics_clustering.py tests/test_metrics_confusion.py tests/test_metrics_latent.py
                    tests/test_metrics_trimap.py tests/test_metrics_uncertainty.py tests/test_latent_use.py) ;;
  # heads: the wiring test's branch checks, not its overfits (seconds each, on every surviving mutant),
  # and the operator, layout and parameter-count tests of each head's own file; not the W48 forward
  # (two full-width HRNets built for one shape check)
  heads)     mutate=(src/phgmm/models/ccnet.py src/phgmm/models/danet.py src/phgmm/models/ocr.py
                     src/phgmm/models/ocnet.py src/phgmm/models/deeplabv2.py src/phgmm/models/auxiliary.py)
             tests=(tests/test_models_wiring.py tests/test_models_attention.py tests/test_models_ccnet.py
                    tests/test_models_hrnet.py tests/test_models_classic.py)
             select=(-k "not overfit and not w48_output") ;;
  hrnet)     mutate=(src/phgmm/models/hrnet.py)
             tests=(tests/test_models_wiring.py tests/test_models_hrnet.py) ;;
  *) echo "unknown group $group" >&2; exit 2 ;;
esac
scratch=${SCRATCH:-/tmp/phgmm-mutation}/$group
out=$repo/docs/results/mutation/$group
mkdir -p "$out"
if [ -z "${COLLECT_ONLY:-}" ]; then     # COLLECT_ONLY=1: record what a stopped run finished, no new run
rm -rf "$scratch" && mkdir -p "$scratch"
# configs/ is a link to src/phgmm/configs that tests read; copied as a folder so mutmut copies it on
cp -r "$repo/src" "$repo/tests" "$repo/benchmarks" "$scratch/"
cp -rL "$repo/configs" "$scratch/configs"
find "$scratch" -name __pycache__ -prune -exec rm -rf {} +
quote() { printf '"%s", ' "$@"; }
{ cat "$repo/pyproject.toml"
  echo
  echo "[tool.mutmut]"
  echo "source_paths = [\"src/\"]"
  echo "only_mutate = [$(quote "${mutate[@]}")]"
  echo "pytest_add_cli_args_test_selection = [$(quote "${tests[@]}" "${select[@]}")]"
  echo "pytest_add_cli_args = [\"-p\", \"no:cacheprovider\", \"-q\"]"
  echo "also_copy = [\"configs\", \"benchmarks\"]"
} > "$scratch/pyproject.toml"
cd "$scratch"
echo "mutmut run --max-children $children  # group $group: ${mutate[*]} against ${tests[*]}" > "$out/command.txt"
# one intra-op thread per child: the children share the CPU with each other
start=$(date +%s)
OMP_NUM_THREADS=1 PYTHONPATH= "$mutmut" run --max-children "$children" > "$out/run.log" 2>&1 || true
echo "wall seconds: $(( $(date +%s) - start ))" >> "$out/command.txt"
fi
cd "$scratch"
"$mutmut" results --all true > "$out/results.txt" 2>&1 || true
"$mutmut" export-cicd-stats > /dev/null 2>&1 && cp mutants/mutmut-cicd-stats.json "$out/stats.json" || true
grep -v -e ": killed$" -e ": not checked$" "$out/results.txt" | grep ":" > "$out/survivors.txt" || true
# one line per survivor: the changed line and why it survives
"${mutmut%/mutmut}/python" "$repo/scripts/mutation_survivors.py" < "$out/survivors.txt" > "$out/survivors.md" || true
tail -c 2000 "$out/run.log" | tr '\r' '\n' | tail -5
cat "$out/stats.json" 2>/dev/null || true
