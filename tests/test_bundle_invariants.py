"""Invariants of the bundle that a reviewer must never lose, each in a test of its own (named for what breaks).

Until these existed, dropping the principal's grant on the model or `prevent_destroy` on the prod model was
caught only by the golden snapshots, as "the text changed", not as what it means.
"""

from __future__ import annotations

from support import Baked, grants_of

PRINCIPAL = "${var.service_principal}"


def test_the_environment_principal_can_load_and_tag_its_model_in_every_target(baked: Baked) -> None:
    """Validation tags versions and moves aliases, batch inference loads @champion: without EXECUTE and
    APPLY_TAG for the identity the jobs run as, every job after training fails with a permission error."""
    for target in baked.bundle.targets:
        model = baked.bundle.view(target)["resources"]["registered_models"]["model"]
        assert {"EXECUTE", "APPLY_TAG"} <= grants_of(model).get(PRINCIPAL, set()), target


def test_the_environment_principal_can_write_its_schema_in_every_target(baked: Baked) -> None:
    """Training registers models and batch inference appends predictions in the schema."""
    for target in baked.bundle.targets:
        schema = baked.bundle.view(target)["resources"]["schemas"]["ml"]
        needed = {"USE_SCHEMA", "CREATE_TABLE", "CREATE_MODEL", "MODIFY", "SELECT"}
        assert needed <= grants_of(schema).get(PRINCIPAL, set()), target


def test_the_prod_model_cannot_be_destroyed_by_a_deploy_or_destroy(baked: Baked) -> None:
    """Deleting the prod registered model deletes every version that serves production."""
    model = baked.bundle.view("prod")["resources"]["registered_models"]["model"]
    assert model.get("lifecycle", {}).get("prevent_destroy") is True
