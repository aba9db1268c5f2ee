"""The version, in one place (pyproject.toml reads it from here)."""

__version__ = "0.2.0"

#: the timm releases effzoo builds with (pyproject.toml's dependency says the same)
TIMM_SUPPORTED = ">=1.0.21,<1.1"
