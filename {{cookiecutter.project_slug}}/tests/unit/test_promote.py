from __future__ import annotations

import mlflow
import pytest

from {{ cookiecutter.__package_name }} import metrics, promote, train

SOURCE = "dev.taxi.fare"
TARGET = "staging.taxi.fare"
# The copy task's own parameters, as the staging target passes them.
COPY_ARGS = [
    "--source_catalog=dev",
    "--source_schema=taxi",
    "--catalog=staging",
    "--schema=taxi",
    "--model_name=fare",
]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3", promote.SourceVersion(version="3")),
        ("007", promote.SourceVersion(version="7")),
        ("champion", promote.SourceVersion(alias="champion")),
        ("Challenger", promote.SourceVersion(alias="challenger")),
    ],
)
def test_source_version_is_a_number_or_an_alias(value: str, expected: promote.SourceVersion) -> None:
    assert promote.SourceVersion.parse(value) == expected


@pytest.mark.parametrize("value", ["", "0", "1.2", "models:/x/1", "champion; rm -rf", "-1"])
def test_invalid_source_versions_are_rejected(value: str) -> None:
    with pytest.raises(ValueError, match="version number or an alias"):
        promote.SourceVersion.parse(value)


def test_promote_the_source_champion(fake_client) -> None:
    fake_client.add_version(SOURCE)
    champion = fake_client.add_version(SOURCE, tags={"model_validation_status": "PASSED"})
    fake_client.add_version(SOURCE)
    fake_client.aliases[SOURCE]["champion"] = champion
    fake_client.add_version(TARGET)  # the target already has history

    result = promote.promote(fake_client, source_name=SOURCE, target_name=TARGET, source_version="champion")

    assert result == promote.PromotionResult(SOURCE, "2", TARGET, "2", copied=True)
    assert ("copy", f"models:/{SOURCE}/2", TARGET) in fake_client.calls
    assert fake_client.versions[TARGET]["2"].tags["promoted_from"] == f"{SOURCE}/2"
    assert fake_client.aliases[TARGET] == {}  # validation and deployment move the aliases, not the copy


def test_promote_a_version_number(fake_client) -> None:
    for _ in range(3):
        fake_client.add_version(SOURCE)
    result = promote.promote(fake_client, source_name=SOURCE, target_name=TARGET, source_version="2")
    assert (result.source_version, result.target_version) == ("2", "1")
    assert fake_client.versions[TARGET]["1"].source == f"models:/{SOURCE}/2"


def test_missing_source_is_a_clear_error(fake_client) -> None:
    fake_client.add_version(SOURCE)
    with pytest.raises(LookupError, match=r"Cannot find version @champion of dev\.taxi\.fare"):
        promote.promote(fake_client, source_name=SOURCE, target_name=TARGET, source_version="champion")
    with pytest.raises(LookupError, match="Cannot find version 9"):
        promote.promote(fake_client, source_name=SOURCE, target_name=TARGET, source_version="9")
    assert not any(call[0] == "copy" for call in fake_client.calls)


def test_rerunning_a_finished_promotion_copies_nothing(fake_client) -> None:
    fake_client.add_version(SOURCE)
    first = promote.promote(fake_client, source_name=SOURCE, target_name=TARGET, source_version="1")
    fake_client.aliases[TARGET]["champion"] = first.target_version  # validated and deployed

    again = promote.promote(fake_client, source_name=SOURCE, target_name=TARGET, source_version="1")

    assert again.target_version == first.target_version
    assert not again.copied
    assert len(fake_client.versions[TARGET]) == 1


def test_promote_refuses_to_copy_a_model_onto_itself(fake_client) -> None:
    with pytest.raises(ValueError, match="same model"):
        promote.promote(fake_client, source_name=SOURCE, target_name=SOURCE, source_version="1")


def test_promote_entry_point_tags_the_copy_with_the_job_run(
    fake_client, monkeypatch: pytest.MonkeyPatch, mlflow_store: str
) -> None:
    fake_client.add_version(SOURCE)
    fake_client.aliases[SOURCE]["champion"] = "1"
    monkeypatch.setattr(promote.mlflow, "MlflowClient", lambda: fake_client)

    promote.main([*COPY_ARGS, "--job_run_id=31"])

    assert fake_client.versions[TARGET]["1"].tags["promoted_from"] == f"{SOURCE}/1"
    assert fake_client.versions[TARGET]["1"].tags["job_run_id"] == "31"
    with pytest.raises(SystemExit):
        promote.main(
            [
                *COPY_ARGS,
                "--source_version=1.5",
            ]
        )


def test_promote_entry_point_takes_the_version_from_the_pushed_down_job_parameter(
    fake_client, monkeypatch: pytest.MonkeyPatch, mlflow_store: str
) -> None:
    """The copy task has no source_version of its own: Databricks passes the job parameter
    ``source_version`` to it (and to every other task) as ``--source_version=<value>``."""
    fake_client.add_version(SOURCE)
    fake_client.add_version(SOURCE)
    fake_client.aliases[SOURCE]["champion"] = "1"
    monkeypatch.setattr(promote.mlflow, "MlflowClient", lambda: fake_client)

    promote.main(
        [
            *COPY_ARGS,
            "--source_version=2",  # the job parameter, as `bundle run --params "source_version=2"` sets it
            "--run_reason=manual",  # another job parameter: ignored
        ]
    )

    assert fake_client.versions[TARGET]["1"].tags["promoted_from"] == f"{SOURCE}/2"


def test_copy_through_a_real_registry_keeps_a_loadable_model(train_and_holdout, mlflow_store: str) -> None:
    train_df, holdout_df = train_and_holdout
    model = train.train_model(train_df, train.TrainingConfig(max_iter=30))
    mlflow.set_experiment("/unit/promote")
    with mlflow.start_run():
        source_version = train.log_and_register(
            model, train_df, registered_model_name=SOURCE, metrics={}, params={}
        )
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(SOURCE, "champion", source_version)

    result = promote.promote(client, source_name=SOURCE, target_name=TARGET, source_version="champion")

    assert result.copied
    copied = mlflow.pyfunc.load_model(f"models:/{TARGET}/{result.target_version}")
    assert metrics.evaluate(copied, holdout_df) == pytest.approx(metrics.evaluate(model, holdout_df))
    assert client.get_model_version(TARGET, result.target_version).tags["promoted_from"] == f"{SOURCE}/1"


def test_a_copy_loses_the_validation_tags_of_its_source(fake_client) -> None:
    """copy_model_version copies tags: without the reset a copy arrives PASSED, validated nowhere here."""
    fake_client.add_version(
        SOURCE, tags={"model_validation_status": "PASSED", "validation_rmse": "1.2", "team": "fares"}
    )

    result = promote.promote(
        fake_client, source_name=SOURCE, target_name=TARGET, source_version="1", job_run_id="9"
    )

    tags = fake_client.versions[TARGET][result.target_version].tags
    assert tags == {"team": "fares", "promoted_from": f"{SOURCE}/1", "job_run_id": "9"}
    assert fake_client.versions[SOURCE]["1"].tags["model_validation_status"] == "PASSED", "source unchanged"
