"""The public API's contract: the gateway's merged OpenAPI document describes every answer, the live
services keep to it under generated requests, and the console's TypeScript client generated from it
is the live API's and compiles."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# Starting seven services on a loaded machine takes a while; the run itself is bounded by examples.
pytestmark = pytest.mark.timeout(900)

HTTP_METHODS = ("get", "put", "post", "delete", "patch")
TYPED_TARGET = 0.95
# Generated examples per operation: a few valid and a couple of invalid requests, bounded so the
# whole run stays around a minute.
POSITIVE_EXAMPLES = 3
NEGATIVE_EXAMPLES = 1
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def _free_form(schema: dict[str, Any]) -> bool:
    """``{}`` or an object with no declared properties: says nothing of the answer."""
    if not schema:
        return True
    return (
        schema.get("type") == "object"
        and "$ref" not in schema
        and not schema.get("properties")
        and schema.get("additionalProperties") in (None, True, {})
    )


def is_typed(operation: dict[str, Any]) -> bool:
    """Every success answer either has no body (204) or a non-free-form schema for each of its
    content types, and errors are documented in the error shape."""
    responses = operation.get("responses") or {}
    successes = {code: r for code, r in responses.items() if str(code).startswith("2")}
    if not successes:
        return False
    for code, response in successes.items():
        content = response.get("content") or {}
        if not content and str(code) != "204":
            return False
        if any(_free_form(media.get("schema") or {}) for media in content.values()):
            return False
    error = (responses.get("4XX") or {}).get("content", {}).get("application/json", {}).get("schema", {})
    return error.get("$ref", "").endswith("/ErrorResponse")


def test_every_public_operation_declares_its_answers(merged_spec: dict[str, Any]) -> None:
    ops = operations(merged_spec)
    untyped = [f"{method} {path}" for method, path, operation in ops if not is_typed(operation)]
    typed_share = 1 - len(untyped) / len(ops)
    print(f"typed operations: {len(ops) - len(untyped)} of {len(ops)} ({typed_share:.1%})")
    assert len(ops) > 100, "the merged document lost services"
    assert typed_share >= TYPED_TARGET, f"untyped operations: {untyped}"


def test_error_shape_is_one_component(merged_spec: dict[str, Any]) -> None:
    error = merged_spec["components"]["schemas"]["ErrorResponse"]
    detail = merged_spec["components"]["schemas"]["ErrorDetail"]
    assert error["required"] == ["error"]
    assert set(detail["properties"]) == {"code", "message", "details", "request_id"}
    assert not [name for name in merged_spec["components"]["schemas"] if name.endswith("_ErrorResponse")]


def test_live_services_keep_the_contract(contract_suite: Any, merged_spec: dict[str, Any]) -> None:
    """Generated requests to every operation through the gateway, as the super admin — valid ones
    and a few invalid ones: never a 5xx, only documented status codes and content types, every body
    valid against its documented schema (errors included)."""
    schema = schemathesis.openapi.from_dict(merged_spec)
    headers = {"Authorization": f"Bearer {contract_suite.token}"}
    failures: list[str] = []
    calls = 0
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode, examples in (
            (GenerationMode.POSITIVE, POSITIVE_EXAMPLES),
            (GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES),
        ):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def call(case: Any) -> None:
                nonlocal calls
                calls += 1
                response = case.call(base_url=contract_suite.gateway, headers=headers, timeout=30)
                case.validate_response(response, checks=CHECKS)

            try:
                call()
            except Unsatisfiable:
                continue  # nothing to make invalid: an operation without parameters or body
            except (Exception, BaseExceptionGroup) as exc:  # every operation's failure, reported together
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:1500]}")
    print(
        f"contract run: {calls} generated requests in {time.monotonic() - started:.1f}s, "
        f"{len(failures)} failing operation/mode pairs"
    )
    assert not failures, "\n\n".join(failures)


# The console's typed client: generated once (scripts/gen_client.sh: web/openapi.json ->
# web/src/api/schema.d.ts, openapi-typescript from web/'s packages) and used by the console's build,
# by this test and by the browser tests' check that it is up to date.
WEB = Path(__file__).resolve().parents[2] / "web"
TSC = WEB / "node_modules" / ".bin" / "tsc"
USAGE_TS = """\
import type { components, paths } from "./schema";

type Json<P extends keyof paths, M extends keyof paths[P]> = paths[P][M] extends {
  responses: { 200: { content: { "application/json": infer B } } };
}
  ? B
  : never;

declare const offenses: Json<"/tenant/offenses/", "get">;
declare const dashboard: Json<"/tenant/dashboard/", "get">;
declare const companies: Json<"/admin/companies/", "get">;
declare const failure: components["schemas"]["ErrorResponse"];

export const severity: number = offenses.items[0].severity;
export const total: number = offenses.total + offenses.limit + offenses.offset;
export const generatedAt: string = dashboard.generated_at;
export const companyName: string = companies.items[0].name;
export const code: string = failure.error.code;
// @ts-expect-error an offense's severity is a number, never a string
export const wrong: string = offenses.items[0].severity;
"""


def test_typescript_client_compiles(merged_spec: dict[str, Any], tmp_path: Path) -> None:
    """The console's generated client is the live API's client: the live merged document's paths and
    components are the ones the committed client was generated from, and typed reads through it
    compile under tsc --strict (a change of a field's type breaks a frontend's build, not its users)."""
    assert TSC.exists(), "run make web (npm ci in web/)"
    committed = json.loads((WEB / "openapi.json").read_text())
    live_parts = {"paths": merged_spec["paths"], **merged_spec.get("components", {})}
    committed_parts = {"paths": committed["paths"], **committed.get("components", {})}
    stale = [
        f"{part}: {key}"
        for part in sorted(set(live_parts) | set(committed_parts))
        if part != "securitySchemes"  # the gateway's URLs: not part of the generated types
        for key in sorted(set(live_parts.get(part, {})) | set(committed_parts.get(part, {})))
        if live_parts.get(part, {}).get(key) != committed_parts.get(part, {}).get(key)
    ]
    assert not stale, "web/openapi.json differs from the live API; run scripts/gen_client.sh:\n" + "\n".join(
        stale[:50]
    )
    shutil.copy(WEB / "src" / "api" / "schema.d.ts", tmp_path / "schema.d.ts")
    (tmp_path / "usage.ts").write_text(USAGE_TS)
    compiled = subprocess.run(
        [str(TSC), "--noEmit", "--strict", "--target", "es2022", "--module", "es2022", "usage.ts"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
