//! Entry point of the `coffeebuddy-interaction` function: all of it lives in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    coffeebuddy_shared::runtime::run(
        coffeebuddy_interaction::IDENTITY,
        coffeebuddy_interaction::service,
    )
    .await
}
