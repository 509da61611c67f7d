use std::collections::{BTreeMap, BTreeSet};

use coffeebuddy_shared::{config, events, runtime};
use serde_json::Value;

use crate::code::{self, ksvc_name};
use crate::helpers::{
    KONG, Manifests, OATHKEEPER_RULES, SECRET_TEMPLATE, items, ksvc_of_host, str_at, url_host,
};

/// DESIGN §3: who consumes what. The code is scanned too (`code::
/// consumed_types`); this table also covers handlers still on other branches.
fn design_consumers() -> BTreeMap<&'static str, Vec<&'static str>> {
    BTreeMap::from([
        ("slash-command", vec![events::RUN_CREATED]),
        (
            "interaction",
            vec![events::ORDER_PLACED, events::ORDER_UPDATED],
        ),
        ("close-run", vec![events::RUN_CLOSE_REQUESTED]),
        ("reminder", vec![events::RUN_CLOSED, events::PING]),
        ("admin", vec![events::PING]),
    ])
}

/// The ksvc a source's `spec.sink.ref` names (same namespace).
fn sink(doc: &coffeebuddy_deploy_tests::Document) -> String {
    let r = &doc.value["spec"]["sink"]["ref"];
    assert_eq!(
        r["apiVersion"], "serving.knative.dev/v1",
        "{doc}: sink is not a ksvc"
    );
    assert_eq!(r["kind"], "Service", "{doc}: sink is not a ksvc");
    assert!(
        r.get("namespace").is_none(),
        "{doc}: sink must stay in its namespace"
    );
    str_at(&r["name"]).unwrap_or_else(|| panic!("{doc}: sink has no name"))
}

/// The container of a ksvc (exactly one).
fn container(ksvc: &coffeebuddy_deploy_tests::Document) -> &Value {
    let containers = items(&ksvc.value["spec"]["template"]["spec"]["containers"]);
    assert_eq!(containers.len(), 1, "{ksvc}: one container");
    &containers[0]
}

fn annotation(ksvc: &coffeebuddy_deploy_tests::Document, key: &str) -> String {
    str_at(&ksvc.value["spec"]["template"]["metadata"]["annotations"][key])
        .unwrap_or_else(|| panic!("{ksvc}: no {key} annotation on the revision template"))
}

/// Every environment variable a function process gets: its `env` names and
/// the keys of the ConfigMaps it loads with `envFrom`.
fn environment(
    manifests: &Manifests,
    ksvc: &coffeebuddy_deploy_tests::Document,
) -> BTreeSet<String> {
    let c = container(ksvc);
    let mut names: BTreeSet<String> = items(&c["env"])
        .iter()
        .filter_map(|e| str_at(&e["name"]))
        .collect();
    for from in items(&c["envFrom"]) {
        assert!(
            from.get("secretRef").is_none(),
            "{ksvc}: load secrets key by key (secretKeyRef)"
        );
        let name = str_at(&from["configMapRef"]["name"])
            .unwrap_or_else(|| panic!("{ksvc}: envFrom without configMapRef"));
        let map = manifests.config_map(&name);
        names.extend(
            map.value["data"]
                .as_object()
                .into_iter()
                .flat_map(|data| data.keys().cloned()),
        );
    }
    names
}

#[test]
fn every_function_has_a_knative_service_and_every_service_a_function() {
    let manifests = Manifests::load();
    let expected: BTreeSet<String> = code::functions().iter().map(|f| ksvc_name(f)).collect();
    let actual: BTreeSet<String> = manifests.ksvcs().into_keys().collect();
    assert_eq!(actual, expected, "Knative Services vs functions/*");
    let design: BTreeSet<String> = design_consumers().keys().map(|f| ksvc_name(f)).collect();
    assert_eq!(design, expected, "DESIGN §2 functions vs functions/*");
}

