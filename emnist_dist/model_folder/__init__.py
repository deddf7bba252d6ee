"""The model folder and predicting with it: the folder itself (:mod:`.artifact`), the framing of the
training glyphs it records (:mod:`.framing`), a user's image turned into a glyph in that framing
(:mod:`.preprocess`) and the model's predictions (:mod:`.predictor`). Nothing here imports training code.
"""
