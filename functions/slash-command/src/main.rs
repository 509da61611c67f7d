//! Entry point of the `coffeebuddy-slash-command` function: all of it lives in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    coffeebuddy_shared::runtime::run(
        coffeebuddy_slash_command::IDENTITY,
        coffeebuddy_slash_command::service,
    )
    .await
}
