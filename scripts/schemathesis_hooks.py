"""Schemathesis checks of our own, loaded by scripts/schemathesis.sh.

`refused_requests_append_nothing`: around every request, count the events
that requests have appended (the local runtime's /_local/events/count; the
handlers' own events, actor `system:*`, are left out because they keep
flowing in the background). A request answered with 4xx must not have
changed that count.
"""

import json
import os
import urllib.request

import schemathesis

BASE = os.environ["STOREFRONT_URL"]
# The /_local routes answer an admin's dev token only.
LOCAL_TOKEN = os.environ["STOREFRONT_LOCAL_TOKEN"]


def appended_by_requests():
    request = urllib.request.Request(
        BASE + "/_local/events/count", headers={"Authorization": "Bearer " + LOCAL_TOKEN}
    )
    with urllib.request.urlopen(request, timeout=30) as r:
        return json.load(r)["appendedByRequests"]


# Cases are slotted; remember the count per case (the run is sequential).
BEFORE = {}


@schemathesis.hook
def before_call(ctx, case, kwargs):
    BEFORE[id(case)] = appended_by_requests()


@schemathesis.check
def refused_requests_append_nothing(ctx, response, case):
    if response.status_code < 400:
        return None
    before = BEFORE.pop(id(case), None)
    if before is None:
        return None
    after = appended_by_requests()
    if after != before:
        raise AssertionError(
            f"{case.method} {case.path} was refused with {response.status_code} "
            f"but {after - before} event(s) were appended"
        )
    return None
