use coffeebuddy_deploy_tests::{Schemas, errors};
use serde_json::{Value, json};

use crate::helpers::{Manifests, items};

fn schemas() -> Schemas {
    Schemas::load().unwrap_or_else(|e| panic!("{e:#}"))
}

#[test]
fn every_knative_and_kubernetes_document_matches_its_strict_upstream_schema() {
    let schemas = schemas();
    let manifests = Manifests::load();
    assert!(
        manifests.knative.len() >= 10,
        "too few documents: {manifests:#?}"
    );
    let failures: Vec<String> = manifests
        .knative
        .iter()
        .filter_map(|doc| schemas.validate(doc).err().map(|e| format!("{e:#}")))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn the_kong_configuration_matches_the_deck_schema() {
    let schemas = schemas();
    let kong = Manifests::load().kong;
    assert_eq!(kong.value["_format_version"], "3.0", "decK format 3.0");
    let problems = errors(schemas.kong(), &kong.value);
    assert!(problems.is_empty(), "{kong}:\n  {}", problems.join("\n  "));
}

#[test]
fn the_oathkeeper_rules_match_the_rule_schema_and_each_handler_config_its_own() {
    let schemas = schemas();
    let rules = Manifests::load().oathkeeper_rules;
    let problems = errors(schemas.oathkeeper_rules(), &rules.value);
    assert!(problems.is_empty(), "{rules}:\n  {}", problems.join("\n  "));
    assert!(!items(&rules.value).is_empty(), "{rules} holds no rule");
    for rule in items(&rules.value) {
        let handlers = items(&rule["authenticators"])
            .iter()
            .map(|h| ("authenticators", h))
            .chain([("authorizers", &rule["authorizer"])])
            .chain(items(&rule["mutators"]).iter().map(|h| ("mutators", h)));
        for (kind, handler) in handlers {
            let name = format!("{kind}.{}", handler["handler"].as_str().unwrap_or_default());
            let validator = schemas
                .oathkeeper_handler(&name)
                .unwrap_or_else(|| panic!("{rules}: unknown Oathkeeper handler {name}"));
            let config = handler.get("config").cloned().unwrap_or(json!({}));
            let problems = errors(validator, &config);
            assert!(
                problems.is_empty(),
                "{rules}, {name}:\n  {}",
                problems.join("\n  ")
            );
        }
    }
}

#[test]
fn the_oathkeeper_configuration_matches_its_schema() {
    let schemas = schemas();
    let config = Manifests::load().oathkeeper_config;
    let problems = errors(schemas.oathkeeper_config(), &config.value);
    assert!(
        problems.is_empty(),
        "{config}:\n  {}",
        problems.join("\n  ")
    );
}

/// Sets `value` at a JSON pointer whose parent exists.
fn set(doc: &mut Value, pointer: &str, key: &str, value: Value) {
    doc.pointer_mut(pointer)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("no object at {pointer}"))
        .insert(key.to_owned(), value);
}

#[test]
fn the_schemas_refuse_a_misspelt_field_so_the_checks_above_mean_something() {
    let schemas = schemas();
    let manifests = Manifests::load();

    let mut ksvc = manifests
        .ksvcs()
        .into_values()
        .next()
        .expect("a ksvc")
        .clone();
    set(
        &mut ksvc.value,
        "/spec/template/spec",
        "containerConcurency",
        json!(10),
    );
    assert!(schemas.validate(&ksvc).is_err(), "ksvc typo accepted");

    let mut source = manifests
        .of_kind("sources.knative.dev/v1", "KafkaSource")
        .next()
        .expect("a KafkaSource")
        .clone();
    set(
        &mut source.value,
        "/spec",
        "topic",
        json!("coffeebuddy.run-events.v1"),
    );
    assert!(
        schemas.validate(&source).is_err(),
        "KafkaSource typo accepted"
    );

    let mut config_map = manifests.config_map("coffeebuddy-config").clone();
    set(
        &mut config_map.value,
        "/data",
        "DATABASE_POOL_MAX",
        json!(5),
    );
    assert!(
        schemas.validate(&config_map).is_err(),
        "unquoted ConfigMap number accepted"
    );

    let mut kong = manifests.kong.value.clone();
    set(&mut kong, "/services/0/routes/0", "pathz", json!(["/x"]));
    assert!(
        !errors(schemas.kong(), &kong).is_empty(),
        "Kong typo accepted"
    );

    let mut oathkeeper = manifests.oathkeeper_config.value.clone();
    set(&mut oathkeeper, "/serve/proxy", "prot", json!(4455));
    assert!(
        !errors(schemas.oathkeeper_config(), &oathkeeper).is_empty(),
        "Oathkeeper config typo accepted"
    );

    let jwt = schemas
        .oathkeeper_handler("authenticators.jwt")
        .expect("the jwt authenticator schema");
    assert!(
        !errors(jwt, &json!({"jwks_url": ["https://x/jwks"]})).is_empty(),
        "jwt authenticator typo accepted"
    );
}
