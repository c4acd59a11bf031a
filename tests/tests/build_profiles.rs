//! Two profiles, two jobs: `release` is the developer's (the first `cargo
//! run --release` must take minutes, not the better part of an hour), and
//! `deploy` is what is deployed (fat LTO, one codegen unit, opt-level "s",
//! stripped). `sam build` only knows `--release`, so both scripts that run
//! it hand the deploy profile to cargo as CARGO_PROFILE_RELEASE_* variables
//! through `scripts/deploy_profile.py`; this checks the chain.

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> String {
    std::env::var("STOREFRONT_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// The variables the script prints are the deploy profile's settings and
/// the Lambda targets' non-PIE linking, and the release profile keeps none
/// of them (it builds fast).
#[test]
fn the_deploy_profile_reaches_sam_build_as_variables() {
    let out = std::process::Command::new(python())
        .arg(root().join("scripts/deploy_profile.py"))
        .output()
        .expect("run scripts/deploy_profile.py (set STOREFRONT_PYTHON, or have python3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut printed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    printed.sort();
    assert_eq!(
        printed,
        [
            "export CARGO_PROFILE_RELEASE_CODEGEN_UNITS=1",
            "export CARGO_PROFILE_RELEASE_LTO=true",
            "export CARGO_PROFILE_RELEASE_OPT_LEVEL=s",
            "export CARGO_PROFILE_RELEASE_STRIP=true",
            "export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C relocation-model=static'",
            "export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS='-C relocation-model=static'",
        ]
    );

    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let release: Vec<&str> = manifest
        .split("[profile.release]")
        .nth(1)
        .expect("a release profile")
        .split("\n[")
        .next()
        .unwrap_or_default()
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .collect();
    for slow in ["lto", "codegen-units", "opt-level"] {
        assert!(
            !release.iter().any(|l| l.starts_with(slow)),
            "[profile.release] sets {slow}: the developer's first build slows down; set it in [profile.deploy]"
        );
    }
}

/// Each script that runs `sam build` reads the deploy profile first.
#[test]
fn every_sam_build_uses_the_deploy_profile() {
    for (script, build) in [
        ("scripts/test.sh", "\"$VENV/bin/sam\" build"),
        ("scripts/deploy.sh", "sam \"${build_args[@]}\""),
    ] {
        let text = std::fs::read_to_string(root().join(script)).expect("script");
        let profile = text
            .find("eval \"$(")
            .filter(|i| {
                text[*i..]
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .contains("scripts/deploy_profile.py")
            })
            .unwrap_or_else(|| panic!("{script} does not eval scripts/deploy_profile.py"));
        let build = text
            .find(build)
            .unwrap_or_else(|| panic!("{script} no longer runs `{build}`"));
        assert!(
            profile < build,
            "{script}: the deploy profile is read after sam build"
        );
    }
}
