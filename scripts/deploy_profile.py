"""Prints the `deploy` profile of Cargo.toml as CARGO_PROFILE_RELEASE_*
variables, one `export NAME=VALUE` a line, for `eval` in a shell.

`sam build` (cargo-lambda) always builds with `--release` and cargo refuses
`--profile` beside it, so the settings of what is deployed reach cargo this
way: the release profile stays the developer's fast one, and the deployed
bootstraps are built with fat LTO, one codegen unit and opt-level "s".
Reads Cargo.toml next to this script's folder, or the path given.

It also prints the Lambda targets' RUSTFLAGS (cargo-lambda always builds
with `--target`, so they reach the functions and nothing built for the
host): `-C relocation-model=static` links each bootstrap as a plain
executable instead of a position-independent one, so the dynamic loader
has about 160 relocations to apply at start instead of 30,000 and a
function's cold start drops by a fifth (BENCHMARKS.md section 2b). Lambda
gives no address-space randomisation a function relies on.
"""

import pathlib
import shlex
import sys



def deploy_section(text):
    """[profile.deploy] of a Cargo.toml, for Pythons without tomllib (before
    3.11): `key = value` lines (booleans, integers, quoted strings) up to the
    next table."""
    profile, inside = None, False
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("["):
            inside = line == "[profile.deploy]"
            if inside:
                profile = {}
            continue
        if inside and "=" in line:
            key, value = (part.strip() for part in line.split("=", 1))
            if value in ("true", "false"):
                profile[key] = value == "true"
            elif value.lstrip("-").isdigit():
                profile[key] = int(value)
            else:
                profile[key] = value.strip('"')
    return profile


path = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent / "Cargo.toml"
try:
    import tomllib

    with open(path, "rb") as f:
        profile = tomllib.load(f).get("profile", {}).get("deploy")
except ModuleNotFoundError:
    profile = deploy_section(path.read_text())
if profile is None:
    sys.exit(f"error: {path} has no [profile.deploy]")
if profile.get("inherits") != "release":
    sys.exit(f"error: [profile.deploy] in {path} must inherit release (sam build builds release)")
for key, value in profile.items():
    if key == "inherits":
        continue
    if isinstance(value, dict):
        sys.exit(f"error: [profile.deploy] {key} is a table; only plain settings can be passed as variables")
    if isinstance(value, bool):
        value = "true" if value else "false"
    name = "CARGO_PROFILE_RELEASE_" + key.upper().replace("-", "_")
    print(f"export {name}={shlex.quote(str(value))}")
for triple in ("X86_64_UNKNOWN_LINUX_GNU", "AARCH64_UNKNOWN_LINUX_GNU"):
    print(f"export CARGO_TARGET_{triple}_RUSTFLAGS={shlex.quote('-C relocation-model=static')}")
