//! The Vault files (`vault/`): the policy grants read on exactly the secret
//! the functions read with their defaults, and the Kubernetes-auth role
//! admits exactly the functions' ServiceAccount in their namespace.

use std::collections::BTreeSet;

use coffeebuddy_shared::config::{ServiceIdentity, Settings, VaultSettings};
use serde_json::Value;

use crate::helpers::{Manifests, read_text, str_at};

const POLICY: &str = "vault/policy.hcl";
const ROLE: &str = "vault/role.json";
const SETUP: &str = "vault/setup.sh";

/// The Vault settings the functions use when only `VAULT_ADDR` and
/// `VAULT_ROLE` are set: the defaults, as the real loader computes them.
fn default_vault_settings() -> VaultSettings {
    let identity = ServiceIdentity {
        name: "vault-check",
        version: "0",
        requires_ory: false,
    };
    let settings = Settings::from_lookup(identity, &|name| {
        match name {
            "VAULT_ADDR" => Some("https://vault.example.internal"),
            "VAULT_ROLE" => Some("coffeebuddy"),
            "DATABASE_URL" => Some("postgres://u:p@db/coffeebuddy"),
            _ => None,
        }
        .map(str::to_owned)
    })
    .unwrap_or_else(|e| panic!("settings with Vault: {e}"));
    settings.vault.expect("VAULT_ADDR set: Vault settings")
}

/// `(path, capabilities)` of every `path` block; panics on anything else.
fn policy_paths(body: &hcl::Body) -> Vec<(String, Vec<String>)> {
    assert_eq!(
        body.attributes().count(),
        0,
        "{POLICY}: no top-level attributes"
    );
    body.blocks()
        .map(|block| {
            assert_eq!(block.identifier(), "path", "{POLICY}: only `path` blocks");
            let [label] = block.labels() else {
                panic!("{POLICY}: a path block has one label")
            };
            let mut capabilities = Vec::new();
            for attribute in block.body().attributes() {
                assert_eq!(
                    attribute.key(),
                    "capabilities",
                    "{POLICY}: {}: only capabilities (no parameters, no wrapping)",
                    label.as_str()
                );
                let hcl::Expression::Array(items) = attribute.expr() else {
                    panic!("{POLICY}: capabilities is a list")
                };
                for item in items {
                    let hcl::Expression::String(capability) = item else {
                        panic!("{POLICY}: capabilities are strings")
                    };
                    capabilities.push(capability.clone());
                }
            }
            assert_eq!(
                block.body().blocks().count(),
                0,
                "{POLICY}: no nested blocks"
            );
            (label.as_str().to_owned(), capabilities)
        })
        .collect()
}

#[test]
fn the_policy_grants_read_only_on_exactly_the_kv_v2_secret_the_functions_read_by_default() {
    let body = hcl::parse(&read_text(POLICY)).unwrap_or_else(|e| panic!("{POLICY}: {e}"));
    let vault = default_vault_settings();
    // KV v2 serves a secret's current version at <mount>/data/<path>.
    let expected = format!("{}/data/{}", vault.kv_mount, vault.secret_path);
    assert_eq!(expected, "secret/data/coffeebuddy", "DESIGN §4 defaults");
    assert_eq!(
        policy_paths(&body),
        [(expected, vec!["read".to_owned()])],
        "{POLICY}: read on exactly VAULT_KV_MOUNT/data/VAULT_SECRET_PATH"
    );
}

#[test]
fn the_policy_check_notices_a_broader_grant() {
    let broader = r#"path "secret/data/*" { capabilities = ["read", "list"] }"#;
    let body = hcl::parse(broader).expect("valid HCL");
    assert_ne!(
        policy_paths(&body),
        [(
            "secret/data/coffeebuddy".to_owned(),
            vec!["read".to_owned()]
        )]
    );
}

#[test]
fn the_kubernetes_auth_role_admits_only_the_functions_service_account_in_their_namespace() {
    let role: Value =
        serde_json::from_str(&read_text(ROLE)).unwrap_or_else(|e| panic!("{ROLE}: {e}"));
    let manifests = Manifests::load();
    let account = manifests
        .of_kind("v1", "ServiceAccount")
        .next()
        .expect("knative/serviceaccount.yaml")
        .name()
        .to_owned();
    let strings = |key: &str| -> Vec<String> {
        role[key]
            .as_array()
            .unwrap_or_else(|| panic!("{ROLE}: {key} is a list"))
            .iter()
            .filter_map(str_at)
            .collect()
    };
    assert_eq!(
        strings("bound_service_account_names"),
        [account],
        "{ROLE} vs knative/serviceaccount.yaml"
    );
    assert_eq!(
        strings("bound_service_account_namespaces"),
        [manifests.namespace()],
        "{ROLE} vs knative/kustomization.yaml"
    );
    assert_eq!(
        role["token_no_default_policy"], true,
        "{ROLE}: the token carries our policy alone"
    );
    let known: BTreeSet<&str> = [
        "bound_service_account_names",
        "bound_service_account_namespaces",
        "token_policies",
        "token_no_default_policy",
        "token_ttl",
        "token_max_ttl",
    ]
    .into();
    for key in role.as_object().expect("an object").keys() {
        assert!(known.contains(key.as_str()), "{ROLE}: unexpected {key}");
    }

    // setup.sh writes that policy under the name the role carries, and the
    // role where the functions log in (VAULT_AUTH_PATH's default).
    let setup = read_text(SETUP);
    let policy_name = setup
        .lines()
        .find_map(|l| l.trim().strip_prefix("vault policy write "))
        .and_then(|rest| rest.strip_suffix(" policy.hcl"))
        .unwrap_or_else(|| panic!("{SETUP}: `vault policy write NAME policy.hcl`"));
    assert_eq!(
        strings("token_policies"),
        [policy_name],
        "{ROLE} vs {SETUP}"
    );
    let vault = default_vault_settings();
    assert!(
        setup.contains(&format!(
            r#"auth_path="${{VAULT_AUTH_PATH:-{}}}""#,
            vault.auth_path
        )),
        "{SETUP}: the auth mount defaults to the functions' VAULT_AUTH_PATH default"
    );
    assert!(
        setup.contains(r#"vault write "auth/${auth_path}/role/coffeebuddy" @role.json"#),
        "{SETUP}: writes {ROLE} as the role coffeebuddy"
    );
    // The role the ConfigMap tells operators to name in VAULT_ROLE.
    assert!(read_text("knative/configmap.yaml").contains("VAULT_ROLE: coffeebuddy"));
}
