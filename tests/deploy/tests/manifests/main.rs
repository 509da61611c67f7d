//! The deployment files (`knative/`, `kong/`, `compose.yaml`, `vault/`,
//! the Dockerfiles), checked offline.
//!
//! Run with the rest: `scripts/test` (or `cargo test --workspace`); needs
//! `../shared/schemas` beside the repository, nothing else (no cluster, no
//! network).

/// What the code says: functions, routes, consumed event types, settings.
mod code;
/// The laptop stack against the Compose schema, the code and the manifests.
mod compose;
/// The manifests against each other and against the code.
mod consistency;
/// Every KafkaSource's dead-letter sink.
mod dead_letters;
/// The Dockerfiles against the workspace and the manifests.
mod dockerfile;
/// Loading every manifest once.
mod helpers;
/// The optional ServiceMonitor.
mod monitoring;
/// Scale to zero and request timeouts.
mod scaling;
/// Every manifest against its upstream schema.
mod schemas;
/// The Vault policy and Kubernetes-auth role.
mod vault;
