//! The `tidings` binary: parses the command line and runs it.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = tidings::cli::Cli::parse();
    if let Err(e) = tidings::cli::run(cli).await {
        eprintln!("tidings: {e:#}");
        std::process::exit(1);
    }
}