#[test]
fn every_event_type_a_function_consumes_reaches_it() {
    let manifests = Manifests::load();
    let topic = manifests.setting("KAFKA_TOPIC_RUN_EVENTS");
    let mut delivered: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for source in manifests.of_kind("sources.knative.dev/v1", "KafkaSource") {
        let topics: Vec<_> = items(&source.value["spec"]["topics"])
            .iter()
            .filter_map(str_at)
            .collect();
        if topics.contains(&topic) {
            // Every CoffeeBuddy event type travels on the one run-events topic.
            delivered
                .entry(sink(source))
                .or_default()
                .extend(events::ALL_TYPES.iter().map(|t| (*t).to_owned()));
        }
    }
    for source in manifests.of_kind("sources.knative.dev/v1", "PingSource") {
        delivered
            .entry(sink(source))
            .or_default()
            .insert(events::PING.to_owned());
    }
    let design = design_consumers();
    let mut missing = Vec::new();
    for function in code::functions() {
        let mut consumed = code::consumed_types(&function);
        consumed.extend(
            design
                .get(function.as_str())
                .into_iter()
                .flatten()
                .map(|t| (*t).to_owned()),
        );
        assert!(!consumed.is_empty(), "{function} consumes nothing?");
        let got = delivered
            .get(&ksvc_name(&function))
            .cloned()
            .unwrap_or_default();
        missing.extend(
            consumed
                .difference(&got)
                .map(|t| format!("{function}: {t}")),
        );
    }
    assert!(
        missing.is_empty(),
        "consumed but never delivered:\n  {}",
        missing.join("\n  ")
    );
}

#[test]
fn each_kafka_consumer_has_one_source_with_its_own_group_on_the_configured_topic_and_brokers() {
    let manifests = Manifests::load();
    let topic = manifests.setting("KAFKA_TOPIC_RUN_EVENTS");
    assert_eq!(topic, config::DEFAULT_RUN_EVENTS_TOPIC, "DESIGN §3 topic");
    let brokers: Vec<String> = manifests
        .setting("KAFKA_BROKERS")
        .split(',')
        .map(|b| b.trim().to_owned())
        .collect();
    let mut groups = BTreeSet::new();
    let mut sinks = BTreeSet::new();
    for source in manifests.of_kind("sources.knative.dev/v1", "KafkaSource") {
        let spec = &source.value["spec"];
        let servers: Vec<String> = items(&spec["bootstrapServers"])
            .iter()
            .filter_map(str_at)
            .collect();
        assert_eq!(
            servers, brokers,
            "{source}: bootstrapServers vs KAFKA_BROKERS"
        );
        let topics: Vec<String> = items(&spec["topics"]).iter().filter_map(str_at).collect();
        assert_eq!(topics, std::slice::from_ref(&topic), "{source}: topics");
        let group =
            str_at(&spec["consumerGroup"]).unwrap_or_else(|| panic!("{source}: no consumerGroup"));
        assert!(
            groups.insert(group.clone()),
            "{source}: consumer group {group} is shared: the functions would split the events"
        );
        let sink = sink(source);
        assert!(
            sinks.insert(sink.clone()),
            "{source}: a second source for {sink} would deliver every event twice"
        );
        let delivery = &spec["delivery"];
        assert!(
            delivery["retry"].as_u64().is_some_and(|n| n > 0),
            "{source}: delivery.retry"
        );
        assert!(
            delivery["backoffPolicy"].is_string() && delivery["backoffDelay"].is_string(),
            "{source}: backoff"
        );
    }
    // Consumers of anything but pings need a KafkaSource.
    let design = design_consumers();
    for function in code::functions() {
        let mut consumed = code::consumed_types(&function);
        consumed.extend(
            design
                .get(function.as_str())
                .into_iter()
                .flatten()
                .map(|t| (*t).to_owned()),
        );
        let needs_kafka = consumed.iter().any(|t| t != events::PING);
        assert_eq!(
            sinks.contains(&ksvc_name(&function)),
            needs_kafka,
            "{function}: KafkaSource iff it consumes run events"
        );
    }
    // Pings: every minute, one source per function.
    let mut pinged = BTreeSet::new();
    for source in manifests.of_kind("sources.knative.dev/v1", "PingSource") {
        assert_eq!(
            source.value["spec"]["schedule"], "* * * * *",
            "{source}: every minute"
        );
        assert!(
            pinged.insert(sink(source)),
            "{source}: a function ticked twice a minute"
        );
    }
}

