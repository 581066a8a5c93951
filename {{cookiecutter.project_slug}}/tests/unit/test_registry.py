from __future__ import annotations

import pytest

from {{ cookiecutter.__package_name }} import registry


def test_full_name_and_table_qualification() -> None:
    assert registry.full_name("dev", "dev_jane_taxi", "fare") == "dev.dev_jane_taxi.fare"
    assert registry.qualify_table("predictions", "dev", "taxi") == "dev.taxi.predictions"
    assert registry.qualify_table("other.schema.table", "dev", "taxi") == "other.schema.table"
    for bad in ("", "a.b", "has space", "`quoted`"):
        with pytest.raises(ValueError, match="Invalid catalog"):
            registry.full_name(bad, "taxi", "fare")


def test_alias_lookup_is_case_insensitive(fake_client) -> None:
    fake_client.add_version("c.s.m")
    fake_client.aliases["c.s.m"]["Champion"] = "1"
    assert registry.get_alias_version(fake_client, "c.s.m", "champion") == "1"
    assert registry.get_alias_version(fake_client, "c.s.m", "challenger") is None


@pytest.mark.parametrize(
    ("key", "written_by_validation"),
    [
        ("model_validation_status", True),
        ("validation_rmse", True),
        ("promoted_from", False),
        ("team", False),
    ],
)
def test_validation_tags_are_told_apart(key: str, written_by_validation: bool) -> None:
    assert registry.is_validation_tag(key) is written_by_validation
