"""Reading handwritten lines on a photo: lines and candidate characters (:mod:`.segmentation`), then the
model's best reading of them (:mod:`.line_reader`). ``python -m emnist_dist.read`` is the command.
"""
