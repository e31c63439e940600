"""The version of learnflux (its own module so that any floor may name it)."""

__version__ = "0.1.0"