#[test]
fn every_source_sink_names_an_existing_knative_service() {
    let manifests = Manifests::load();
    let ksvcs = manifests.ksvcs();
    for source in manifests
        .knative
        .iter()
        .filter(|d| d.api_version() == "sources.knative.dev/v1")
    {
        let name = sink(source);
        assert!(
            ksvcs.contains_key(&name),
            "{source}: sink {name} is no Knative Service here"
        );
    }
}

#[test]
fn every_environment_variable_in_the_manifests_is_one_the_settings_read() {
    let manifests = Manifests::load();
    let vars = code::config_vars();
    let secret_keys = secret_template_keys(&manifests);
    for ksvc in manifests.ksvcs().values() {
        let env = environment(&manifests, ksvc);
        let unknown: Vec<_> = env.difference(&vars.all).collect();
        assert!(
            unknown.is_empty(),
            "{ksvc}: variables no setting reads (typo?): {unknown:?}"
        );
        // Knative sets PORT itself and refuses a Service that sets it.
        assert!(!env.contains("PORT"), "{ksvc}: PORT is Knative's");
        assert!(
            !env.contains("TICK_SECONDS"),
            "{ksvc}: TICK_SECONDS is for `local` only"
        );
    }
    for map in manifests.of_kind("v1", "ConfigMap") {
        for key in map.value["data"]
            .as_object()
            .into_iter()
            .flat_map(|d| d.keys())
        {
            assert!(
                vars.all.contains(key),
                "{map}: {key} is read by no setting (typo?)"
            );
            assert!(
                !vars.secrets.contains(key),
                "{map}: {key} is a secret: it belongs in the Secret"
            );
        }
    }
    for key in &secret_keys {
        assert!(
            vars.all.contains(key),
            "{SECRET_TEMPLATE}: {key} is read by no setting (typo?)"
        );
    }
    assert_eq!(
        manifests.setting("SERVICE_ENV"),
        "prod",
        "only dev accepts placeholder secrets"
    );
    assert_eq!(
        manifests
            .setting("KAFKA_SECURITY_PROTOCOL")
            .starts_with("sasl_"),
        secret_keys.contains("KAFKA_SASL_PASSWORD")
    );
}

fn secret_template_keys(manifests: &Manifests) -> BTreeSet<String> {
    let secret = manifests
        .of_kind("v1", "Secret")
        .find(|d| d.file == SECRET_TEMPLATE)
        .unwrap_or_else(|| panic!("no Secret in {SECRET_TEMPLATE}"));
    secret.value["stringData"]
        .as_object()
        .expect("the template uses stringData")
        .keys()
        .cloned()
        .collect()
}

/// Every `secretKeyRef` anywhere in a document.
fn secret_refs(value: &Value, found: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            if let Some(r) = map.get("secretKeyRef") {
                found.push((
                    str_at(&r["name"]).unwrap_or_default(),
                    str_at(&r["key"]).unwrap_or_default(),
                ));
            }
            map.values().for_each(|v| secret_refs(v, found));
        }
        Value::Array(list) => list.iter().for_each(|v| secret_refs(v, found)),
        _ => {}
    }
}

