"""JSON columns of the read model: what PostgreSQL's jsonb accepts, whatever a vendor sent."""

from datetime import UTC, datetime

from soc_tenant.readmodel.ingest import jsonb


def test_output_matches_the_standard_library_shape() -> None:
    assert jsonb({"a": 1, "b": [1, 2, "xé"], "n": None}) == '{"a":1,"b":[1,2,"xé"],"n":null}'
    assert jsonb([{"t": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)}]) == '[{"t":"2026-01-02 03:04:05+00:00"}]'
    assert jsonb({1: "x"}) == '{"1":"x"}'


def test_nul_is_stripped_because_jsonb_cannot_hold_it() -> None:
    assert jsonb(["a\x00b", {"k\x00": "v"}]) == '["ab",{"k":"v"}]'


def test_an_integer_beyond_64_bits_is_still_written() -> None:
    assert jsonb({"id": 2**70}) == '{"id":1180591620717411303424}'
