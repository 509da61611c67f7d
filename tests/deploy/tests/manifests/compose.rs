//! The laptop stack (`compose.yaml`, `.env.example`): the Compose
//! specification's schema, and agreement with the code and with the
//! Knative manifests it imitates. Never run here (no Docker engine).

use std::collections::{BTreeMap, BTreeSet};

use coffeebuddy_deploy_tests::{Schemas, errors};
use coffeebuddy_shared::config::{ServiceIdentity, Settings};
use coffeebuddy_shared::events;
use serde_json::{Map, Value, json};

use crate::code::{self, ksvc_name};
use crate::helpers::{
    COMPOSE, DOCKERFILE, ENV_EXAMPLE, KAFKA_SOURCES, Manifests, document, env_file, items,
    read_text, str_at, url_host,
};

fn services() -> Map<String, Value> {
    document(COMPOSE).value["services"]
        .as_object()
        .cloned()
        .unwrap_or_else(|| panic!("{COMPOSE} has no services"))
}

/// The services of one profile.
fn profile(services: &Map<String, Value>, name: &str) -> BTreeSet<String> {
    services
        .iter()
        .filter(|(_, s)| items(&s["profiles"]).iter().any(|p| p == name))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The FUNCTION a service's image is built with from the repo Dockerfile.
fn built_function(service: &Value) -> Option<String> {
    (service["build"]["dockerfile"] == DOCKERFILE)
        .then(|| str_at(&service["build"]["args"]["FUNCTION"]))
        .flatten()
}

fn environment(name: &str, service: &Value) -> BTreeMap<String, String> {
    service["environment"]
        .as_object()
        .unwrap_or_else(|| panic!("{COMPOSE}: {name} has no environment map"))
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), value)
        })
        .collect()
}

/// The variables `${NAME…}` that a YAML text interpolates (comment lines
/// aside), with whether each has a default (`:-`) or is required (`:?`).
fn interpolated(text: &str) -> BTreeMap<String, bool> {
    let text: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeMap::new();
    for (at, _) in text.match_indices("${") {
        let rest = &text[at + 2..];
        let end = rest.find('}').unwrap_or(rest.len());
        let inner = &rest[..end];
        let name: String = inner
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            !name.is_empty(),
            "a ${{…}} without a variable name: ${{{inner}}}"
        );
        let has_default = inner[name.len()..].starts_with(":-");
        found.insert(name, has_default);
    }
    found
}

