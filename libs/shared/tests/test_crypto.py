import base64
import os

import pytest
from soc_shared.crypto import Sealer, SealError, generate_key, mask


def _key() -> bytes:
    return os.urandom(32)


def _b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def sealer() -> Sealer:
    return Sealer({"k1": _key()}, "k1")


def test_round_trip_of_bytes_text_and_dict(sealer: Sealer) -> None:
    assert sealer.open(sealer.seal(b"\x00raw\xff", "integration:1"), "integration:1") == b"\x00raw\xff"
    assert sealer.open(sealer.seal("pässword", "integration:1"), "integration:1") == "pässword".encode()
    creds = {"username": "svc", "password": "s3cret", "port": 443}
    assert sealer.open_json(sealer.seal(creds, "integration:1"), "integration:1") == creds


def test_token_shape_and_fresh_nonce_each_time(sealer: Sealer) -> None:
    first, second = sealer.seal("same", "integration:1"), sealer.seal("same", "integration:1")
    assert first != second
    version, kid, nonce, body = first.split(".")
    assert (version, kid) == ("v1", "k1")
    assert "=" not in nonce + body and "same" not in first


def test_token_bound_to_another_record_does_not_open(sealer: Sealer) -> None:
    token = sealer.seal("s3cret", "integration:1")
    with pytest.raises(SealError) as err:
        sealer.open(token, "integration:2")
    assert "s3cret" not in str(err.value)


def test_tampered_token_does_not_open(sealer: Sealer) -> None:
    token = sealer.seal("s3cret-value", "integration:1")
    version, kid, nonce, body = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[0] ^= 0x01
    flipped = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
    for bad in (
        f"{version}.{kid}.{nonce}.{flipped}",
        token[:-4],
        "v1.k1.!!.!!",
        "garbage",
        f"v2.{kid}.{nonce}.{body}",
    ):
        with pytest.raises(SealError):
            sealer.open(bad, "integration:1")


def test_unknown_key_id_does_not_open(sealer: Sealer) -> None:
    other = Sealer({"k9": _key()}, "k9")
    with pytest.raises(SealError, match="unknown key 'k9'"):
        sealer.open(other.seal("s3cret", "integration:1"), "integration:1")


def test_rotation_old_key_still_opens_and_reseal_moves_to_active_key() -> None:
    old_key, new_key = _key(), _key()
    before = Sealer({"k1": old_key}, "k1")
    token = before.seal({"api_key": "abc"}, "integration:7")

    after = Sealer({"k1": old_key, "k2": new_key}, "k2")
    assert after.needs_rotation(token)
    assert after.open_json(token, "integration:7") == {"api_key": "abc"}

    rotated = after.reseal(token, "integration:7")
    assert rotated.split(".")[1] == "k2" and not after.needs_rotation(rotated)
    assert after.reseal(rotated, "integration:7") == rotated
    assert Sealer({"k2": new_key}, "k2").open_json(rotated, "integration:7") == {"api_key": "abc"}


def test_env_value_first_key_is_active_unless_marked() -> None:
    k1, k2 = generate_key(), generate_key()
    assert Sealer.from_env_value(f"k1:{k1}, k2:{k2}").active_kid == "k1"
    marked = Sealer.from_env_value(f"k1:{k1},!k2:{k2}")
    assert marked.active_kid == "k2" and marked.kids == ["k1", "k2"]
    urlsafe = base64.urlsafe_b64encode(base64.b64decode(k1)).decode().rstrip("=")
    assert Sealer.from_env_value(f"k1:{urlsafe}").active_kid == "k1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "no sealing keys configured"),
        ("justakey", "entry #1 must look like 'kid:<base64 key>'"),
        ("k1:not*base64", "sealing key 'k1' is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "must be 32 bytes"),
        ("k1:{k},k1:{k}", "appears more than once"),
        ("!k1:{k},!k2:{k}", "more than one sealing key is marked active"),
        ("bad.kid:{k}", "must be 1-64 letters"),
    ],
)
def test_env_value_errors_are_clear_and_never_echo_key_material(value: str, message: str) -> None:
    key = generate_key()
    with pytest.raises(SealError, match=message) as err:
        Sealer.from_env_value(value.replace("{k}", key))
    assert key not in str(err.value)


def test_constructor_rejects_wrong_key_length_and_unknown_active() -> None:
    with pytest.raises(SealError, match="32 bytes"):
        Sealer({"k1": b"x" * 16}, "k1")
    with pytest.raises(SealError, match="not among the configured keys"):
        Sealer({"k1": _key()}, "k2")


def test_generate_key_is_32_random_bytes() -> None:
    assert len(base64.b64decode(generate_key())) == 32
    assert generate_key() != generate_key()


def test_mask_shows_at_most_last_four_and_nothing_for_short_secrets() -> None:
    assert mask("sk_live_1234567890abcd") == "••••abcd"
    assert mask("12345678") == "••••78"
    assert mask("short") == "••••"
    assert mask("") == "" and mask(None) == ""
