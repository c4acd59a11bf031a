#!/usr/bin/env python3
"""moto's server (same arguments as `moto_server`), with its DynamoDB made
thread-safe.

moto serves each request on its own thread, but its DynamoDB is not safe
for concurrent requests, and the tests make many (32 writers racing for one
stream; the AWS mode's API and pollers):

- a conditional PutItem checks and then writes in two steps, so two writers
  can both pass `attribute_not_exists` for the same key and one event is
  silently overwritten: a lost update DynamoDB itself never allows (its
  writes are atomic per item);
- TransactWriteItems deep-copies whole tables while other threads write to
  them and fails with a 500 ("dictionary changed size during iteration").

This launcher runs every DynamoDB API call under one lock, which gives each
call the atomicity DynamoDB guarantees, then starts moto's own server.
Nothing else in moto is changed.
"""

import sys
import threading

from moto.dynamodb.responses import DynamoHandler
from moto.server import main

_lock = threading.RLock()
_call_action = DynamoHandler.call_action


def _serialised_call_action(self):  # type: ignore[no-untyped-def]
    with _lock:
        return _call_action(self)


DynamoHandler.call_action = _serialised_call_action  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
