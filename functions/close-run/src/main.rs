//! Entry point of the `coffeebuddy-close-run` function: all of it lives in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    coffeebuddy_shared::runtime::run(
        coffeebuddy_close_run::IDENTITY,
        coffeebuddy_close_run::service,
    )
    .await
}
