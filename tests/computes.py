"""What each Databricks compute ships, for the packages the generated project's requirements touch: a small data
table with its sources, read by tests/test_dependencies.py. Update it with the runtime in templates/bundle.j2.

Versions are Databricks' own per-compute lists: the repository databricks/environments, which Databricks generates
from the "Installed Python libraries" of each release note (`<name>~=<version>` there is the release note's
`<name>==<version>`). The release notes' lists of the ML runtimes name only mlflow-skinny; that they ship the full
mlflow of the same version is the MLflow-Databricks Runtime compatibility matrix's and the runtime's (it carries the
full package's server dependencies: Flask, alembic, gunicorn, SQLAlchemy). A live cluster's `pip list` is the proof.
"""

from __future__ import annotations

from dataclasses import dataclass

ENVIRONMENTS = "https://github.com/databricks/environments/blob/main/python"
MLFLOW_MATRIX = (
    "https://docs.databricks.com/aws/en/release-notes/runtime/#mlflow-databricks-runtime-compatibility-matrix"
)


@dataclass(frozen=True)
class Compute:
    label: str
    python: str
    preinstalled: dict[str, str]  # distribution (canonical name) -> version
    source: str


DBR_17_3 = {
    "mlflow-skinny": "3.0.1",
    "databricks-sdk": "0.49.0",
    "pandas": "2.2.3",
    "scikit-learn": "1.6.1",
    "boto3": "1.36.2",
    "botocore": "1.36.3",
    "azure-storage-file-datalake": "12.17.0",
    "azure-core": "1.34.0",
    "google-cloud-storage": "3.1.0",
    "google-auth": "2.40.0",
}

# Keyed by what a job names: a serverless `environment_version` or a job cluster's `spark_version`. The template's
# choices (templates/bundle.j2), then the ML runtimes, kept to show the checks fail on them (mixed MLflow).
COMPUTES: dict[str, Compute] = {
    "5": Compute(
        "serverless environment 5",
        "3.12",
        {
            "mlflow-skinny": "3.8.1",
            "databricks-agents": "1.9.1",
            "databricks-sdk": "0.67.0",
            "pandas": "2.2.3",
            "scikit-learn": "1.6.1",
            "boto3": "1.40.45",
            "botocore": "1.40.45",
            "azure-storage-file-datalake": "12.22.0",
            "azure-core": "1.37.0",
            "google-cloud-storage": "3.7.0",
            "google-auth": "2.47.0",
        },
        f"{ENVIRONMENTS}/serverless/serverless-v5/constraints.txt",
    ),
    "17.3.x-scala2.13": Compute(
        "Databricks Runtime 17.3 LTS", "3.12", DBR_17_3, f"{ENVIRONMENTS}/dbr/17.3.x-scala2.13/constraints.txt"
    ),
    "17.3.x-cpu-ml-scala2.13": Compute(
        "Databricks Runtime 17.3 LTS ML",
        "3.12",
        {
            **DBR_17_3,
            "mlflow": "3.0.1",
            "azure-core": "1.38.0",
            "google-cloud-storage": "2.10.0",
            "google-auth": "2.40.3",
        },
        f"{ENVIRONMENTS}/dbr/17.3.x-cpu-ml-scala2.13/constraints.txt; {MLFLOW_MATRIX}",
    ),
    "18.x-cpu-ml-scala2.13": Compute(
        "Databricks Runtime 18 LTS ML",
        "3.12",
        {
            "mlflow": "3.8.1",
            "mlflow-skinny": "3.8.1",
            "databricks-agents": "1.9.1",
            "databricks-sdk": "0.67.0",
            "pandas": "2.2.3",
            "scikit-learn": "1.6.1",
            "boto3": "1.40.45",
            "botocore": "1.40.45",
            "azure-storage-file-datalake": "12.22.0",
            "azure-core": "1.36.0",
            "google-cloud-storage": "3.2.0",
            "google-auth": "2.43.0",
        },
        f"{ENVIRONMENTS}/dbr/18.x-cpu-ml-scala2.13/constraints.txt; {MLFLOW_MATRIX}",
    ),
}

# MlflowClient.copy_model_version from a catalog reached from another workspace fails with RESOURCE_DOES_NOT_EXIST:
# the UC registry store resolves the source's logged model in the destination workspace. mlflow/mlflow#21212 (in
# 3.11) cleared the model id but left Model.get_model_info() in get_feature_dependencies, which still does it;
# #22262 removed it in 3.12.0 (read in mlflow/store/_unity_catalog/registry/rest_store.py of both wheels). The
# releases Databricks ships (serverless 4, 17.3 LTS, serverless 5 and 18 LTS) and the last broken one:
COPY_ACROSS_WORKSPACES_BROKEN = ("2.22.0", "3.0.1", "3.8.1", "3.11.1")
COPY_ACROSS_WORKSPACES_FIXED = "3.12.0"

# The full mlflow pins the mlflow-skinny of its own version (mlflow/mlflow#12426, MLflow 2.15 and later: its
# requirements list `mlflow-skinny==<version>`); both ship the `mlflow` package's files.
MLFLOW_DISTRIBUTIONS = ("mlflow", "mlflow-skinny")

# What MLflow's Unity Catalog registry imports to move model artifacts, per storage credential type
# (mlflow/utils/_unity_catalog_utils.py, _get_artifact_repo_from_storage_info): module -> distribution.
UC_STORAGE_IMPORTS: dict[str, dict[str, str]] = {
    "aws": {"boto3": "boto3", "botocore": "botocore"},
    "azure": {"azure.storage.filedatalake": "azure-storage-file-datalake", "azure.core": "azure-core"},
    "gcp": {"google.cloud.storage": "google-cloud-storage", "google.oauth2": "google-auth"},
}
