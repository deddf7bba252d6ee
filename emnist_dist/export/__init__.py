"""Exporting a model folder to other runtimes: ONNX with a parity check (:mod:`.onnx_conversion`).
``python -m emnist_dist.onnx_export`` is the command.
"""
