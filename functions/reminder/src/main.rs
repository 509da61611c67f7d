//! Entry point of the `coffeebuddy-reminder` function: all of it lives in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    coffeebuddy_shared::runtime::run(
        coffeebuddy_reminder::IDENTITY,
        coffeebuddy_reminder::service,
    )
    .await
}
