"""Charter: a policy-as-code governance engine for AI performance management."""

from .errors import CharterError, Diagnostic, Location

__version__ = "0.1.0"

__all__ = ["CharterError", "Diagnostic", "Location", "__version__"]
