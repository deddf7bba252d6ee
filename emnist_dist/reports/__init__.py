"""Reports on a model: the test-set evaluation (:mod:`.evaluation`), its confusion tables and figures
(:mod:`.confusion`), a run's pictures (:mod:`.run_plots`) and the Hub model card (:mod:`.card`). The
commands are ``python -m emnist_dist.evaluate``, ``plot`` and ``model_card``.
"""
