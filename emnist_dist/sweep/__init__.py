"""Hyperparameter sweeps with no server that survive preemption: ``python -m emnist_dist.sweep``.

A W&B sweep file is the search space (:mod:`.space`), an Optuna study in a journal file on the shared
filesystem is the state (:mod:`.study`: trials, leases, who runs what), each worker trains trials in its
own process with ``Trainer(cfg).fit()`` (:mod:`.worker`; a pruning callback reports each validation),
and :mod:`.results` writes ``trials.csv``, ``best.yaml`` and pictures. ``__main__`` is the command.
"""

from .space import SearchSpace, read_space
from .study import StudyFolder
from .worker import Sweep, run_worker

__all__ = ["SearchSpace", "StudyFolder", "Sweep", "read_space", "run_worker"]
