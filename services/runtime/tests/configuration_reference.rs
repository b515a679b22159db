//! `helm/CONFIGURATION.md`, the configuration reference, is generated from
//! `src/defaults.toml`, whose comments document every setting. This test
//! fails when a setting has no comment or the committed file is out of
//! date; `UPDATE_CONFIG_REFERENCE=1 cargo test -p atenciones-runtime --test
//! configuration_reference` rewrites it.

use std::fmt::Write as _;
use std::path::PathBuf;

const DEFAULTS: &str = include_str!("../src/defaults.toml");

/// One setting: its dotted name, its default as written, what it means.
struct Setting {
    name: String,
    default: String,
    meaning: String,
}

/// Every `key = value` of the defaults with the comment lines above it; a
/// comment before a `[table]` header introduces the table, not a setting.
fn settings() -> Vec<Setting> {
    let (mut table, mut comment) = (String::new(), Vec::new());
    let mut found = Vec::new();
    for line in DEFAULTS.lines().map(str::trim) {
        if let Some(text) = line.strip_prefix('#') {
            comment.push(text.trim().to_owned());
        } else if let Some(header) = line.strip_prefix('[') {
            table = header.trim_end_matches(']').to_owned();
            comment.clear();
        } else if let Some((key, value)) = line.split_once(" = ") {
            let name = if table.is_empty() {
                key.to_owned()
            } else {
                format!("{table}.{key}")
            };
            found.push(Setting {
                name,
                default: value.to_owned(),
                meaning: comment.join(" "),
            });
            comment.clear();
        } else if line.is_empty() && table.is_empty() {
            // The file's own heading is nobody's comment.
            comment.clear();
        }
    }
    found
}

fn environment_variable(name: &str) -> String {
    format!("ATENCIONES_{}", name.replace('.', "__").to_uppercase())
}

fn is_secret(name: &str) -> bool {
    ["secret", "token", "database_url", "key_pem"]
        .iter()
        .any(|s| name.ends_with(s))
}

fn reference() -> String {
    let mut out = String::from(
        "# Configuration reference\n\n\
         Generated from `services/runtime/src/defaults.toml` by `UPDATE_CONFIG_REFERENCE=1 cargo \
         test -p atenciones-runtime --test configuration_reference`; do not edit.\n\n\
         Every setting has a built-in default (below). A TOML file given with `--config` or \
         `ATENCIONES_CONFIG` overrides them, and environment variables override the file: \
         `ATENCIONES_` then the setting's name in capitals with `__` between levels. Settings \
         marked *secret* belong in environment variables from Kubernetes Secrets, never in a \
         file or in Helm values.\n\n\
         | Setting | Environment variable | Default | Meaning |\n\
         | --- | --- | --- | --- |\n",
    );
    for setting in settings() {
        let marked = if is_secret(&setting.name) {
            "*secret* "
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | `{}` | {marked}{} |",
            setting.name,
            environment_variable(&setting.name),
            setting.default.replace('|', "\\|"),
            setting.meaning.replace('|', "\\|"),
        );
    }
    out
}

#[test]
fn every_setting_is_documented_and_the_reference_is_current() {
    let undocumented: Vec<String> = settings()
        .into_iter()
        .filter(|s| s.meaning.is_empty())
        .map(|s| s.name)
        .collect();
    assert!(
        undocumented.is_empty(),
        "settings without a comment: {undocumented:?}"
    );
    assert!(settings().iter().any(|s| s.name == "queue.dialer_lease_ms"));

    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../helm/CONFIGURATION.md");
    let generated = reference();
    if std::env::var_os("UPDATE_CONFIG_REFERENCE").is_some() {
        std::fs::write(&path, &generated).expect("write the reference");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "helm/CONFIGURATION.md is out of date: run UPDATE_CONFIG_REFERENCE=1 cargo test -p atenciones-runtime --test configuration_reference"
    );
}

#[test]
fn names_become_environment_variables() {
    assert_eq!(
        environment_variable("gateway.auth.jwt_secret"),
        "ATENCIONES_GATEWAY__AUTH__JWT_SECRET"
    );
    assert_eq!(environment_variable("demo"), "ATENCIONES_DEMO");
    assert!(is_secret("whatsapp.access_token") && !is_secret("whatsapp.api_version"));
}
