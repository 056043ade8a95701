"""The one rule of the native API that JSON Schema cannot state, taught to schemathesis.

Under `"atomic": true` every input must be valid, and an id repeated among the `items` or
`categories` of one request is invalid (docs/RULES.md, "The OpenAPI contract"). The schema says
the rest with `if`/`then`, but "unique by `id`" of objects has no JSON Schema keyword, so such a
body is schema-valid and still refused with 400. Bodies of that one shape are not generated.
"""

import schemathesis


@schemathesis.hook
def filter_body(context, body):
    if not isinstance(body, dict) or body.get("atomic") is not True:
        return True
    for key in ("items", "categories"):
        entries = body.get(key)
        if isinstance(entries, list):
            ids = [e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), str)]
            if len(ids) != len(set(ids)):
                return False
    return True