/// `value` as compose fills it in from `vars` (the `.env` file): `${NAME}`,
/// `${NAME:-default}` and `${NAME:?message}` (which must then be set).
fn interpolate(value: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find("${") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let end = after
            .find('}')
            .unwrap_or_else(|| panic!("unclosed ${{ in {value}"));
        let inner = &after[..end];
        let (name, modifier) = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or((inner, ""), |i| inner.split_at(i));
        let set = vars.get(name).filter(|v| !v.is_empty());
        match (set, modifier.get(..2)) {
            (Some(v), _) => out.push_str(v),
            (None, Some(":-")) => out.push_str(&modifier[2..]),
            (None, _) => {
                panic!("{COMPOSE}: ${{{name}}} is required and {ENV_EXAMPLE} does not set it")
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_compose_file_matches_the_compose_specification_which_refuses_a_typo() {
    let schemas = Schemas::load().unwrap_or_else(|e| panic!("{e:#}"));
    let compose = document(COMPOSE);
    let problems = errors(schemas.compose(), &compose.value);
    assert!(
        problems.is_empty(),
        "{COMPOSE}:\n  {}",
        problems.join("\n  ")
    );

    let mut typo = compose.value.clone();
    typo["services"]["postgres"]["healthchek"] = json!({"test": ["CMD", "true"]});
    assert!(
        !errors(schemas.compose(), &typo).is_empty(),
        "the compose schema accepted a misspelt field"
    );
}

#[test]
fn each_profile_runs_what_it_promises_and_all_runs_every_function_as_its_own_container() {
    let services = services();
    let functions = code::functions();
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| (*s).to_owned()).collect() };

    assert_eq!(
        profile(&services, "core"),
        set(&["local", "postgres"]),
        "core"
    );
    assert_eq!(
        profile(&services, "events"),
        set(&["local-kafka", "postgres", "tansu", "tansu-topic"]),
        "events"
    );
    let mut all = set(&["postgres", "tansu", "tansu-topic", "kafka-source", "pinger"]);
    all.extend(functions.iter().cloned());
    assert_eq!(profile(&services, "all"), all, "all");
    for (name, service) in &services {
        assert!(
            !items(&service["profiles"]).is_empty(),
            "{COMPOSE}: {name} is in no profile"
        );
    }

    // `all`: each function from its own image, as one ksvc per function,
    // with its ksvc's SERVICE_NAME and Kafka, never in-process events.
    for function in &functions {
        let service = &services[function.as_str()];
        assert_eq!(
            built_function(service).as_deref(),
            Some(function.as_str()),
            "{function}"
        );
        let env = environment(function, service);
        assert_eq!(
            env.get("SERVICE_NAME"),
            Some(&ksvc_name(function)),
            "{function}"
        );
        assert_eq!(
            env.get("KAFKA_BROKERS").map(String::as_str),
            Some("tansu:9092"),
            "{function}"
        );
    }
    // `core`: no broker; `events`: the broker.
    assert!(!environment("local", &services["local"]).contains_key("KAFKA_BROKERS"));
    assert!(environment("local-kafka", &services["local-kafka"]).contains_key("KAFKA_BROKERS"));
}

#[test]
fn every_image_built_from_the_repo_dockerfile_names_a_function_that_exists() {
    let buildable = code::buildable();
    let services = services();
    let mut built = BTreeSet::new();
    for (name, service) in &services {
        if service.get("build").is_none() {
            // Only images that another service builds may be reused.
            let image = str_at(&service["image"]).unwrap_or_default();
            if image.starts_with("coffeebuddy/") {
                assert!(
                    services
                        .values()
                        .any(|s| s.get("build").is_some() && s["image"] == image.as_str()),
                    "{COMPOSE}: {name} uses {image}, which no service builds"
                );
            }
            continue;
        }
        if let Some(function) = built_function(service) {
            assert!(
                buildable.contains_key(&function),
                "{COMPOSE}: {name} builds FUNCTION={function}, which is none of {:?}",
                buildable.keys()
            );
            assert_eq!(
                str_at(&service["image"]),
                Some(format!("coffeebuddy/{function}:dev")),
                "{COMPOSE}: {name}: one image name per FUNCTION"
            );
            built.insert(function);
        }
    }
    assert!(built.len() >= 6, "too few images built: {built:?}");
}

#[test]
fn compose_gives_each_process_only_variables_its_settings_read() {
    let vars = code::config_vars();
    let stand_in: BTreeSet<String> = coffeebuddy_kafka_source::ENV_VARS
        .iter()
        .map(|v| (*v).to_owned())
        .collect();
    let mut checked = 0;
    for (name, service) in &services() {
        let Some(function) = built_function(service) else {
            continue;
        };
        if service.get("entrypoint").is_some() {
            continue;
        }
        let known = if function == "kafka-source" {
            &stand_in
        } else {
            &vars.all
        };
        let env = environment(name, service);
        let unknown: Vec<_> = env.keys().filter(|k| !known.contains(*k)).collect();
        assert!(
            unknown.is_empty(),
            "{COMPOSE}: {name}: variables nothing reads (typo?): {unknown:?}"
        );
        assert!(
            !env.contains_key("PORT"),
            "{COMPOSE}: {name}: containers listen on 8080"
        );
        checked += 1;
    }
    assert!(checked >= 7, "checked only {checked} services");
}

#[test]
fn secrets_come_from_the_env_file_whose_template_holds_placeholders_refused_outside_dev() {
    let vars = code::config_vars();
    let example: BTreeMap<String, String> = env_file(ENV_EXAMPLE).into_iter().collect();
    for (name, service) in &services() {
        let Some(function) = built_function(service) else {
            continue;
        };
        if function == "kafka-source" {
            continue;
        }
        for (key, value) in environment(name, service) {
            if vars.secrets.contains(&key) {
                // Each secret is interpolated from .env, required (`:?`), so
                // no secret is written in compose.yaml or baked in an image.
                let refs = interpolated(&value);
                assert!(
                    !refs.is_empty() && refs.values().all(|has_default| !has_default),
                    "{COMPOSE}: {name}: {key} must come from .env without a default: {value}"
                );
                for var in refs.keys() {
                    let placeholder = example
                        .get(var)
                        .unwrap_or_else(|| panic!("{ENV_EXAMPLE} has no {var} (for {key})"));
                    assert!(
                        placeholder.starts_with("__REPLACE_WITH_") && placeholder.ends_with("__"),
                        "{ENV_EXAMPLE}: {var} must be a __REPLACE_WITH_…__ placeholder"
                    );
                }
            }
        }
    }
    // The placeholders only pass in dev, which the template says.
    assert_eq!(example.get("SERVICE_ENV").map(String::as_str), Some("dev"));
    // Each function's environment, as compose fills it in from the template,
    // through the real settings loader: it starts as shipped (dev), and
    // refuses every placeholder once SERVICE_ENV says prod.
    let mut prod = example.clone();
    prod.insert("SERVICE_ENV".to_owned(), "prod".to_owned());
    let mut loaded = 0;
    for (name, service) in &services() {
        let Some(function) = built_function(service) else {
            continue;
        };
        if function == "kafka-source" {
            continue;
        }
        let identity = ServiceIdentity {
            name: "compose-check",
            version: "0",
            requires_ory: function != "local" && code::requires_ory(&function),
        };
        let env = environment(name, service);
        let as_shipped = |vars: &BTreeMap<String, String>| {
            let env: BTreeMap<String, String> = env
                .iter()
                .map(|(k, v)| (k.clone(), interpolate(v, vars)))
                .collect();
            Settings::from_lookup(identity, &|n| env.get(n).cloned())
        };
        as_shipped(&example).unwrap_or_else(|e| {
            panic!("{COMPOSE}: {name} must start with {ENV_EXAMPLE} as is: {e}")
        });
        let refused = as_shipped(&prod).expect_err("placeholders outside dev");
        let refused: BTreeSet<&str> = refused.vars().into_iter().collect();
        for var in ["SLACK_SIGNING_SECRET", "SLACK_BOT_TOKEN", "DATABASE_URL"] {
            assert!(
                refused.contains(var),
                "{COMPOSE}: {name}: {var} not refused in prod: {refused:?}"
            );
        }
        loaded += 1;
    }
    assert!(loaded >= 7, "loaded only {loaded} services' settings");
}

#[test]
fn every_variable_compose_interpolates_is_in_the_template_and_every_template_line_is_used() {
    let used = interpolated(&read_text(COMPOSE));
    let example: BTreeSet<String> = env_file(ENV_EXAMPLE).into_iter().map(|(k, _)| k).collect();
    for (var, has_default) in &used {
        assert!(
            *has_default || example.contains(var),
            "{COMPOSE} requires ${{{var}}}, which {ENV_EXAMPLE} does not set"
        );
    }
    let optional_images = ["POSTGRES_IMAGE"];
    for var in &example {
        assert!(
            used.contains_key(var),
            "{ENV_EXAMPLE}: {var} is used nowhere in {COMPOSE}"
        );
    }
    for var in optional_images {
        assert!(used.contains_key(var), "{COMPOSE}: ${{{var}}}");
    }
}

#[test]
fn every_long_running_service_is_non_root_and_has_a_healthcheck_on_readiness() {
    for (name, service) in &services() {
        let user =
            str_at(&service["user"]).unwrap_or_else(|| panic!("{COMPOSE}: {name} sets no user"));
        assert!(
            !matches!(user.as_str(), "root" | "0" | "0:0") && !user.starts_with("0:"),
            "{COMPOSE}: {name} runs as root"
        );
        let one_shot = service["restart"] == "no";
        let test = items(&service["healthcheck"]["test"])
            .iter()
            .filter_map(str_at)
            .collect::<Vec<_>>()
            .join(" ");
        if one_shot || name == "pinger" {
            continue;
        }
        assert!(!test.is_empty(), "{COMPOSE}: {name} has no healthcheck");
        if built_function(service).is_some() {
            assert!(
                test.contains("/dev/tcp/127.0.0.1/8080")
                    && test.contains("GET /health/ready")
                    && test.contains(" 200 "),
                "{COMPOSE}: {name}: healthy means 200 on /health/ready: {test}"
            );
            assert_eq!(
                service["read_only"], true,
                "{COMPOSE}: {name}: read-only root"
            );
            assert_eq!(
                items(&service["cap_drop"]),
                [json!("ALL")],
                "{COMPOSE}: {name}: no capabilities"
            );
        }
    }
}

#[test]
fn the_kafka_source_stand_in_mirrors_the_kafka_sources_and_their_dead_letter_sink() {
    let manifests = Manifests::load();
    let services = services();
    let stand_in = &services["kafka-source"];
    let example: BTreeMap<String, String> = env_file(ENV_EXAMPLE).into_iter().collect();
    let env = environment("kafka-source", stand_in);
    let config = coffeebuddy_kafka_source::Config::from_lookup(&|name| {
        env.get(name).map(|v| interpolate(v, &example))
    })
    .unwrap_or_else(|e| panic!("{COMPOSE}: kafka-source: {e:#}"));

    // The compose service of a ksvc: coffeebuddy-<function> → <function>.
    let compose_service = |ksvc: &str| -> String {
        let function = ksvc.strip_prefix("coffeebuddy-").unwrap_or(ksvc);
        assert!(
            services.contains_key(function),
            "{COMPOSE}: no service for {ksvc}"
        );
        function.to_owned()
    };
    let mut expected = BTreeMap::new();
    let mut dead_letter = None;
    for source in manifests.of_kind("sources.knative.dev/v1", "KafkaSource") {
        let spec = &source.value["spec"];
        let group = str_at(&spec["consumerGroup"]).expect("consumerGroup");
        let sink = str_at(&spec["sink"]["ref"]["name"]).expect("sink");
        expected.insert(group, format!("http://{}:8080/", compose_service(&sink)));
        let delivery = &spec["delivery"];
        assert_eq!(
            delivery["retry"].as_u64(),
            Some(u64::from(config.delivery.retry)),
            "{KAFKA_SOURCES} vs {COMPOSE}: retry"
        );
        assert_eq!(delivery["backoffPolicy"], "exponential");
        assert_eq!(delivery["backoffDelay"], "PT0.5S");
        let dls = &delivery["deadLetterSink"];
        dead_letter = Some(format!(
            "http://{}:8080{}",
            compose_service(dls["ref"]["name"].as_str().unwrap_or_default()),
            dls["uri"].as_str().unwrap_or_default()
        ));
    }
    assert_eq!(config.delivery.backoff_delay.as_millis(), 500, "PT0.5S");
    let actual: BTreeMap<String, String> = config
        .sinks
        .iter()
        .map(|s| (s.group.clone(), s.url.clone()))
        .collect();
    assert_eq!(
        actual, expected,
        "{COMPOSE}: KAFKA_SOURCE_SINKS vs {KAFKA_SOURCES}"
    );
    assert_eq!(config.dead_letter_url, dead_letter, "dead-letter sink");
    assert_eq!(config.topic, manifests.setting("KAFKA_TOPIC_RUN_EVENTS"));
    // It starts once every function it feeds is healthy.
    for url in actual.values() {
        let host = url_host(url);
        assert_eq!(
            stand_in["depends_on"][host]["condition"], "service_healthy",
            "{COMPOSE}: kafka-source waits for {host}"
        );
    }
}

#[test]
fn the_pinger_ticks_exactly_the_functions_that_have_a_ping_source() {
    let manifests = Manifests::load();
    let services = services();
    let pinger = &services["pinger"];
    let script = items(&pinger["command"])
        .iter()
        .filter_map(str_at)
        .collect::<Vec<_>>()
        .join("\n");
    let pinged: BTreeSet<String> = script
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ping "))
        .filter_map(|rest| rest.strip_suffix(" &"))
        .map(|name| format!("coffeebuddy-{}", name.trim()))
        .collect();
    let expected: BTreeSet<String> = manifests
        .of_kind("sources.knative.dev/v1", "PingSource")
        .filter_map(|s| str_at(&s.value["spec"]["sink"]["ref"]["name"]))
        .collect();
    assert_eq!(pinged, expected, "{COMPOSE}: pinger vs PingSources");
    assert!(
        script.contains(&format!("ce-type: {}", events::PING)),
        "the ping type"
    );
    assert!(
        script.contains("sleep \"$$TICK_SECONDS\""),
        "every TICK_SECONDS"
    );
    let tick = environment("pinger", pinger);
    let reminder = environment("reminder", &services["reminder"]);
    assert_eq!(
        tick.get("TICK_SECONDS"),
        reminder.get("TICK_SECONDS"),
        "the reminder looks one tick ahead: same period"
    );
}
