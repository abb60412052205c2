"""The package version, read by the build (pyproject.toml) and saved with models."""

__version__ = "0.2.0.dev0"
