"""How a run ends other than by finishing: :class:`Diverged` and :class:`Preempted`, raised by
:meth:`~emnist_dist.train.trainer.Trainer.fit`; the command line maps them to exit codes 3 and 75."""


class Diverged(RuntimeError):
    """The training loss became NaN/inf; nothing non-finite was checkpointed or exported. ``step``: the first
    non-finite optimizer step."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class Preempted(Exception):
    """SIGTERM/SIGUSR1 stopped the run after it saved a checkpoint at ``step``: fit again (``resume=auto``)
    to continue."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step
