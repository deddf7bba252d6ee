"""The Gradio demo (:mod:`.app`): draw or upload a character or a line and see the model's answer;
also exported as a Hugging Face Space. ``python -m emnist_dist.demo`` is the command.
"""
