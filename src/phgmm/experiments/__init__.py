"""The paper's experiments as files: comparisons (Tables 1–2, Fig. 7, 10), ablations (Fig. 6) and
the latent-collapse study, each a folder of runs that can be resumed, split and reported.

>>> from phgmm.experiments import load_experiment, run_experiment
>>> exp = load_experiment("experiments/compare_camvid")     # a shipped experiment file
>>> run_experiment(exp, only="phgmm,fcn8s")                  # doctest: +SKIP
"""

from .plan import EXPERIMENT_KINDS, Experiment, RunSpec, load_experiment
from .report import write_experiment_report
from .runner import run_experiment

__all__ = ["EXPERIMENT_KINDS", "Experiment", "RunSpec", "load_experiment", "run_experiment", "write_experiment_report"]
