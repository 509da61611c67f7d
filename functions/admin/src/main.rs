//! Entry point of the `coffeebuddy-admin` function: all of it lives in the library.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    coffeebuddy_shared::runtime::run(coffeebuddy_admin::IDENTITY, coffeebuddy_admin::service).await
}
