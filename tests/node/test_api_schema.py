"""The REST API of a running node process against its own OpenAPI schema (schemathesis): every
operation, called with generated valid and invalid inputs and the bearer token, answers without a
5xx, with a declared content type, and with a body that matches the schema wherever one is
declared for the status it returns."""


import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, response_headers_conformance, response_schema_conformance

from daemons import gossiping

EXAMPLES = 25  # per operation and generation mode: about 30 s in all
CHECKS = [not_a_server_error, content_type_conformance, response_schema_conformance, response_headers_conformance]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """Four daemons (a quorum for each); the first one's API is under test. Yields (url, token)."""
    with gossiping(tmp_path_factory.mktemp("schema"), 4, {"QRES_API_MAX_BODY": "65536"}) as (_, url, token):
        yield url, token


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_conforms_to_the_schema(node, mode):
    url, token = node
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"/compress", "/decompress", "/readings", "/status"} <= {op.path for op in operations}
    for op in operations:
        if mode is GenerationMode.NEGATIVE and not any((op.body, op.query, op.path_parameters, op.headers)):
            continue  # nothing to make invalid

        @given(case=op.as_strategy(mode))
        @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def conforms(case):
            case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, checks=CHECKS, timeout=10)

        conforms()