#[test]
fn secrets_come_from_the_secret_whose_template_holds_only_placeholders() {
    let manifests = Manifests::load();
    let vars = code::config_vars();
    let secret = manifests
        .of_kind("v1", "Secret")
        .find(|d| d.file == SECRET_TEMPLATE)
        .expect("the template");
    let secret_name = secret.name().to_owned();
    let data = secret.value["stringData"].as_object().expect("stringData");
    for name in &vars.secrets {
        let value = data
            .get(name)
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{secret}: no {name}"));
        assert!(
            value.starts_with("__REPLACE_WITH_") && value.ends_with("__"),
            "{secret}: {name} must be a __REPLACE_WITH_*__ placeholder, not a value"
        );
    }
    for doc in &manifests.knative {
        let mut refs = Vec::new();
        secret_refs(&doc.value, &mut refs);
        for (name, key) in refs {
            assert_eq!(name, secret_name, "{doc}: secretKeyRef to {name}");
            assert!(
                data.contains_key(&key),
                "{doc}: key {key} is not in {SECRET_TEMPLATE}"
            );
        }
    }
    // Every function reads every required secret; none is set in plain text.
    let needed: BTreeSet<&String> = vars
        .secrets
        .iter()
        .filter(|s| data.contains_key(*s))
        .collect();
    for ksvc in manifests.ksvcs().values() {
        let from_secret: BTreeSet<String> = items(&container(ksvc)["env"])
            .iter()
            .filter(|e| e["valueFrom"].get("secretKeyRef").is_some())
            .filter_map(|e| str_at(&e["name"]))
            .collect();
        for name in &needed {
            assert!(
                from_secret.contains(*name),
                "{ksvc}: {name} must come from the Secret"
            );
        }
        for e in items(&container(ksvc)["env"]) {
            let name = str_at(&e["name"]).unwrap_or_default();
            assert!(
                !vars.secrets.contains(&name) || e.get("value").is_none(),
                "{ksvc}: secret {name} in plain text"
            );
        }
    }
}

#[test]
fn only_the_functions_that_need_ory_get_the_ory_settings() {
    let manifests = Manifests::load();
    let ory: BTreeSet<String> = code::config_vars()
        .all
        .into_iter()
        .filter(|v| v.starts_with("ORY_"))
        .collect();
    assert_eq!(ory.len(), 3, "{ory:?}");
    for function in code::functions() {
        let ksvc = manifests
            .ksvcs()
            .get(&ksvc_name(&function))
            .copied()
            .expect("checked above");
        let env = environment(&manifests, ksvc);
        let has: BTreeSet<String> = env.intersection(&ory).cloned().collect();
        if code::requires_ory(&function) {
            assert_eq!(has, ory, "{ksvc}: needs every ORY_* variable");
        } else {
            assert!(
                has.is_empty(),
                "{ksvc}: ORY_* variables are all or nothing, and it needs none: {has:?}"
            );
        }
    }
}

