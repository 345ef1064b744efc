//! `circuitscope`: the general tool — forward passes, datasets, patching sweeps, training.

use clap::{Parser, Subcommand};

mod ablate;
mod attn;
mod attribute;
mod build_induction;
mod data;
mod dla;
mod faithfulness;
mod forward;
mod heads;
mod inputs;
mod patch;
mod train;
mod util;

#[global_allocator]
static GLOBAL: circuitscope::allocator::Allocator = circuitscope::allocator::Allocator;

/// Test and discover circuits inside transformer language models.
#[derive(Parser)]
#[command(name = "circuitscope", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Memory limit for the size checks made before anything is allocated (e.g. 64G; default:
    /// this machine's memory).
    #[arg(long, global = true, value_name = "SIZE")]
    max_memory: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the model on a prompt or on token ids; print top next tokens, save logits and activations.
    Forward(forward::ForwardArgs),
    /// Generate a task dataset (IOI, induction, greater-than, sequences) as JSON lines.
    Data(data::DataArgs),
    /// Activation patching, path patching and iterative path patching sweeps.
    Patch(patch::PatchArgs),
    /// Direct logit attribution per head and per layer (and copying scores).
    Dla(dla::DlaArgs),
    /// The logit lens over the accumulated residual stream.
    LogitLens(dla::LensArgs),
    /// Attention patterns of chosen heads on chosen prompts (optionally value-weighted).
    Attn(attn::Args),
    /// Mean-ablate everything but a circuit: faithfulness and completeness.
    Ablate(ablate::AblateArgs),
    /// Train a small GPT-2 from a RON config (AdamW on the CPU) and write a Hugging Face folder.
    Train(train::TrainArgs),
    /// Write the hand-built toy-induction model (a known induction circuit) as a Hugging Face folder.
    BuildInduction(build_induction::BuildInductionArgs),
    /// Previous-token, duplicate-token and induction scores of every head on repeated random tokens.
    Heads(heads::HeadsArgs),
    /// Gradient attribution of every edge (EAP, EAP-IG, AtP) and a circuit from the scores.
    Attribute(attribute::AttributeArgs),
    /// Faithfulness of circuits and curves over circuit size (MIB's CPR and CMD).
    Faithfulness(faithfulness::FaithfulnessArgs),
}

fn main() {
    let cli = Cli::parse();
    if let Some(m) = &cli.max_memory {
        // Before any work: the library's size checks read it.
        std::env::set_var(circuitscope::memory::LIMIT_ENV, m);
    }
    util::init_logging();
    let res = match &cli.command {
        Command::Forward(a) => forward::run(a),
        Command::Data(a) => data::run(a),
        Command::Patch(a) => patch::run(a),
        Command::Dla(a) => dla::run_dla(a),
        Command::LogitLens(a) => dla::run_lens(a),
        Command::Attn(a) => attn::run(a),
        Command::Ablate(a) => ablate::run(a),
        Command::Train(a) => train::run(a),
        Command::BuildInduction(a) => build_induction::run(a),
        Command::Heads(a) => heads::run(a),
        Command::Attribute(a) => attribute::run(a),
        Command::Faithfulness(a) => faithfulness::run(a),
    };
    util::exit_on_error(res);
}
