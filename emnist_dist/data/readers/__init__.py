"""Readers of the EMNIST sources."""