#[test]
fn every_knative_service_runs_on_8080_with_health_probes_scaling_and_scraping() {
    let manifests = Manifests::load();
    let account = manifests
        .of_kind("v1", "ServiceAccount")
        .next()
        .expect("a ServiceAccount")
        .name()
        .to_owned();
    let metrics_path = manifests.setting("METRICS_PATH");
    for ksvc in manifests.ksvcs().values() {
        let spec = &ksvc.value["spec"]["template"]["spec"];
        let c = container(ksvc);
        let ports = items(&c["ports"]);
        assert_eq!(ports.len(), 1, "{ksvc}: one port");
        assert_eq!(ports[0]["containerPort"], 8080, "{ksvc}: DESIGN §4 PORT");
        assert_eq!(
            c["livenessProbe"]["httpGet"]["path"], "/health/live",
            "{ksvc}"
        );
        assert_eq!(
            c["readinessProbe"]["httpGet"]["path"], "/health/ready",
            "{ksvc}"
        );
        if let Some(startup) = c.get("startupProbe") {
            assert_eq!(startup["httpGet"]["path"], "/health/live", "{ksvc}");
        }
        let image = str_at(&c["image"]).unwrap_or_default();
        assert!(
            image
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':')),
            "{ksvc}: image {image} has no tag"
        );
        assert!(
            c["resources"]["requests"]["memory"].is_string(),
            "{ksvc}: resources"
        );
        assert!(
            c["resources"]["limits"]["memory"].is_string(),
            "{ksvc}: resources"
        );
        assert_eq!(
            spec["serviceAccountName"],
            account.as_str(),
            "{ksvc}: serviceAccountName"
        );
        assert!(
            spec["timeoutSeconds"]
                .as_u64()
                .is_some_and(|t| (1..=600).contains(&t)),
            "{ksvc}: timeoutSeconds"
        );

        let min: u32 = annotation(ksvc, "autoscaling.knative.dev/min-scale")
            .parse()
            .expect("min-scale is a number");
        let max: u32 = annotation(ksvc, "autoscaling.knative.dev/max-scale")
            .parse()
            .expect("max-scale is a number");
        assert!(
            min <= max && max > 0,
            "{ksvc}: min-scale {min}, max-scale {max}"
        );
        let target: u32 = annotation(ksvc, "autoscaling.knative.dev/target")
            .parse()
            .expect("target is a number");
        assert!(target > 0, "{ksvc}: target");

        assert_eq!(annotation(ksvc, "prometheus.io/scrape"), "true", "{ksvc}");
        assert_eq!(annotation(ksvc, "prometheus.io/port"), "8080", "{ksvc}");
        assert_eq!(
            annotation(ksvc, "prometheus.io/path"),
            metrics_path,
            "{ksvc}: METRICS_PATH"
        );
        assert_eq!(
            ksvc.value["metadata"]["labels"]["networking.knative.dev/visibility"], "cluster-local",
            "{ksvc}: reachable through Kong only"
        );
    }
}

#[test]
fn the_kustomization_lists_every_manifest_but_the_secret_template() {
    let manifests = Manifests::load();
    let listed: BTreeSet<String> = items(&manifests.kustomization.value["resources"])
        .iter()
        .filter_map(str_at)
        .map(|r| format!("knative/{r}"))
        .collect();
    let files: BTreeSet<String> = manifests
        .knative
        .iter()
        .map(|d| d.file.clone())
        .filter(|f| f != SECRET_TEMPLATE)
        .collect();
    assert_eq!(
        listed, files,
        "kustomization.yaml resources vs knative/*.yaml"
    );
}

/// The edge plugins that apply to a Kong service: global, on the service,
/// or on all of its routes.
fn plugins_of<'a>(kong: &'a Value, service: &'a Value) -> BTreeMap<String, &'a Value> {
    let mut plugins: BTreeMap<String, &Value> = BTreeMap::new();
    for plugin in items(&kong["plugins"])
        .iter()
        .chain(items(&service["plugins"]))
    {
        plugins.insert(
            str_at(&plugin["name"]).unwrap_or_default(),
            &plugin["config"],
        );
    }
    plugins
}

#[test]
fn kong_exposes_each_slack_path_on_the_function_that_serves_it_and_nothing_internal() {
    let manifests = Manifests::load();
    let namespace = manifests.namespace();
    let kong = &manifests.kong.value;
    let mut routed: BTreeMap<String, String> = BTreeMap::new();
    for service in items(&kong["services"]) {
        let host = url_host(service["url"].as_str().unwrap_or_default());
        for route in items(&service["routes"]) {
            assert_ne!(
                route["strip_path"], true,
                "{KONG}: functions expect the full path"
            );
            assert_ne!(
                route["preserve_host"], true,
                "{KONG}: Knative routes on the ksvc host"
            );
            for path in items(&route["paths"]).iter().filter_map(str_at) {
                assert!(
                    !(path == "/" || path.starts_with("/health") || path.starts_with("/metrics")),
                    "{KONG}: {path} is internal (CloudEvents, probes, metrics)"
                );
                routed.insert(path, host.to_owned());
            }
        }
    }
    // Every Slack path of every function, to that function's ksvc.
    for function in code::functions() {
        for path in code::routed_paths(&function)
            .into_iter()
            .filter(|p| p.starts_with("/slack/"))
        {
            let host = routed
                .get(&path)
                .unwrap_or_else(|| panic!("{KONG}: no route for {path} ({function})"));
            assert_eq!(
                ksvc_of_host(host, &namespace),
                Some(ksvc_name(&function).as_str()),
                "{KONG}: {path} goes to {host}, but {function} serves it"
            );
            routed.remove(&path);
        }
    }
    // What is left: the operators' API (checked below), nothing else.
    let admin_paths = code::routed_paths("admin");
    for path in routed.keys() {
        assert!(
            admin_paths.iter().any(|p| p.starts_with(path.as_str()))
                && path.starts_with("/admin/api/"),
            "{KONG}: {path} is served by no function"
        );
    }
    assert!(
        !routed.is_empty(),
        "{KONG}: no route for the operators' API"
    );
}

