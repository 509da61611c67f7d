//! The deployment manifests (`knative/`, `kong/`), checked offline.
//!
//! Run with the rest: `scripts/test` (or `cargo test --workspace`); needs
//! `../shared/schemas` beside the repository, nothing else (no cluster, no
//! network).

/// What the code says: functions, routes, consumed event types, settings.
mod code;
/// The manifests against each other and against the code.
mod consistency;
/// Loading every manifest once.
mod helpers;
/// Every manifest against its upstream schema.
mod schemas;
