//! Liveness and readiness (DESIGN §4).
//!
//! Liveness says only "the process answers". Readiness runs every registered
//! [`Probe`] concurrently, each under its own timeout, and folds the results:
//! a failing *required* probe (Postgres) makes the service `unhealthy` (503,
//! Kubernetes stops routing to it); a failing *optional* probe (Kafka, Ory's
//! JWKS) makes it `degraded` (200: work is delayed, not refused).

use std::collections::BTreeMap;

use std::future::Future;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;

pub use crate::probe::{Criticality, Probe};

/// How long one probe may take before it counts as failed.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Health of the service or of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything works.
    Healthy,
    /// Something optional is down; work is delayed, not lost.
    Degraded,
    /// Something required is down.
    Unhealthy,
}

/// The result of one probe.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// `healthy`, or `unhealthy`/`degraded` by the probe's criticality.
    pub status: Status,
    /// How long the probe took.
    pub latency_ms: u64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

/// The body of `/health/ready`.
#[derive(Debug, Clone, Serialize)]
pub struct ReadinessReport {
    /// Overall status.
    pub status: Status,
    /// The running version (`SERVICE_VERSION`).
    pub version: String,
    /// One entry per probe.
    pub checks: BTreeMap<&'static str, CheckReport>,
}

/// The set of probes a service is ready by.
#[derive(Debug, Clone)]
pub struct Readiness {
    version: String,
    timeout: Duration,
    probes: Vec<Probe>,
}

impl Readiness {
    /// No probes yet; reports `version`.
    pub fn new(version: impl Into<String>) -> Self {
        Self {
            version: version.into(),
            timeout: DEFAULT_PROBE_TIMEOUT,
            probes: Vec::new(),
        }
    }

    /// Sets the per-probe timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Adds a probe.
    pub fn with_probe(mut self, probe: Probe) -> Self {
        self.probes.push(probe);
        self
    }

    /// Adds probes.
    pub fn with_probes(mut self, probes: impl IntoIterator<Item = Probe>) -> Self {
        self.probes.extend(probes);
        self
    }

    /// Runs every probe concurrently and folds the results.
    pub async fn check(&self) -> ReadinessReport {
        let timeout = self.timeout;
        let runs = self.probes.iter().cloned().map(|probe| async move {
            let started = Instant::now();
            let outcome = match tokio::time::timeout(timeout, (probe.check)()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("timed out after {} ms", timeout.as_millis())),
            };
            let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let report = match outcome {
                Ok(()) => CheckReport {
                    status: Status::Healthy,
                    latency_ms,
                    error: None,
                },
                Err(error) => CheckReport {
                    status: match probe.criticality {
                        Criticality::Required => Status::Unhealthy,
                        Criticality::Optional => Status::Degraded,
                    },
                    latency_ms,
                    error: Some(error),
                },
            };
            (probe.name(), report)
        });
        let checks: BTreeMap<_, _> = futures_join_all(runs).await.into_iter().collect();
        let status = checks
            .values()
            .map(|c| c.status)
            .fold(Status::Healthy, worse);
        ReadinessReport {
            status,
            version: self.version.clone(),
            checks,
        }
    }
}

fn worse(a: Status, b: Status) -> Status {
    use Status::{Degraded, Healthy, Unhealthy};
    match (a, b) {
        (Unhealthy, _) | (_, Unhealthy) => Unhealthy,
        (Degraded, _) | (_, Degraded) => Degraded,
        (Healthy, Healthy) => Healthy,
    }
}

/// Awaits all futures concurrently, keeping their order. A tiny stand-in for
/// `futures::future::join_all`, to avoid a dependency for one call.
async fn futures_join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    for (i, f) in futures.into_iter().enumerate() {
        set.spawn(async move { (i, f.await) });
    }
    let mut out = Vec::with_capacity(set.len());
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(item) => out.push(item),
            // A probe that panics is a bug in the probe; re-raise it rather
            // than report a made-up status.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, v)| v).collect()
}

/// `GET /health/live`.
pub(crate) async fn live() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "healthy" }))
}

/// `GET /health/ready`.
pub(crate) async fn ready(State(readiness): State<Arc<Readiness>>) -> impl IntoResponse {
    let report = readiness.check().await;
    let code = match report.status {
        Status::Healthy | Status::Degraded => StatusCode::OK,
        Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
    };
    if report.status != Status::Healthy {
        tracing::warn!(status = ?report.status, checks = ?report.checks, "readiness check failed");
    }
    (code, Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &'static str, c: Criticality) -> Probe {
        Probe::new(name, c, || async { Ok(()) })
    }

    fn failing(name: &'static str, c: Criticality) -> Probe {
        Probe::new(name, c, || async { Err("connection refused".to_owned()) })
    }

    #[tokio::test]
    async fn no_probes_means_healthy() {
        let report = Readiness::new("1.0.0").check().await;
        assert_eq!(report.status, Status::Healthy);
        assert_eq!(report.version, "1.0.0");
    }

    #[tokio::test]
    async fn a_failing_optional_probe_degrades_and_a_failing_required_one_is_unhealthy() {
        let degraded = Readiness::new("v")
            .with_probe(ok("database", Criticality::Required))
            .with_probe(failing("kafka", Criticality::Optional))
            .check()
            .await;
        assert_eq!(degraded.status, Status::Degraded);
        assert_eq!(degraded.checks["kafka"].status, Status::Degraded);
        assert_eq!(
            degraded.checks["kafka"].error.as_deref(),
            Some("connection refused")
        );
        assert_eq!(degraded.checks["database"].status, Status::Healthy);

        let unhealthy = Readiness::new("v")
            .with_probe(failing("database", Criticality::Required))
            .with_probe(failing("kafka", Criticality::Optional))
            .check()
            .await;
        assert_eq!(unhealthy.status, Status::Unhealthy);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_times_out_without_delaying_the_others() {
        let report = Readiness::new("v")
            .with_timeout(Duration::from_millis(500))
            .with_probe(Probe::new("slow", Criticality::Required, || async {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(())
            }))
            .with_probe(ok("fast", Criticality::Required))
            .check()
            .await;
        assert_eq!(report.status, Status::Unhealthy);
        assert!(
            report.checks["slow"]
                .error
                .as_deref()
                .unwrap()
                .contains("timed out")
        );
        assert_eq!(report.checks["fast"].status, Status::Healthy);
    }
}
