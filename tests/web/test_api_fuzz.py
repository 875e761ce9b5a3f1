"""Every endpoint of the listener app, fuzzed from its own OpenAPI document (schemathesis) against
a real `rostra serve` over HTTP, with no credential, the admin token, a host token and a ticket,
on unknown, scheduled and live spaces: no answer is a server error (a 5xx other than 503), and
every answer is one the document lists, with the documented media type and body schema."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import ADMIN_TOKEN, Server, start_server, stop_server

# examples per operation and generation mode (four credentials and three spaces in turn)
EXAMPLES_PER_OPERATION = 50
REQUEST_TIMEOUT_S = 10.0
# endless bodies: fuzzed with spaces that are not live, which answer at once
STREAM_ENDINGS = ("/stream.aac", "/stream.opus")


@dataclass
class Fixtures:
    live_id: str
    scheduled_id: str
    credentials: list[dict[str, str]]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_server(tmp_path_factory.mktemp("fuzz") / "data")
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def fixtures(fuzz_server: Server) -> Fixtures:
    live = fuzz_server.create_space("Fuzzed live")
    scheduled = fuzz_server.create_space("Fuzzed scheduled", live=False)
    joined = httpx.post(f"{fuzz_server.url}/api/v1/spaces/{live['id']}/join", timeout=10)
    assert joined.status_code == 201, joined.text
    host_token = live["host_url"].split("token=")[1]
    return Fixtures(
        live_id=live["id"],
        scheduled_id=scheduled["id"],
        credentials=[
            {},
            {"Authorization": f"Bearer {ADMIN_TOKEN}"},
            {"Authorization": f"Bearer {host_token}"},
            {"Authorization": f"Bearer {joined.json()['ticket']}"},
        ],
    )


def _prepare(case: Any, fixtures: Fixtures, turn: int) -> dict[str, str]:
    """This case's credential and space, in turn: unknown (as generated), scheduled, live."""
    params = case.path_parameters or {}
    if "space_id" in params:
        is_stream = case.path.endswith(STREAM_ENDINGS)
        spaces = [params["space_id"], fixtures.scheduled_id]
        if not is_stream:
            spaces.append(fixtures.live_id)
        params["space_id"] = spaces[turn % len(spaces)]
    return fixtures.credentials[(turn // 3) % len(fixtures.credentials)]


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    fixtures: Fixtures,
    statuses: Counter[int],
) -> None:
    turns = itertools.count()

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        database=None,
    )
    def run(case: Any) -> None:
        headers = _prepare(case, fixtures, next(turns))
        response = case.call(base_url=base_url, headers=headers, timeout=REQUEST_TIMEOUT_S)
        statuses[response.status_code] += 1
        assert response.status_code < 500 or response.status_code == 503, (
            f"{case.method} {case.formatted_path} answered {response.status_code}: "
            f"{response.text[:500]}"
        )
        case.validate_response(
            response,
            checks=[status_code_conformance, content_type_conformance, response_schema_conformance],
            excluded_checks=[not_a_server_error],
            headers=headers,
        )

    run()


def test_every_endpoint_answers_within_its_documented_contract(
    fuzz_server: Server, fixtures: Fixtures
) -> None:
    schema = schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25, [op.label for op in operations]
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, fuzz_server.url, fixtures, statuses)
            except Unsatisfiable:
                continue  # nothing of this operation can be made invalid (no parameters)
            except Exception as error:  # noqa: BLE001 - every operation's failure is reported
                failures.append(f"{operation.label} ({mode.value}): {str(error)[:1500]}")
    assert failures == [], "\n\n".join(failures)
    # the run reached past the credential and id checks, into the handlers
    assert sum(statuses.values()) >= 10 * len(operations), statuses
    assert {200, 201, 204, 401, 403, 404, 415, 422} <= set(statuses), statuses


@schemathesis.serializer("application/sdp")
def _sdp_text(ctx: Any, value: Any) -> bytes | None:
    """A fuzzed SDP offer goes on the wire as the text it is."""
    if value is None:
        return None
    return str(value).encode("utf-8", "surrogatepass")


def test_whip_endpoints_answer_within_their_documented_contract(
    fuzz_server: Server, fixtures: Fixtures
) -> None:
    """The origin's own app (speakers publish there, on its own port): POST and DELETE /whip."""
    live = fuzz_server.create_space("Fuzzed WHIP")
    invite = live["speaker_invite_url"].split("invite=")[1]
    host = live["host_url"].split("token=")[1]
    whip = Fixtures(
        live_id=live["id"],
        scheduled_id=fixtures.scheduled_id,
        credentials=[
            {},
            {"Authorization": f"Bearer {invite}"},
            {"Authorization": f"Bearer {host}"},
            {"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ],
    )
    schema = schemathesis.openapi.from_url(fuzz_server.whip_base + "/openapi.json")
    operations = [
        result.ok()
        for result in schema.get_all_operations()
        if result.ok().path.startswith("/whip/")
        and result.ok().method.upper() in ("POST", "DELETE")
    ]
    assert len(operations) >= 2, [op.label for op in operations]
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _fuzz(operation, mode, fuzz_server.whip_base, whip, statuses)
            except Unsatisfiable:
                continue
            except Exception as error:  # noqa: BLE001 - every operation's failure is reported
                failures.append(f"{operation.label} ({mode.value}): {str(error)[:1500]}")
    assert failures == [], "\n\n".join(failures)
    assert {400, 401, 404} <= set(statuses), statuses
