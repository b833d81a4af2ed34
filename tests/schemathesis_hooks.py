"""A Schemathesis check the built-in ones cannot express: every error is a problem.

Loaded by tests/e2e/test_fuzz_openapi.py through SCHEMATHESIS_HOOKS. For any 4xx or
5xx answer (HEAD answers have no body), the body must be application/problem+json
(RFC 9457) carrying type, title, status equal to the HTTP status, and our `reason`.
Pages for people (the dashboard, the add-to-wallet page) answer their errors as HTML
pages; those are the only exception, and only for their own routes.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

PROBLEM = "application/problem+json"
# Route templates whose errors are HTML pages for a person's browser.
PAGES = ("/dashboard", "/dashboard/login", "/dashboard/logout", "/add/{token}")


@schemathesis.check
def problem_details(ctx: Any, response: Any, case: Any) -> bool | None:
    """Fail unless an error answer is a well-formed problem+json body."""
    if response.status_code < 400 or case.method.upper() == "HEAD":
        return None
    media = (response.headers.get("content-type") or [""])[0].split(";")[0].strip().lower()
    if media == "text/html" and case.path in PAGES:
        return None
    if media != PROBLEM:
        raise AssertionError(f"a {response.status_code} answered {media or 'no content type'}")
    try:
        body = json.loads(response.content)
    except (ValueError, UnicodeDecodeError) as exc:
        raise AssertionError(f"the problem body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise AssertionError("the problem body is not a JSON object")
    missing = [name for name in ("type", "title", "status", "reason") if name not in body]
    if missing:
        raise AssertionError(f"the problem lacks {', '.join(missing)}")
    if body["status"] != response.status_code:
        raise AssertionError(f"status {body['status']} in a {response.status_code} answer")
    if not isinstance(body["reason"], str) or not body["reason"]:
        raise AssertionError("the problem's reason is not a non-empty string")
    if "Traceback" in response.content.decode("utf-8", "replace"):
        raise AssertionError("the problem shows a stack trace")
    return True
