"""Using a trained model: the model folder (:mod:`.artifact`), the framing of its training glyphs
(:mod:`.framing`), a user's image to a glyph in that framing (:mod:`.preprocess`), :mod:`.predictor`,
:mod:`.evaluation`, :mod:`.reports`, a run's pictures (:mod:`.run_plots`), ONNX (:mod:`.onnx_conversion`)
and the Hub model card (:mod:`.card`). These are libraries: the commands that use them (argument
parsing, console output) are the entry modules ``emnist_dist.predict``, ``read``, ``evaluate``, ``plot``,
``onnx_export``, ``model_card`` and ``demo``. Nothing here imports training code.
"""