#[test]
fn the_admin_api_goes_through_oathkeeper_to_the_admin_function_with_the_ory_settings() {
    let manifests = Manifests::load();
    let namespace = manifests.namespace();
    let kong = &manifests.kong.value;
    let api_paths: Vec<String> = code::routed_paths("admin")
        .into_iter()
        .filter(|p| p.starts_with("/admin/api/"))
        .collect();
    assert!(
        !api_paths.is_empty(),
        "the admin function routes no /admin/api path"
    );

    let (service, route) = items(&kong["services"])
        .iter()
        .flat_map(|s| items(&s["routes"]).iter().map(move |r| (s, r)))
        .find(|(_, r)| {
            items(&r["paths"])
                .iter()
                .filter_map(str_at)
                .any(|p| p.starts_with("/admin/api/"))
        })
        .unwrap_or_else(|| panic!("{KONG}: no /admin/api route"));
    for path in items(&route["paths"]).iter().filter_map(str_at) {
        assert!(
            api_paths.iter().all(|p| p.starts_with(&path)),
            "{KONG}: {path} does not cover {api_paths:?}"
        );
    }
    let kong_upstream = url_host(service["url"].as_str().unwrap_or_default());
    assert!(
        ksvc_of_host(kong_upstream, &namespace).is_none(),
        "{KONG}: the admin API must go through Oathkeeper, not straight to {kong_upstream}"
    );
    let methods: BTreeSet<String> = items(&route["methods"]).iter().filter_map(str_at).collect();

    let rules = items(&manifests.oathkeeper_rules.value);
    let rule = rules
        .iter()
        .find(|r| {
            r["match"]["url"]
                .as_str()
                .is_some_and(|u| u.contains("/admin/api/v1/"))
        })
        .unwrap_or_else(|| panic!("{OATHKEEPER_RULES}: no rule for /admin/api/v1/"));
    let upstream = url_host(rule["upstream"]["url"].as_str().unwrap_or_default());
    assert_eq!(
        ksvc_of_host(upstream, &namespace),
        Some(ksvc_name("admin").as_str()),
        "{OATHKEEPER_RULES}: upstream"
    );
    assert_ne!(
        rule["upstream"]["preserve_host"], true,
        "{OATHKEEPER_RULES}: Knative routes on the ksvc host"
    );
    let rule_methods: BTreeSet<String> = items(&rule["match"]["methods"])
        .iter()
        .filter_map(str_at)
        .collect();
    assert_eq!(
        rule_methods, methods,
        "Kong route methods vs Oathkeeper rule methods"
    );

    // Only the jwt authenticator, with exactly the function's Ory settings;
    // the Authorization header reaches the function untouched (noop).
    let authenticators = items(&rule["authenticators"]);
    assert_eq!(
        authenticators.len(),
        1,
        "{OATHKEEPER_RULES}: one authenticator"
    );
    assert_eq!(
        authenticators[0]["handler"], "jwt",
        "{OATHKEEPER_RULES}: never anonymous/noop"
    );
    let jwt = &authenticators[0]["config"];
    let ory = manifests.config_map("coffeebuddy-admin-config");
    let one = |v: &Value| -> Vec<String> { items(v).iter().filter_map(str_at).collect() };
    assert_eq!(
        one(&jwt["jwks_urls"]),
        [str_at(&ory.value["data"]["ORY_JWKS_URL"]).unwrap()],
        "jwks_urls vs ORY_JWKS_URL"
    );
    assert_eq!(
        one(&jwt["trusted_issuers"]),
        [str_at(&ory.value["data"]["ORY_ISSUER_URL"]).unwrap()],
        "vs ORY_ISSUER_URL"
    );
    assert_eq!(
        one(&jwt["target_audience"]),
        [str_at(&ory.value["data"]["ORY_AUDIENCE"]).unwrap()],
        "vs ORY_AUDIENCE"
    );
    let algorithms: BTreeSet<String> = one(&jwt["allowed_algorithms"]).into_iter().collect();
    assert!(
        !algorithms.is_empty() && algorithms.iter().all(|a| a == "RS256" || a == "ES256"),
        "{OATHKEEPER_RULES}: the function accepts RS256/ES256 only: {algorithms:?}"
    );
    let mutators: Vec<_> = items(&rule["mutators"])
        .iter()
        .filter_map(|m| str_at(&m["handler"]))
        .collect();
    assert_eq!(
        mutators,
        ["noop"],
        "{OATHKEEPER_RULES}: the function must see the original token"
    );
}

