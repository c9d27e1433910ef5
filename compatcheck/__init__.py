"""compatcheck: is rolling back from NEW to OLD safe, and if not, exactly what breaks?

The public Python API is :func:`compatcheck.engine.evaluate`; the CLI and the HTTP hook call it.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
