//! Readiness probes: what a dependency's owner (the database pool, the
//! Kafka sink, the Ory verifier) hands to the runtime to be checked on
//! `/health/ready`. A leaf module, so that those owners need not import the
//! runtime that wires them (no import circle).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// How much a failing probe matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Criticality {
    /// Failure makes the service unhealthy (503).
    Required,
    /// Failure makes the service degraded (still 200).
    Optional,
}

pub(crate) type CheckFn =
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), String>> + Send>> + Send + Sync;

/// One named readiness check.
#[derive(Clone)]
pub struct Probe {
    name: &'static str,
    pub(crate) criticality: Criticality,
    pub(crate) check: Arc<CheckFn>,
}

impl fmt::Debug for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Probe")
            .field("name", &self.name)
            .field("criticality", &self.criticality)
            .finish_non_exhaustive()
    }
}

impl Probe {
    /// A probe named `name` whose `check` returns `Err(reason)` on failure.
    /// The reason is shown to whoever can reach `/health/ready`: keep secrets
    /// and connection strings out of it.
    pub fn new<F, Fut>(name: &'static str, criticality: Criticality, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name,
            criticality,
            check: Arc::new(move || Box::pin(check())),
        }
    }

    /// The probe's name, as shown under `checks`.
    pub fn name(&self) -> &'static str {
        self.name
    }
}
