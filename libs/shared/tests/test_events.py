import json
from datetime import UTC, datetime

import pytest
import yaml
from soc_shared.events import (
    REGISTRY,
    SCHEMA_DIR,
    InvalidEvent,
    SiemDomain,
    SiemOffense,
    asyncapi_document,
    json_schemas,
    make_event,
    parse_event,
)


def _offense(version: int = 1613399051536) -> SiemOffense:
    ts = datetime.fromtimestamp(version / 1000, UTC)
    return SiemOffense(
        offense_id=16,
        domain_id=0,
        description="Session Closed",
        status="OPEN",
        severity=2,
        magnitude=1,
        credibility=2,
        relevance=0,
        start_time=ts,
        last_updated_time=ts,
        version=version,
    )


def test_same_record_and_version_give_the_same_event_id():
    a = make_event(
        "siem.offense.upserted", _offense(), source="/siem-ingest/qradar/i1", subject="16", vendor_version=1
    )
    b = make_event(
        "siem.offense.upserted", _offense(), source="/siem-ingest/qradar/i1", subject="16", vendor_version=1
    )
    c = make_event(
        "siem.offense.upserted", _offense(), source="/siem-ingest/qradar/i1", subject="16", vendor_version=2
    )
    assert a.id == b.id != c.id
    assert a.type == "soc.siem.offense.upserted.v1"


def test_event_without_vendor_version_is_keyed_on_content():
    d1 = SiemDomain(domain_id=1, name="Acme")
    d2 = SiemDomain(domain_id=1, name="Acme Corp")
    src = "/siem-ingest/qradar/i1"
    assert (
        make_event("siem.domain.upserted", d1, source=src, subject="1").id
        == make_event("siem.domain.upserted", d1, source=src, subject="1").id
    )
    assert (
        make_event("siem.domain.upserted", d1, source=src, subject="1").id
        != make_event("siem.domain.upserted", d2, source=src, subject="1").id
    )


def test_envelope_round_trips_with_extensions():
    event = make_event(
        "siem.domain.upserted",
        SiemDomain(domain_id=3, name="Globex"),
        source="/s",
        subject="3",
        integration_id="int-1",
        vendor_tenant=3,
    )
    envelope, payload = parse_event(event.to_bytes())
    assert envelope.integrationid == "int-1" and envelope.vendortenant == "3"
    assert envelope.specversion == "1.0"
    assert payload == SiemDomain(domain_id=3, name="Globex")


def test_payload_of_the_wrong_model_is_refused():
    with pytest.raises(TypeError):
        make_event("siem.offense.upserted", SiemDomain(domain_id=1, name="x"), source="/s", subject="1")


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"not json", "not a CloudEvents 1.0 envelope"),
        (
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": "x",
                    "source": "/s",
                    "type": "soc.nope.v1",
                    "time": "2024-01-01T00:00:00Z",
                    "data": {},
                }
            ).encode(),
            "unknown event type",
        ),
        (
            json.dumps(
                {
                    "specversion": "1.0",
                    "id": "x",
                    "source": "/s",
                    "type": "soc.siem.domain.upserted.v1",
                    "time": "2024-01-01T00:00:00Z",
                    "data": {"name": "no id"},
                }
            ).encode(),
            "payload does not match",
        ),
    ],
)
def test_invalid_messages_say_why(body, reason):
    with pytest.raises(InvalidEvent, match=reason):
        parse_event(body)


def test_exported_json_schemas_match_the_models():
    """Regenerate with ``uv run python -m soc_shared.events`` when a model changes."""
    for name, schema in json_schemas().items():
        path = SCHEMA_DIR / name
        assert path.exists(), f"{name} not exported"
        assert json.loads(path.read_text()) == schema, f"{name} differs from its model"
    exported = {p.name for p in SCHEMA_DIR.glob("*.json")}
    assert exported == set(json_schemas()), "stale schema files in the repo"


def test_asyncapi_document_matches_and_lists_every_routing_key():
    doc = yaml.safe_load((SCHEMA_DIR / "asyncapi.yaml").read_text())
    assert doc == asyncapi_document()
    assert set(doc["channels"]) == set(REGISTRY)
    for key, spec in REGISTRY.items():
        assert doc["channels"][key]["bindings"]["amqp"]["exchange"]["name"] == spec.exchange
