"""Schemathesis checks for hermetic-verifier (scripts/schemathesis.sh).

`refusal_reason_documented`: every 4xx and 5xx answer is a JSON Refusal
whose `reason` is one of the reasons the served document lists
(components.schemas.Refusal.properties.reason.enum), and its status is one
the operation documents. Loaded through SCHEMATHESIS_HOOKS.
"""

import json

import schemathesis


def _documented_reasons(case):
    schema = case.operation.schema.raw_schema
    refusal = schema["components"]["schemas"]["Refusal"]
    return set(refusal["properties"]["reason"]["enum"])


@schemathesis.check
def refusal_reason_documented(ctx, response, case):
    status = response.status_code
    if status < 400:
        return None
    try:
        body = json.loads(response.content)
    except ValueError as e:
        raise AssertionError(f"{status} answer is not JSON: {response.content[:200]!r}") from e
    if not isinstance(body, dict) or not isinstance(body.get("reason"), str):
        raise AssertionError(f"{status} answer has no reason: {body!r}")
    if not isinstance(body.get("message"), str):
        raise AssertionError(f"{status} answer has no message: {body!r}")
    if body["reason"] not in _documented_reasons(case):
        raise AssertionError(f"{status} answer's reason {body['reason']!r} is not documented")
    if case.method.upper() != case.operation.method.upper():
        # The coverage phase also sends other methods (405
        # method_not_allowed): not an answer of this operation.
        return None
    documented = case.operation.definition.raw.get("responses", {})
    if str(status) not in documented and "default" not in documented:
        raise AssertionError(
            f"{status} ({body['reason']}) is not documented for "
            f"{case.operation.method.upper()} {case.operation.path}"
        )
    return None
