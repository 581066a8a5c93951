from __future__ import annotations

import pytest

from taxi_fare_model import deploy

NAME = "prod.taxi.fare"


def test_first_deployment_sets_champion_and_removes_challenger(fake_client) -> None:
    version = fake_client.add_version(NAME)
    fake_client.aliases[NAME]["challenger"] = version

    previous = deploy.deploy(fake_client, NAME, version)

    assert previous is None
    assert fake_client.aliases[NAME] == {"champion": "1"}
    assert fake_client.calls == [("set_alias", NAME, "champion", "1"), ("delete_alias", NAME, "challenger")]


def test_champion_moves_to_the_new_version(fake_client) -> None:
    old = fake_client.add_version(NAME)
    new = fake_client.add_version(NAME)
    fake_client.aliases[NAME].update(champion=old, challenger=new)

    assert deploy.deploy(fake_client, NAME, new) == old
    assert fake_client.aliases[NAME] == {"champion": new}


def test_a_version_that_did_not_pass_validation_is_not_deployed(fake_client) -> None:
    champion = fake_client.add_version(NAME)
    validated = fake_client.add_version(NAME)
    unvalidated = fake_client.add_version(NAME)
    fake_client.aliases[NAME].update(champion=champion, challenger=validated)

    with pytest.raises(deploy.DeploymentError, match="not the challenger"):
        deploy.deploy(fake_client, NAME, unvalidated)

    assert fake_client.aliases[NAME] == {"champion": champion, "challenger": validated}
    assert fake_client.calls == []


def test_redeploying_the_champion_is_a_no_op(fake_client) -> None:
    version = fake_client.add_version(NAME)
    fake_client.aliases[NAME]["champion"] = version

    assert deploy.deploy(fake_client, NAME, version) == version
    assert fake_client.calls == []


def test_deploy_entry_point(
    fake_client, monkeypatch: pytest.MonkeyPatch, mlflow_store: str, job_parameters: list[str]
) -> None:
    fake_client.add_version(NAME)
    fake_client.add_version(NAME)
    fake_client.aliases[NAME]["challenger"] = "2"
    monkeypatch.setattr(deploy.mlflow, "MlflowClient", lambda: fake_client)

    # With the job parameters that Databricks pushes down to every task (ignored here).
    argv = ["--catalog=prod", "--schema=taxi", "--model_name=fare", "--model_version=2"]
    deploy.main([*argv, *job_parameters])

    assert fake_client.aliases[NAME] == {"champion": "2"}
    with pytest.raises(SystemExit):
        deploy.main(["--catalog=prod", "--schema=taxi", "--model_name=fare"])
