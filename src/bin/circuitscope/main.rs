//! `circuitscope`: the general tool — forward passes, datasets, patching sweeps, training.

use clap::{Parser, Subcommand};

mod data;
mod forward;
mod util;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Test and discover circuits inside transformer language models.
#[derive(Parser)]
#[command(name = "circuitscope", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the model on a prompt or on token ids; print top next tokens, save logits and activations.
    Forward(forward::ForwardArgs),
    /// Generate a task dataset (IOI, induction, greater-than, sequences) as JSON lines.
    Data(data::DataArgs),
}

fn main() {
    let cli = Cli::parse();
    util::init_logging();
    let res = match &cli.command {
        Command::Forward(a) => forward::run(a),
        Command::Data(a) => data::run(a),
    };
    util::exit_on_error(res);
}
