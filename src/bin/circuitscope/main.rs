//! The `circuitscope` command-line tool.

mod data;

use clap::{Parser, Subcommand};

/// Test and discover circuits inside transformer language models.
#[derive(Parser)]
#[command(name = "circuitscope", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a task dataset (IOI, induction, greater-than, sequences) as JSON lines.
    Data(data::DataArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .without_time()
        .with_target(false)
        .init();
    let cli = Cli::parse();
    let res = match &cli.command {
        Command::Data(args) => data::run(args),
    };
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
