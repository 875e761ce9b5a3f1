"""Rostra: large live audio conversations, self-hosted."""

__version__ = "0.1.0"
