"""``phgmm experiment``: the paper's comparisons and ablations as resumable folders of runs."""

from __future__ import annotations

import argparse

from .options import add_no_progress, add_set, add_threads, threads_override

DESCRIPTION = """\
Run the paper's experiments from an experiment file (see `phgmm configs`: experiments/*):
  compare   every listed model on the same data, budget and loss (Tables 1-2, Fig. 7, Fig. 10)
  ablation  K in {1,2,4,8,12,16} with and without g, and PHGMM's parts (Fig. 6)
  latent    the paper's recipe against the remedies for posterior collapse
  report    rebuild results.md / results.csv / figures from whatever runs have finished
Each run is a folder. A run whose metrics.json exists in results_dir is skipped; an unfinished run
resumes from its last.pt in output_dir. --only NAME,... picks runs, e.g. to spread an experiment
over machines; commit results_dir (small files) to continue elsewhere without retraining.
"""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "experiment",
        help="run a comparison, ablation or latent-use study, or rebuild its report",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kinds = p.add_subparsers(
        dest="kind", metavar="KIND", title="kinds", help="run `phgmm experiment KIND --help` for its options"
    )
    kinds.required = True
    for kind, text in (
        ("compare", "train and evaluate every listed model on the same budget"),
        ("ablation", "K with and without g, and PHGMM's parts"),
        ("latent", "the paper's recipe against the remedies for posterior collapse"),
    ):
        k = kinds.add_parser(kind, help=text, description=text)
        k.add_argument(
            "--config",
            required=True,
            metavar="FILE",
            help="experiment file, or a shipped one (e.g. experiments/compare_camvid)",
        )
        add_set(k, "every run's config (applied before each run's own overrides)")
        k.add_argument("--only", metavar="NAME,...", help="run only these runs (comma-separated names)")
        k.add_argument("--list", action="store_true", help="list the runs and whether each has finished, then exit")
        add_threads(k)
        add_no_progress(k)
        k.set_defaults(func=run)
    r = kinds.add_parser(
        "report",
        help="rebuild the tables and plots from finished runs",
        description="Rebuild results.md, results.csv and the figures of an experiment's "
        "results folder from the runs that have finished.",
    )
    r.add_argument("results_dir", metavar="DIR", help="the experiment's results_dir (holds experiment.json)")
    r.set_defaults(func=run_report)
    return p


def run(args: argparse.Namespace) -> int:
    from ..experiments import load_experiment, run_experiment

    exp = load_experiment(args.config, kind=args.kind)
    exp.overrides = [*exp.overrides, *args.set, *threads_override(args)]
    if args.list:
        for r in exp.runs:
            done = (exp.results_dir / r.name / "metrics.json").is_file()
            started = (exp.output_dir / r.name / "checkpoints" / "last.pt").is_file()
            state = "finished" if done else "started (will resume)" if started else "to run"
            print(f"{r.name:20s} {state:22s} {' '.join(r.overrides)}")
        return 0
    run_experiment(exp, only=args.only, progress=not args.no_progress)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from ..experiments import write_experiment_report

    print(f"report: {write_experiment_report(args.results_dir)}")
    return 0
