"""Observable extraction: recorded vendor payloads, defanged forms, private ranges, hostile input."""

from __future__ import annotations

import json
import time
from pathlib import Path

from soc_tenant.threatintel.observables import (
    MAX_PER_RECORD,
    Observable,
    extract,
    extract_text,
    refang,
)

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "vendor-samples"


def kinds(found):
    return {(o.kind, o.value) for o in found}


def test_every_kind_with_defanged_forms():
    text = (
        "C2 at hxxps://evil-domain[.]com/payload.exe?x=1 and 45.33.32[.]156, mail from "
        "phish[@]bad-actor(.)net, dropper 44d88612fea8a8f36de82e1278abb02f, "
        "sha1 3395856ce81f2b7382dee72602f798b642f14140 and "
        "sha256 275A021BBFB6489E54D471899F7DB9D1663FC695EC2FE2A2C4538AABF651FD0F; "
        "exploits cve-2021-44228 via T1190 and T1059.001; v6 2001:4860:4860::8888."
    )
    got = kinds(extract_text(text))
    assert {
        ("url", "https://evil-domain.com/payload.exe?x=1"),
        ("domain", "evil-domain.com"),
        ("ipv4", "45.33.32.156"),
        ("email", "phish@bad-actor.net"),
        ("md5", "44d88612fea8a8f36de82e1278abb02f"),
        ("sha1", "3395856ce81f2b7382dee72602f798b642f14140"),
        ("sha256", "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"),
        ("cve", "CVE-2021-44228"),
        ("mitre", "T1190"),
        ("mitre", "T1059.001"),
        ("ipv6", "2001:4860:4860::8888"),
    } <= got
    # a file name is not a domain; the e-mail's domain is not counted twice as a bare domain
    assert ("domain", "payload.exe") not in got
    assert ("domain", "bad-actor.net") not in got
    assert refang("hxxp://a[.]b[dot]c") == "http://a.b.c"


def test_private_and_reserved_addresses_are_flagged():
    found = {
        o.value: o for o in extract("10.1.2.3 192.168.1.3 127.0.0.1 100.64.0.1 fe80::1 8.8.8.8 host.corp")
    }
    for value in ("10.1.2.3", "192.168.1.3", "127.0.0.1", "100.64.0.1", "fe80::1", "host.corp"):
        assert found[value].private, value
    assert not found["8.8.8.8"].private
    # not addresses at all
    assert not kinds(extract_text("version 1.2.3.4.5 and 999.1.1.1 at 12:30:45"))


def test_recorded_qradar_offenses_yield_their_source_addresses():
    offenses = json.loads((FIXTURES / "qradar" / "siem_offenses.json").read_text())
    first = offenses[0]
    got = extract(first["offense_source"], first["description"], [s["name"] for s in first["log_sources"]])
    assert Observable("ipv4", "39.116.161.122", False) in got
    assert Observable("ipv4", "192.168.1.3", True) in got  # the log source's own address


def test_recorded_xsoar_incident_custom_fields_are_walked_without_false_positives():
    batch = json.loads((FIXTURES / "xsoar" / "incident_batch.json").read_text())
    incident = batch["data"][0]
    got = extract(incident["name"], incident["CustomFields"], incident["labels"])
    # the recorded incident's only indicator-like strings are the creator's e-mail address
    assert {(o.kind, o.value) for o in got} <= {("email", "user@company.com"), ("domain", "company.com")}
    assert ("email", "user@company.com") in kinds(got)


def test_unicode_look_alikes_are_refused_or_folded():
    # Cyrillic "а" inside: no partial ASCII suffix is taken for the real domain
    assert not [o for o in extract_text("visit pаypal.com now") if o.value.endswith("ypal.com")]
    # full-width digits and dots fold to the address they show
    assert Observable("ipv4", "1.2.3.4", False) in extract_text("１．２．３．４")


def test_hostile_input_is_bounded_and_never_raises():
    started = time.perf_counter()
    huge = "a" * 2_000_000 + ".com " + "1." * 500_000 + " hxxp://" + "x" * 100_000
    extract(huge, {"k": [huge] * 3})
    many = " ".join(f"8.8.{i // 256}.{i % 256}" for i in range(10_000))
    assert len(extract(many)) == MAX_PER_RECORD
    nested = {"a": None}
    cur = nested
    for _ in range(1000):
        cur["a"] = {"a": "9.9.9.9"}
        cur = cur["a"]
    assert extract(nested) == []  # beyond the walk's depth
    for attack in (
        "'; DROP TABLE ti_observable; --@evil.com",
        "http://evil.com/<script>alert(1)</script>",
        "\x00\x00 8.8.4.4\x00",
        "http://[::1:/",
        "http://:80/",
        "T1234.56789 CVE-99-1",
    ):
        for o in extract(attack):
            assert o.kind in {"url", "domain", "ipv4", "ipv6", "email", "mitre", "cve"}
            assert all(c not in o.value for c in "'<> \x00;")
    assert Observable("ipv4", "8.8.4.4", False) in extract("\x00\x00 8.8.4.4\x00")
    # the whole hostile batch stays fast (a figure, not an assertion on time: printed for -s)
    print(f"hostile extraction {time.perf_counter() - started:.2f}s")
