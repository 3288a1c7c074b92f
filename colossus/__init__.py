"""Colossus: train and serve a truth-seeking assistant, from a 2-core laptop to a GPU cluster."""

__version__ = "0.1.0"
