use std::collections::BTreeMap;

use coffeebuddy_deploy_tests::{Document, load_document, load_documents, yaml_files};
use serde_json::Value;

/// The Kubernetes/Knative manifests of `knative/` that kustomize applies.
pub(crate) const KUSTOMIZATION: &str = "knative/kustomization.yaml";
/// The Secret template: validated, never applied as is.
pub(crate) const SECRET_TEMPLATE: &str = "knative/secret.template.yaml";
/// decK configuration.
pub(crate) const KONG: &str = "kong/kong.yaml";
/// Oathkeeper access rules for the operators' API.
pub(crate) const OATHKEEPER_RULES: &str = "kong/oathkeeper-rules.yaml";
/// The Oathkeeper configuration those rules need.
pub(crate) const OATHKEEPER_CONFIG: &str = "kong/oathkeeper.yaml";
/// The optional monitoring kustomization (Prometheus Operator).
pub(crate) const MONITORING_KUSTOMIZATION: &str = "knative/monitoring/kustomization.yaml";
/// The ServiceMonitor for the functions' metrics.
pub(crate) const SERVICE_MONITOR: &str = "knative/monitoring/servicemonitor.yaml";
/// The laptop stack.
pub(crate) const COMPOSE: &str = "compose.yaml";
/// The laptop stack's settings template.
pub(crate) const ENV_EXAMPLE: &str = ".env.example";
/// The function images.
pub(crate) const DOCKERFILE: &str = "Dockerfile";
/// The tansu broker image of the laptop stack.
pub(crate) const DOCKERFILE_TANSU: &str = "Dockerfile.tansu";
/// The KafkaSources.
pub(crate) const KAFKA_SOURCES: &str = "knative/kafkasources.yaml";

/// Every document of every manifest, loaded once per test.
#[derive(Debug)]
pub(crate) struct Manifests {
    /// Every Kubernetes/Knative document in `knative/` (kustomization aside),
    /// the Secret template included.
    pub(crate) knative: Vec<Document>,
    /// `knative/kustomization.yaml`.
    pub(crate) kustomization: Document,
    /// `kong/kong.yaml`.
    pub(crate) kong: Document,
    /// `kong/oathkeeper-rules.yaml`.
    pub(crate) oathkeeper_rules: Document,
    /// `kong/oathkeeper.yaml`.
    pub(crate) oathkeeper_config: Document,
}

impl Manifests {
    pub(crate) fn load() -> Self {
        let mut knative = Vec::new();
        for file in yaml_files("knative").expect("knative/ is listed") {
            if file != KUSTOMIZATION {
                knative.extend(load_documents(&file).unwrap_or_else(|e| panic!("{e:#}")));
            }
        }
        let one = |path: &str| load_document(path).unwrap_or_else(|e| panic!("{e:#}"));
        Self {
            knative,
            kustomization: one(KUSTOMIZATION),
            kong: one(KONG),
            oathkeeper_rules: one(OATHKEEPER_RULES),
            oathkeeper_config: one(OATHKEEPER_CONFIG),
        }
    }

    /// Documents of one kind.
    pub(crate) fn of_kind<'a>(
        &'a self,
        api_version: &'a str,
        kind: &'a str,
    ) -> impl Iterator<Item = &'a Document> + 'a {
        self.knative
            .iter()
            .filter(move |d| d.api_version() == api_version && d.kind() == kind)
    }

    /// Knative Services by name.
    pub(crate) fn ksvcs(&self) -> BTreeMap<String, &Document> {
        self.of_kind("serving.knative.dev/v1", "Service")
            .map(|d| (d.name().to_owned(), d))
            .collect()
    }

    /// The one ConfigMap called `name`.
    pub(crate) fn config_map(&self, name: &str) -> &Document {
        self.of_kind("v1", "ConfigMap")
            .find(|d| d.name() == name)
            .unwrap_or_else(|| panic!("no ConfigMap {name:?} in knative/"))
    }

    /// A key of the main ConfigMap, which every function loads.
    pub(crate) fn setting(&self, key: &str) -> String {
        str_at(&self.config_map("coffeebuddy-config").value["data"][key])
            .unwrap_or_else(|| panic!("ConfigMap coffeebuddy-config has no {key}"))
    }

    /// The namespace kustomize puts everything in.
    pub(crate) fn namespace(&self) -> String {
        str_at(&self.kustomization.value["namespace"]).expect("kustomization sets a namespace")
    }
}

/// A string value, if it is one.
pub(crate) fn str_at(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// The elements of an array (none when it is not one).
pub(crate) fn items(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// The host of an `http://host[:port][/path]` URL.
pub(crate) fn url_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    authority.split(':').next().unwrap_or_default()
}

/// The function a cluster-local Knative host belongs to:
/// `coffeebuddy-admin.coffeebuddy.svc.cluster.local` → `coffeebuddy-admin`,
/// when the namespace matches.
pub(crate) fn ksvc_of_host<'a>(host: &'a str, namespace: &str) -> Option<&'a str> {
    host.strip_suffix(&format!(".{namespace}.svc.cluster.local"))
}

/// A repository file as text.
pub(crate) fn read_text(path: &str) -> String {
    let full = coffeebuddy_deploy_tests::repo_root().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The one YAML document of `path`.
pub(crate) fn document(path: &str) -> Document {
    load_document(path).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The keys and values of an `.env` file (comments and blank lines skipped),
/// in order.
pub(crate) fn env_file(path: &str) -> Vec<(String, String)> {
    read_text(path)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (key, value) = l
                .split_once('=')
                .unwrap_or_else(|| panic!("{path}: {l:?} is not KEY=value"));
            (key.trim().to_owned(), value.trim().to_owned())
        })
        .collect()
}

/// A Dockerfile's instructions, `\`-continued lines joined, comments
/// dropped: (INSTRUCTION, arguments).
pub(crate) fn dockerfile(path: &str) -> Vec<(String, String)> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in read_text(path).lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(continued) = trimmed.strip_suffix('\\') {
            current.push_str(continued);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (instruction, args) = current.split_once(' ').unwrap_or((current.as_str(), ""));
        instructions.push((instruction.to_ascii_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    instructions
}
