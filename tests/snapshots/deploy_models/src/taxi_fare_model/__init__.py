"""Train, validate, deploy and serve the taxi fare model on Databricks.

Each module is one job task with a console script (see ``[project.scripts]`` in pyproject.toml).
The package root imports nothing heavy on purpose: the logged model carries this package as code,
and loading it must not pull in Spark, the Databricks SDK or the MLflow client.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version(__name__)
except PackageNotFoundError:  # running from a source checkout that was not installed
    __version__ = "0.0.0"
