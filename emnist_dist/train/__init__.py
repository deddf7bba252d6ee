"""Training: ``python -m emnist_dist.train --config FILE [--section.key VALUE ...]``.

:mod:`.trainer` is the run, top to bottom; each component sits in its own module:
:mod:`.batches` (device-resident, rank-sharded batches), :mod:`.augment` (random affine),
:mod:`.mixup` (MixUp/CutMix), :mod:`.loss` (class-weighted KL), :mod:`.optim` (optimizer and
schedule), :mod:`.network` (the timm model), :mod:`.checkpoint` (safe, verified, atomically published
resumable state), :mod:`.run_folder` (one run per folder, bound to its settings), :mod:`.agreement` (one
decision, one error line for all processes) and :mod:`.tracking`.
"""
