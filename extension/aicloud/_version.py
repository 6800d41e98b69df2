"""The version of aicloud."""

__version__ = "0.1.0"
