//! Readiness probes: what a dependency's owner (the database pool, the
//! Kafka sink, the Ory verifier) hands to the runtime to be checked on
//! `/health/ready`. A leaf module, so that those owners need not import the
//! runtime that wires them (no import circle).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a background probe reports until its first check has finished.
pub const NOT_CHECKED_YET: &str = "not checked yet (the first check is under way)";

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

    /// A probe whose `check` runs in the background, never on the path of
    /// a readiness answer: each answer reports the last finished check and
    /// starts the next one, unless one is running or the last one started
    /// less than `interval` ago. Until the first check has finished it
    /// reports `Err(`[`NOT_CHECKED_YET`]`)`. `check` must bound its own
    /// time (the runtime's probe timeout no longer applies to it).
    ///
    /// For optional dependencies that can be slow to check: a cold start's
    /// first readiness answer, which holds the request that woke the
    /// function, must not wait for them.
    pub fn in_background<F, Fut>(
        name: &'static str,
        criticality: Criticality,
        interval: Duration,
        check: F,
    ) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let state = Arc::new(Mutex::new(Background::default()));
        let check = Arc::new(check);
        Self::new(name, criticality, move || {
            let state = Arc::clone(&state);
            let check = Arc::clone(&check);
            async move {
                let (report, start) = {
                    let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
                    let due = !s.running && s.started_at.is_none_or(|t| t.elapsed() >= interval);
                    if due {
                        s.running = true;
                        s.started_at = Some(Instant::now());
                    }
                    let report = s
                        .last
                        .clone()
                        .unwrap_or_else(|| Err(NOT_CHECKED_YET.to_owned()));
                    (report, due)
                };
                if start {
                    tokio::spawn(async move {
                        // Its own task, so a panicking check still ends the
                        // run and the next answer starts another.
                        let result = tokio::spawn(check())
                            .await
                            .unwrap_or_else(|e| Err(format!("the check failed: {e}")));
                        let mut s = state.lock().unwrap_or_else(PoisonError::into_inner);
                        s.last = Some(result);
                        s.running = false;
                    });
                }
                report
            }
        })
    }

    /// The probe's name, as shown under `checks`.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// A background probe's state.
#[derive(Debug, Default)]
struct Background {
    /// The last finished check's result.
    last: Option<Result<(), String>>,
    /// When the last check started.
    started_at: Option<Instant>,
    /// Whether a check is running now.
    running: bool,
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::sync::Semaphore;

    use super::*;

    /// Runs the probe's check as the readiness endpoint would.
    async fn answer(probe: &Probe) -> Result<(), String> {
        (probe.check)().await
    }

    #[tokio::test]
    async fn a_background_probe_answers_without_waiting_and_reports_each_check_once_finished() {
        // Arrange: a check that fails the first time and succeeds after,
        // each time only once the test lets it finish.
        let runs = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(Semaphore::new(0));
        let probe = Probe::in_background("slow", Criticality::Optional, Duration::ZERO, {
            let runs = Arc::clone(&runs);
            let gate = Arc::clone(&gate);
            move || {
                let runs = Arc::clone(&runs);
                let gate = Arc::clone(&gate);
                async move {
                    let run = runs.fetch_add(1, Ordering::SeqCst);
                    gate.acquire().await.expect("open").forget();
                    if run == 0 {
                        Err("down".to_owned())
                    } else {
                        Ok(())
                    }
                }
            }
        });

        // Act: answers while the first check hangs.
        let first = answer(&probe).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while runs.load(Ordering::SeqCst) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "no check started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let second = answer(&probe).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started_while_running = runs.load(Ordering::SeqCst);
        gate.add_permits(1);
        let failed = wait_for_report(&probe, |r| {
            r.is_err() && r != &Err(NOT_CHECKED_YET.to_owned())
        })
        .await;
        gate.add_permits(1);
        let healthy = wait_for_report(&probe, Result::is_ok).await;

        // Assert
        assert_eq!(first, Err(NOT_CHECKED_YET.to_owned()));
        assert_eq!(second, Err(NOT_CHECKED_YET.to_owned()));
        assert_eq!(started_while_running, 1, "one check at a time");
        assert_eq!(failed, Err("down".to_owned()));
        assert_eq!(healthy, Ok(()));
    }

    #[tokio::test]
    async fn a_background_probe_checks_at_most_once_per_interval() {
        // Arrange
        let runs = Arc::new(AtomicUsize::new(0));
        let probe =
            Probe::in_background("cheap", Criticality::Optional, Duration::from_secs(3600), {
                let runs = Arc::clone(&runs);
                move || {
                    runs.fetch_add(1, Ordering::SeqCst);
                    async { Ok(()) }
                }
            });

        // Act
        let healthy = wait_for_report(&probe, Result::is_ok).await;
        for _ in 0..10 {
            answer(&probe).await.expect("still the last result");
        }

        // Assert
        assert_eq!(healthy, Ok(()));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_panicking_background_check_is_reported_and_tried_again() {
        // Arrange
        let runs = Arc::new(AtomicUsize::new(0));
        let probe = Probe::in_background("buggy", Criticality::Optional, Duration::ZERO, {
            let runs = Arc::clone(&runs);
            move || {
                let run = runs.fetch_add(1, Ordering::SeqCst);
                async move {
                    assert!(run > 0, "the first check panics");
                    Ok(())
                }
            }
        });

        // Act
        let failed = wait_for_report(&probe, |r| {
            r.as_ref().is_err_and(|e| e.contains("the check failed"))
        })
        .await;
        let healthy = wait_for_report(&probe, Result::is_ok).await;

        // Assert
        assert!(failed.is_err());
        assert_eq!(healthy, Ok(()));
    }

    /// Asks until the report satisfies `done` (at most 10 s); that report.
    async fn wait_for_report(
        probe: &Probe,
        done: impl Fn(&Result<(), String>) -> bool,
    ) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let report = answer(probe).await;
            if done(&report) {
                return report;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "last report: {report:?}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
