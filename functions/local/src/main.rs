//! Entry point of `coffeebuddy-local`: every function in one process.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    coffeebuddy_shared::runtime::run(coffeebuddy_local::IDENTITY, coffeebuddy_local::service).await
}
