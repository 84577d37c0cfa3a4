"""cardauth: smart-card authentication middleware for French health cards."""

__version__ = "0.1.0"
