//! The JSON Schemas under `schemas/` are the contract consumers code against:
//! they must be exactly what the Rust types generate. Run with
//! `UPDATE_SCHEMAS=1 cargo test -p storefront-domain --test schemas` to rewrite them.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn folder() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

/// Every event type (and the envelope) has a checked-in schema equal to the generated one, and no stale file lingers.
#[test]
fn checked_in_schemas_match_the_code() {
    let dir = folder();
    let generated = storefront_domain::events::schemas();
    if std::env::var_os("UPDATE_SCHEMAS").is_some() {
        std::fs::create_dir_all(&dir).expect("create schemas/");
        for entry in std::fs::read_dir(&dir).expect("read schemas/") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                std::fs::remove_file(path).expect("remove stale schema");
            }
        }
        for (name, text) in &generated {
            std::fs::write(dir.join(format!("{name}.json")), text).expect("write schema");
        }
    }
    let mut drift = Vec::new();
    for (name, text) in &generated {
        match std::fs::read_to_string(dir.join(format!("{name}.json"))) {
            Ok(on_disk) if &on_disk == text => {}
            Ok(_) => drift.push(format!("{name}.json differs from the code")),
            Err(_) => drift.push(format!("{name}.json is missing")),
        }
    }
    let expected: BTreeSet<String> = generated.iter().map(|(n, _)| format!("{n}.json")).collect();
    for entry in std::fs::read_dir(&dir).expect("read schemas/") {
        let file = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if file.ends_with(".json") && !expected.contains(&file) {
            drift.push(format!("{file} has no event type in the code"));
        }
    }
    assert!(
        drift.is_empty(),
        "schemas/ drifted from the code:\n  {}\nrun `UPDATE_SCHEMAS=1 cargo test -p storefront-domain --test schemas` and commit the result",
        drift.join("\n  ")
    );
}

/// Each schema is a closed JSON object (unknown fields refused, as the decoder does), and ids carry their pattern.
#[test]
fn schemas_are_closed_objects() {
    for (name, text) in storefront_domain::events::schemas() {
        let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
        assert_eq!(schema["type"], "object", "{name}");
        assert_eq!(schema["additionalProperties"], false, "{name} is closed");
    }
    let added: serde_json::Value = serde_json::from_str(
        &storefront_domain::EventType::CartItemAdded
            .schema()
            .as_value()
            .to_string(),
    )
    .expect("json");
    assert_eq!(added["$defs"]["Sku"]["pattern"], "^[A-Za-z0-9._-]+$");
    assert_eq!(added["$defs"]["Sku"]["maxLength"], 64);
}
