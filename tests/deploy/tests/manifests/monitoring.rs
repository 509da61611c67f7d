//! The optional ServiceMonitor (`knative/monitoring/`): the upstream CRD
//! schema, and the same port, path and functions as the scrape annotations.

use std::collections::BTreeSet;

use coffeebuddy_deploy_tests::Schemas;
use serde_json::json;

use crate::code::{self, ksvc_name};
use crate::helpers::{
    MONITORING_KUSTOMIZATION, Manifests, SERVICE_MONITOR, document, items, str_at,
};

#[test]
fn the_service_monitor_matches_the_strict_crd_schema_which_refuses_a_typo() {
    let schemas = Schemas::load().unwrap_or_else(|e| panic!("{e:#}"));
    let monitor = document(SERVICE_MONITOR);
    schemas
        .validate(&monitor)
        .unwrap_or_else(|e| panic!("{e:#}"));
    let mut typo = monitor.clone();
    typo.value["spec"]["endpoints"][0]["pathh"] = json!("/metrics");
    assert!(
        schemas.validate(&typo).is_err(),
        "ServiceMonitor typo accepted"
    );
}

#[test]
fn the_service_monitor_scrapes_every_function_where_the_annotations_say() {
    let manifests = Manifests::load();
    let monitor = document(SERVICE_MONITOR).value;
    let spec = &monitor["spec"];
    let endpoints = items(&spec["endpoints"]);
    assert_eq!(endpoints.len(), 1, "{SERVICE_MONITOR}: one endpoint");
    let endpoint = &endpoints[0];

    let mut selected_names = BTreeSet::new();
    for expression in items(&spec["selector"]["matchExpressions"]) {
        if expression["key"] == "app.kubernetes.io/name" {
            assert_eq!(expression["operator"], "In");
            selected_names.extend(items(&expression["values"]).iter().filter_map(str_at));
        }
    }
    // Only the revision Services whose endpoints are the pods.
    assert_eq!(
        spec["selector"]["matchLabels"]["networking.internal.knative.dev/serviceType"], "Private",
        "{SERVICE_MONITOR}: the private revision Services"
    );

    let mut expected_names = BTreeSet::new();
    for function in code::functions() {
        let ksvcs = manifests.ksvcs();
        let ksvc = ksvcs.get(&ksvc_name(&function)).expect("checked elsewhere");
        let template = &ksvc.value["spec"]["template"];
        let annotations = &template["metadata"]["annotations"];
        let labels = &template["metadata"]["labels"];
        expected_names.insert(str_at(&labels["app.kubernetes.io/name"]).expect("name label"));
        assert_eq!(
            endpoint["targetPort"].to_string(),
            annotations["prometheus.io/port"]
                .as_str()
                .unwrap_or_default(),
            "{ksvc}: targetPort vs prometheus.io/port"
        );
        assert_eq!(
            endpoint["targetPort"], template["spec"]["containers"][0]["ports"][0]["containerPort"],
            "{ksvc}: targetPort vs containerPort"
        );
        assert_eq!(
            endpoint["path"], annotations["prometheus.io/path"],
            "{ksvc}: path"
        );
        for label in items(&spec["podTargetLabels"]).iter().filter_map(str_at) {
            // Knative adds serving.knative.dev/*; ours must be on the template.
            assert!(
                label.starts_with("serving.knative.dev/") || labels.get(&label).is_some(),
                "{ksvc}: podTargetLabels names {label}, which the pods do not carry"
            );
        }
    }
    assert_eq!(
        selected_names, expected_names,
        "{SERVICE_MONITOR}: functions selected"
    );
    assert_eq!(
        str_at(&endpoint["path"]),
        Some(manifests.setting("METRICS_PATH")),
        "METRICS_PATH"
    );

    // Its own kustomization, same namespace, not in the main one (the CRD
    // may be missing).
    let kustomization = document(MONITORING_KUSTOMIZATION).value;
    assert_eq!(
        str_at(&kustomization["namespace"]),
        Some(manifests.namespace())
    );
    assert_eq!(
        items(&kustomization["resources"]),
        [json!("servicemonitor.yaml")]
    );
    assert!(
        !items(&manifests.kustomization.value["resources"])
            .iter()
            .filter_map(str_at)
            .any(|r| r.contains("monitoring")),
        "the main kustomization must apply on clusters without the CRD"
    );
}
