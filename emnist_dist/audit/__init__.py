"""Data-quality audit: ``python -m emnist_dist.audit --config FILE [--section.key VALUE ...]``.

:mod:`.pipeline` is the command; :mod:`.folds` trains the K fold models with the project's trainer
and scores each one's held-out part; :mod:`.dihedral` scores glyphs under the eight symmetries of the
square; :mod:`.scores` keeps the out-of-fold scores on disk; :mod:`.ranking` turns them into ranked
label issues (cleanlab) and pre-augmented glyphs; :mod:`.contact_sheet` draws the top of the list.
"""
