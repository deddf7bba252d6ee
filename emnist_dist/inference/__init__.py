"""Using a trained model: the model folder (:mod:`.artifact`), a user's image to a glyph
(:mod:`.preprocess`), :mod:`.predictor`, :mod:`.evaluation`, :mod:`.reports`, ONNX
(:mod:`.onnx_conversion`) and the Hub model card (:mod:`.card`). Nothing here imports training code.
"""
