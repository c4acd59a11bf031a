#!/usr/bin/env bash
# The one test command (`make test` calls this). On a fresh machine it:
#   1. makes a Python venv (.venv) with the pinned moto server (and, later, cfn-lint),
#   2. starts moto on 127.0.0.1 on a free port,
#   3. runs cargo fmt --check, clippy -D warnings and every test in the workspace,
#      with the DynamoDB suites pointed at moto,
#   4. stops moto, whether the tests passed or not.
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5
VENV=${STOREFRONT_VENV:-.venv}
PYTHON=${PYTHON:-python3}

step() { printf '\n==> %s\n' "$*"; }

if ! command -v cargo >/dev/null; then
  echo "error: cargo is not on PATH; install Rust (https://rustup.rs) and try again" >&2
  exit 1
fi
if ! command -v "$PYTHON" >/dev/null; then
  echo "error: $PYTHON is not on PATH; the AWS tests need Python 3.9+ for the moto server" >&2
  exit 1
fi

step "Python venv with moto[server]==$MOTO_VERSION in $VENV"
if ! "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

step "starting moto on 127.0.0.1"
mkdir -p target
port=$("$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
moto_pid=$!
cleanup() {
  local rc=$?
  kill "$moto_pid" 2>/dev/null
  wait "$moto_pid" 2>/dev/null
  exit "$rc"
}
trap cleanup EXIT INT TERM
"$VENV/bin/python" - "$port" <<'PY'
import sys, time, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/moto-api/"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("moto did not start within 30 s; see target/moto.log")
PY
export STOREFRONT_DYNAMODB_ENDPOINT="http://127.0.0.1:$port"
# The same moto serves EventBridge and SQS for the publisher's suite.
export STOREFRONT_AWS_ENDPOINT="$STOREFRONT_DYNAMODB_ENDPOINT"
echo "moto $MOTO_VERSION at $STOREFRONT_AWS_ENDPOINT (log: target/moto.log)"

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace"
cargo test --workspace
