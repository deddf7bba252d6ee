"""Training: ``python -m emnist_dist.train --config FILE [--section.key VALUE ...]``, or from Python::

    from emnist_dist.config import parse_config
    from emnist_dist.train import Trainer

    final = Trainer(parse_config(["--config", "configs/quickstart.yaml"])).fit()

:mod:`.trainer` is the run, top to bottom (:class:`Trainer`; it raises :class:`Diverged` and
:class:`Preempted`, from :mod:`.outcomes`); :mod:`.components` builds its parts from the config and holds the transform
order; each component sits in its own module: :mod:`.batches` (device-resident, rank-sharded
batches), :mod:`.augment` (random affine), :mod:`.mixup` (MixUp/CutMix), :mod:`.loss`
(class-weighted KL), :mod:`.optim` (optimizer and schedule), :mod:`.network` (the timm model),
:mod:`.checkpoint` (safe, verified, atomically published resumable state), :mod:`.resume` (the checkpoint a
run continues from), :mod:`.run_folder` (:class:`RunFolder`: the files of ``output_dir``, one run per folder,
bound to its settings),
:mod:`.agreement` (one decision, one error line for all processes), :mod:`.callbacks` (observing a run and
stopping it: :class:`TrainerCallback`), :mod:`.tracking`, :mod:`.distributed`
(the Accelerator, DDP helpers), :mod:`.stop_signal` (SIGTERM/SIGUSR1, shared with the audit) and
:mod:`.throughput`; ``__main__`` is the command line and its exit codes.
"""


from importlib import import_module

_HOMES = {"Diverged": "outcomes", "Preempted": "outcomes", "Trainer": "trainer", "RunFolder": "run_folder",
          "RunStopped": "callbacks", "TrainerCallback": "callbacks", "ValidationEvent": "callbacks"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    # First use imports the module (PEP 562): a reader of run folders (reports.run_plots, the plot
    # command) imports run_folder without the trainer and everything it pulls in.
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
