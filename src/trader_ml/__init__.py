"""trader-ml: train, version and serve the regime and health models of a personal investment bot."""

# The one home of the version (pyproject.toml reads it): a literal, because importlib.metadata
# costs a Lambda cold start tens of milliseconds to look it up.
__version__ = "0.1.0"
