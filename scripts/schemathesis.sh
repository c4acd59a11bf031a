#!/usr/bin/env bash
# Schemathesis against the checked-in openapi.json and a running local
# runtime, once as a shopper and once as an admin: no 5xx, every response
# matches the document (status, content type, schema, headers), invalid
# input is rejected, and no refused request appended anything (our own
# check, scripts/schemathesis_hooks.py). Called by scripts/test.sh after the
# cargo tests, which built target/debug/storefront.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${STOREFRONT_VENV:-.venv}
BIN=target/debug/storefront
EXAMPLES=${SCHEMATHESIS_EXAMPLES:-25}

data=$(mktemp -d)
out="$data/stdout"
"$BIN" dev --port 0 --data "$data" --retry-base 20ms --log-format json >"$out" 2>"$data/runtime.log" &
pid=$!
cleanup() {
  local rc=$?
  set +e
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  if [ "$rc" -ne 0 ]; then echo "runtime log: $data/runtime.log" >&2; else rm -rf "$data"; fi
  exit "$rc"
}
trap cleanup EXIT INT TERM
for _ in $(seq 1 300); do
  url=$(sed -n 's/^listening on //p' "$out")
  [ -n "$url" ] && break
  sleep 0.1
done
[ -n "$url" ] || { echo "error: the local runtime did not start; see $data/runtime.log" >&2; exit 1; }
export STOREFRONT_URL="$url"

shopper=$("$BIN" token --user schemathesis-shopper --email schemathesis-shopper@example.com --data "$data")
admin=$("$BIN" token --user schemathesis-admin --admin --email schemathesis-admin@example.com --data "$data")
# The hooks read /_local/events/count, which needs an admin's token.
export STOREFRONT_LOCAL_TOKEN="$admin"
# Something to act on: a product and a cart line.
"$VENV/bin/python" - "$url" "$admin" <<'PY'
import json, sys, urllib.request
url, token = sys.argv[1], sys.argv[2]
body = json.dumps({"sku": "MUG", "name": "Mug", "priceCents": 100, "currency": "EUR", "stock": 1000}).encode()
request = urllib.request.Request(url + "/products", data=body, method="POST",
    headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
urllib.request.urlopen(request, timeout=30)
PY

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,negative_data_rejection,refused_requests_append_nothing
for who in shopper admin; do
  token=${!who}
  echo "schemathesis as $who against $url"
  PYTHONPATH=scripts SCHEMATHESIS_HOOKS=schemathesis_hooks "$VENV/bin/schemathesis" run openapi.json \
    --url "$url" \
    --header "Authorization: Bearer $token" \
    --checks "$checks" \
    --max-examples "$EXAMPLES" \
    --seed 1 \
    --workers 1 \
    --suppress-health-check all
done
