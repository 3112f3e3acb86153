"""Schemathesis fuzzes the OpenAPI schema: no input makes the service answer 5xx.

The default checks also hold every response to the schema: status codes, content types and
bodies must be the ones documented.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from serving.app import create_app
from serving.deployment import DesiredState
from serving.settings import ServingSettings
from tests.unit.serving.conftest import ADMIN_TOKEN, ConstantModel, FakeSource

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> schemathesis.schemas.BaseSchema:
    source = FakeSource(
        {1: ConstantModel(0.2), 2: ConstantModel(0.7)},
        DesiredState(champion=1, challenger=2, canary_weight=0.5),
    )
    app = create_app(
        ServingSettings(
            environment="dev",
            admin_token=ADMIN_TOKEN,
            home=tmp_path_factory.mktemp("fuzz-home"),
            reconcile_interval_seconds=3600,
            inference_log_flush_seconds=0.05,
            _env_file=None,
        ),
        model_source=source,
    )
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_no_input_gets_a_server_error_or_an_undocumented_answer(
    api_schema: schemathesis.schemas.BaseSchema,
) -> None:
    """Fuzzed inputs to every operation get neither a server error nor an undocumented answer."""
    # Drives hypothesis directly: schemathesis' pytest plugin does not support pytest 9's nodes.
    operations = [result.ok() for result in api_schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 8

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=20,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
            case.call_and_validate()

        fuzz()