#[test]
fn every_kong_service_has_the_edge_plugins_and_the_body_limit_matches_the_functions() {
    let manifests = Manifests::load();
    let kong = &manifests.kong.value;
    for service in items(&kong["services"]) {
        let name = service["name"].as_str().unwrap_or_default();
        let plugins = plugins_of(kong, service);
        let correlation = plugins
            .get("correlation-id")
            .unwrap_or_else(|| panic!("{KONG}: {name} has no correlation-id"));
        assert_eq!(
            correlation["header_name"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some(runtime::observe::CORRELATION_ID_HEADER.as_str()),
            "{KONG}: {name}: the header the functions read"
        );
        assert_eq!(
            correlation["echo_downstream"], true,
            "{KONG}: {name}: echo the id to the caller"
        );
        // `uuid#counter` has a `#`, which the functions refuse (they would
        // then log a different id than Kong's).
        assert_eq!(
            correlation["generator"], "uuid",
            "{KONG}: {name}: generator"
        );

        let limit = plugins
            .get("request-size-limiting")
            .unwrap_or_else(|| panic!("{KONG}: {name} has no request-size-limiting"));
        let unit: u64 = match limit["size_unit"].as_str().unwrap_or("megabytes") {
            "bytes" => 1,
            "kilobytes" => 1024,
            "megabytes" => 1024 * 1024,
            other => panic!("{KONG}: {name}: unknown size_unit {other}"),
        };
        let allowed = limit["allowed_payload_size"]
            .as_u64()
            .expect("allowed_payload_size")
            * unit;
        assert_eq!(
            allowed,
            runtime::MAX_BODY_BYTES as u64,
            "{KONG}: {name}: the functions' own body limit"
        );

        let rate = plugins
            .get("rate-limiting")
            .unwrap_or_else(|| panic!("{KONG}: {name} has no rate-limiting"));
        assert!(
            ["second", "minute", "hour"]
                .iter()
                .any(|w| rate[*w].as_u64().is_some_and(|n| n > 0)),
            "{KONG}: {name}: rate-limiting sets no limit"
        );
        assert!(
            plugins.contains_key("prometheus"),
            "{KONG}: {name} has no prometheus"
        );
        assert!(
            service["url"]
                .as_str()
                .is_some_and(|u| u.starts_with("http://")),
            "{KONG}: {name}: cluster-local http url"
        );
    }
}
