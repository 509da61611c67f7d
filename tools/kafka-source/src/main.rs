//! Entry point of `coffeebuddy-kafka-source`, the laptop stack's stand-in
//! for Knative's KafkaSources: all of it lives in the library.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use coffeebuddy_kafka_source::{Config, Dispatcher, health_router, run};
use coffeebuddy_shared::config::{LogFormat, LogSettings};
use coffeebuddy_shared::runtime::{serve, shutdown_signal};
use coffeebuddy_shared::telemetry;

#[tokio::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            let _ = telemetry::init(&LogSettings {
                level: "info".to_owned(),
                format: LogFormat::Json,
            });
            tracing::error!(error = %format!("{e:#}"), "fatal error");
            return ExitCode::FAILURE;
        }
    };
    let _ = telemetry::init(&config.log);

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let dispatcher = match Dispatcher::new(
        config.delivery,
        config.dead_letter_url.clone(),
        shutdown.clone(),
    ) {
        Ok(dispatcher) => dispatcher,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "fatal error");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", config.port)).await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::error!(error = %e, port = config.port, "cannot listen");
            return ExitCode::FAILURE;
        }
    };
    let running = Arc::new(AtomicUsize::new(0));
    let mut health_stop = shutdown.clone();
    let health = tokio::spawn(serve(
        listener,
        health_router(Arc::clone(&running), config.sinks.len()),
        async move {
            let _ = health_stop.wait_for(|stop| *stop).await;
        },
    ));
    let stop = Arc::new(stop);
    let on_signal = Arc::clone(&stop);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = on_signal.send(true);
    });
    run(&config, dispatcher, running, shutdown.clone()).await;
    // The consumers end on shutdown, or when they cannot run at all.
    let requested = *shutdown.borrow();
    let _ = stop.send(true);
    let _ = health.await;
    if requested {
        tracing::info!("stopped cleanly");
        ExitCode::SUCCESS
    } else {
        tracing::error!("every consumer stopped; exiting so the container restarts");
        ExitCode::FAILURE
    }
}
