//! Dead letters (DESIGN §5): every KafkaSource hands the events it gave up
//! on to the admin function's dead-letter intake.

use crate::code::{self, ksvc_name};
use crate::helpers::{KAFKA_SOURCES, Manifests, items, str_at};

/// The intake the lead builds on the admin function: any CloudEvent,
/// stored in `dead_letters`.
const INTAKE: &str = "/dead-letters";

#[test]
fn every_kafka_source_sends_what_it_gives_up_on_to_the_admin_functions_dead_letter_intake() {
    let manifests = Manifests::load();
    let ksvcs = manifests.ksvcs();
    let mut sources = 0;
    for source in manifests.of_kind("sources.knative.dev/v1", "KafkaSource") {
        sources += 1;
        let delivery = &source.value["spec"]["delivery"];
        let sink = &delivery["deadLetterSink"];
        let r = &sink["ref"];
        assert_eq!(
            r["apiVersion"], "serving.knative.dev/v1",
            "{source}: a ksvc"
        );
        assert_eq!(r["kind"], "Service", "{source}: a ksvc");
        assert!(r.get("namespace").is_none(), "{source}: same namespace");
        let name = str_at(&r["name"]).unwrap_or_else(|| panic!("{source}: no dead-letter sink"));
        assert!(
            ksvcs.contains_key(&name),
            "{source}: dead-letter sink {name} does not exist"
        );
        assert_eq!(
            name,
            ksvc_name("admin"),
            "{source}: the admin function keeps dead letters"
        );
        assert_eq!(sink["uri"], INTAKE, "{source}: relative to the admin ksvc");
        // Retries first: a dead letter is what retrying could not fix.
        assert!(
            delivery["retry"].as_u64().is_some_and(|n| n > 0),
            "{source}"
        );
    }
    assert!(sources > 0, "no KafkaSource in {KAFKA_SOURCES}");
    // The intake is internal: Kong never exposes it.
    for service in items(&manifests.kong.value["services"]) {
        for route in items(&service["routes"]) {
            for path in items(&route["paths"]).iter().filter_map(str_at) {
                assert!(!INTAKE.starts_with(&path), "Kong exposes {path}");
            }
        }
    }
}

#[test]
fn the_admin_function_serves_the_dead_letter_intake_the_sources_point_at() {
    assert!(
        code::routed_paths("admin").contains(INTAKE),
        "functions/admin routes no {INTAKE}: {:?}",
        code::routed_paths("admin")
    );
}
