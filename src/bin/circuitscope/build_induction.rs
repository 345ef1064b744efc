//! `circuitscope build-induction`: write the hand-built `toy-induction` model.

use anyhow::Result;
use circuitscope::toy::induction::InductionSpec;
use circuitscope::toy::induction_card;
use std::path::PathBuf;

/// Arguments of `circuitscope build-induction`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  circuitscope build-induction --out models/toy-induction\n\n\
Writes config.json, model.safetensors, tokenizer.json (a Hugging Face GPT-2 folder), \
CIRCUIT.json (the ground-truth circuit and every edge's measured effect), metrics.json and \
MODEL.md. The weights are written by a program, not trained: the same options give the same \
bytes."
)]
pub struct BuildInductionArgs {
    /// The model folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Ordinary tokens t0 … t{N-1} in the vocabulary (even; ≤ 60 with the default context).
    #[arg(long, default_value_t = InductionSpec::default().n_tokens)]
    n_tokens: usize,
    /// Context length.
    #[arg(long, default_value_t = InductionSpec::default().n_ctx)]
    n_ctx: usize,
}

/// Run the command.
pub fn run(a: &BuildInductionArgs) -> Result<()> {
    if a.out.is_file() {
        anyhow::bail!("--out {}: is a file; give a folder", a.out.display());
    }
    let spec = InductionSpec {
        n_tokens: a.n_tokens,
        n_ctx: a.n_ctx,
        ..Default::default()
    };
    let (m, c) = induction_card::write(&a.out, &spec)?;
    eprintln!(
        "loss first copy {:.3}, second copy {:.4}; top-1 on repeats {:.1}%",
        m.loss_first,
        m.loss_repeat,
        100.0 * m.top1_repeat
    );
    eprintln!(
        "previous-token a0.h0 {:.3}, induction a1.h0 {:.3}; circuit: {} edges ({} under resampling)",
        m.heads.previous_token[0][0],
        m.heads.induction[1][0],
        c.edges.len(),
        c.edges_resample.len()
    );
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
