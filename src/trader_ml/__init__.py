"""trader-ml: train, version and serve the regime and health models of a personal investment bot."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("trader-ml")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
