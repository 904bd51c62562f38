"""schemathesis against the gateway's own /openapi.json: valid and invalid cases, no 5xx.

The number of examples per operation is bounded for CI (`DISTILL_FUZZ_EXAMPLES`, default 8;
raise it for a longer run). A 4xx must be in OpenAI's error shape.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.fixtures.servers import TeacherServer
from tests.reliability.procs import GatewayProcess

pytestmark = pytest.mark.reliability

EXAMPLES = int(os.environ.get("DISTILL_FUZZ_EXAMPLES", "8"))
ADMIN_TOKEN = "fuzz-admin-token"  # so the admin API is fuzzed past its guard


@pytest.fixture(scope="module")
def fuzzed_gateway(
    tmp_path_factory: pytest.TempPathFactory, teacher_server: TeacherServer
) -> Iterator[GatewayProcess]:
    def serve_any_model(cfg: dict[str, Any]) -> None:
        cfg["routes"][0]["default"] = True  # generated model names reach the teacher too

    process = GatewayProcess(
        tmp_path_factory.mktemp("fuzz"),
        teacher_server.base_url,
        serve_any_model,
        env={"DISTILL_ADMIN_TOKEN": ADMIN_TOKEN},
    )
    yield process
    process.close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_input_makes_the_gateway_fail(fuzzed_gateway: GatewayProcess, mode: Any) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_gateway.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert {"POST /v1/chat/completions", "POST /v1/completions"} <= labels, labels
    statuses: Counter[tuple[str, int]] = Counter()

    @given(case=st.one_of([op.as_strategy(generation_mode=mode) for op in operations]))
    @settings(
        max_examples=EXAMPLES * len(operations),
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,  # the same cases on every CI run; raise the count to explore more
        database=None,
    )
    def fuzz(case: Any) -> None:
        response = case.call(
            base_url=fuzzed_gateway.url,
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30,
        )
        statuses[(case.operation.label, response.status_code)] += 1
        case.validate_response(response, checks=[not_a_server_error])
        if 400 <= response.status_code < 500:
            error = orjson.loads(response.content)["error"]
            assert set(error) == {"message", "type", "param", "code"}, error
            assert isinstance(error["message"], str) and error["message"], error

    fuzz()
    print(f"{mode.value}: {sum(statuses.values())} cases", dict(sorted(statuses.items())))
    assert fuzzed_gateway.alive()
    assert sum(statuses.values()) >= len(operations)
