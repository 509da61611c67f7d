//! Facts read from the source, so a manifest cannot drift from the code
//! without a test failing: the functions, their Slack paths, the event types
//! they register handlers for, and the environment variables the settings
//! loader reads. It is plain text scanning of patterns this workspace uses
//! (`.on(events::X, …)`, `.route("/path", …)`, `r.secret("VAR", …)`); a
//! failure to find any says so rather than passing vacuously.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use coffeebuddy_deploy_tests::repo_root;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Every `.rs` file under `dir`, concatenated.
fn sources(dir: &Path) -> String {
    let mut text = String::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            text.push_str(&sources(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            text.push_str(&read(&path));
            text.push('\n');
        }
    }
    text
}

/// The source without its `#[cfg(test)]` tail (test fixtures name variables
/// too).
fn without_tests(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// The string literal right after each `call(` in `text`.
fn literal_args(text: &str, call: &str) -> Vec<String> {
    text.match_indices(call)
        .filter_map(|(at, _)| {
            let rest = text[at + call.len()..].trim_start().strip_prefix('"')?;
            Some(rest.split('"').next()?.to_owned())
        })
        .collect()
}

/// The deployable functions: every crate in `functions/` but `local`.
pub(crate) fn functions() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("functions"))
        .expect("functions/ is listed")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name != "local")
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no function crates found in functions/");
    names
}

/// The Knative Service name of a function.
pub(crate) fn ksvc_name(function: &str) -> String {
    format!("coffeebuddy-{function}")
}

fn function_sources(function: &str) -> String {
    sources(&repo_root().join("functions").join(function).join("src"))
}

/// `pub const NAME: &str = "value";` of `shared/src/events/mod.rs`.
fn event_constants() -> BTreeMap<String, String> {
    let text = read(&repo_root().join("shared/src/events/mod.rs"));
    let constants: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| {
            let rest = line.trim().strip_prefix("pub const ")?;
            let (name, rest) = rest.split_once(": &str = \"")?;
            Some((name.to_owned(), rest.split('"').next()?.to_owned()))
        })
        .collect();
    assert!(
        constants.contains_key("PING"),
        "no event type constants found in shared/src/events/mod.rs"
    );
    constants
}

/// The event types a function registers handlers for (`.on(events::X, …)`).
pub(crate) fn consumed_types(function: &str) -> BTreeSet<String> {
    let constants = event_constants();
    let text = function_sources(function);
    text.match_indices(".on(")
        .map(|(at, _)| {
            let arg = text[at + 4..].split(',').next().unwrap_or_default().trim();
            if let Some(literal) = arg.strip_prefix('"') {
                return literal.trim_end_matches('"').to_owned();
            }
            let name = arg.rsplit("::").next().unwrap_or(arg);
            constants.get(name).cloned().unwrap_or_else(|| {
                panic!(
                    "functions/{function}: `.on({arg}, …)` names no event type constant of \
                     shared/src/events/mod.rs; teach tests/deploy/tests/manifests/code.rs"
                )
            })
        })
        .collect()
}

/// The literal paths a function routes (`.route("/…", …)` and the
/// `const …: &str = "/admin/…"` paths the admin API routes by name).
pub(crate) fn routed_paths(function: &str) -> BTreeSet<String> {
    let text = function_sources(function);
    let mut paths: BTreeSet<String> = literal_args(&text, ".route(").into_iter().collect();
    paths.extend(
        text.lines()
            .filter_map(|line| line.split_once(": &str = \"").map(|(_, rest)| rest))
            .filter(|rest| rest.starts_with("/admin/api/"))
            .filter_map(|rest| rest.split('"').next().map(str::to_owned)),
    );
    paths
}

/// Whether the function's settings require the Ory variables.
pub(crate) fn requires_ory(function: &str) -> bool {
    let text = read(
        &repo_root()
            .join("functions")
            .join(function)
            .join("src/lib.rs"),
    );
    if text.contains("requires_ory: true") {
        true
    } else if text.contains("requires_ory: false") {
        false
    } else {
        panic!("functions/{function}/src/lib.rs says nothing about requires_ory")
    }
}

/// The environment variables the settings loader reads, and which of them
/// are secrets (read with `secret`, refused as placeholders outside dev).
#[derive(Debug)]
pub(crate) struct ConfigVars {
    pub(crate) all: BTreeSet<String>,
    pub(crate) secrets: BTreeSet<String>,
}

pub(crate) fn config_vars() -> ConfigVars {
    let text = read(&repo_root().join("shared/src/config/mod.rs"));
    let text = without_tests(&text);
    let mut all = BTreeSet::new();
    for call in [".raw(", ".required(", ".parsed(", ".bounded(", ".secret("] {
        all.extend(literal_args(text, call));
    }
    let secrets: BTreeSet<String> = literal_args(text, ".secret(").into_iter().collect();
    for expected in [
        "DATABASE_URL",
        "KAFKA_BROKERS",
        "ORY_JWKS_URL",
        "METRICS_PATH",
    ] {
        assert!(
            all.contains(expected),
            "the scan of shared/src/config/mod.rs missed {expected}: found {all:?}"
        );
    }
    assert!(
        secrets.contains("SLACK_SIGNING_SECRET"),
        "no secrets found: {secrets:?}"
    );
    ConfigVars { all, secrets }
}

/// The workspace members listed in the root `Cargo.toml`.
pub(crate) fn workspace_members() -> BTreeSet<String> {
    let text = read(&repo_root().join("Cargo.toml"));
    let list = text
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("the root Cargo.toml lists its members");
    let members: BTreeSet<String> = list
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    assert!(
        members.contains("shared"),
        "members scan failed: {members:?}"
    );
    members
}

/// What an image can be built for (`--build-arg FUNCTION=…`), with the crate
/// folder of each: every function, `local`, and the tools (the laptop
/// stack's stand-ins).
pub(crate) fn buildable() -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = functions()
        .into_iter()
        .chain(["local".to_owned()])
        .map(|f| (f.clone(), format!("functions/{f}")))
        .collect();
    let tools = repo_root().join("tools");
    if tools.is_dir() {
        for entry in std::fs::read_dir(tools).expect("tools/ is listed") {
            let entry = entry.expect("a directory entry");
            // Only tools with a binary are built into images; libraries
            // (the Slack stand-in) are not.
            if !entry.path().join("src/main.rs").is_file() {
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            all.insert(name.clone(), format!("tools/{name}"));
        }
    }
    all
}
