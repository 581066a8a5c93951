"""Train, validate, deploy and serve the taxi fare model on Databricks.

Two layers: a module per job step (a console script, see ``[project.scripts]`` in pyproject.toml) on top
of the modules they share (tables, features, metrics, registry, command line, runtime, hand-off); a step
never imports another step (tests/unit/test_layers.py).
The package root imports nothing heavy on purpose: the logged model carries this package as code,
and loading it must not pull in Spark, the Databricks SDK or the MLflow client.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version(__name__)
except PackageNotFoundError:  # running from a source checkout that was not installed
    __version__ = "0.0.0"
