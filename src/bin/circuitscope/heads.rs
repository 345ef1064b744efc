//! `circuitscope heads`: previous-token, duplicate-token and induction scores of every head.

use anyhow::Result;
use circuitscope::detect::{self, HeadScores};
use circuitscope::model::{resolve::resolve_model, Model};
use circuitscope::tokenizer::Tokenizer;
use std::path::PathBuf;

/// Arguments of `circuitscope heads`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  circuitscope heads --model toy-induction\n  circuitscope heads --model toy-ioi --seq-len 10 --batch 100 --out heads.json\n\n\
Runs sequences [BOS] r r of random tokens r and scores each head by its mean attention: \
previous-token (to p − 1), duplicate-token (to the earlier copy of the same token), induction \
(to the token after the earlier copy), as in the IOI paper replication's validation of early \
heads."
)]
pub struct HeadsArgs {
    /// A model folder, a shipped model name or a Hugging Face id in the local cache.
    #[arg(long)]
    model: String,
    /// Random tokens per half.
    #[arg(long, default_value_t = 20)]
    seq_len: usize,
    /// Number of sequences.
    #[arg(long, default_value_t = 50)]
    batch: usize,
    /// Seed of the random tokens.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Do not put the BOS token first.
    #[arg(long)]
    no_bos: bool,
    /// Mark heads scoring at least this.
    #[arg(long, default_value_t = 0.5)]
    threshold: f64,
    /// Write the scores as JSON here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Run the command.
pub fn run(a: &HeadsArgs) -> Result<()> {
    let dir = resolve_model(&a.model)?;
    let model = Model::load(&dir, candle_core::DType::F32)?;
    let tok = Tokenizer::from_model_dir(&dir)?;
    let bos = if a.no_bos {
        None
    } else {
        Some(tok.bos_token_id().ok_or_else(|| {
            anyhow::anyhow!(
                "{}: the tokenizer has no BOS token; pass --no-bos",
                dir.join("tokenizer.json").display()
            )
        })?)
    };
    anyhow::ensure!(
        a.seq_len > 0 && a.batch > 0,
        "--seq-len and --batch must be positive"
    );
    let scores = detect::detect(&model, &tok.special_ids(), bos, a.seq_len, a.batch, a.seed)?;
    print_scores(&scores, a.threshold)?;
    if let Some(out) = &a.out {
        let text = serde_json::to_string_pretty(&scores)?;
        circuitscope::error::write_atomic(out, format!("{text}\n").as_bytes())?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}

fn print_scores(s: &HeadScores, threshold: f64) -> Result<()> {
    for name in detect::DETECTORS {
        let m = s.get(name)?;
        println!("{name} scores (rows: layers, columns: heads; * ≥ {threshold}):");
        print!("      ");
        for h in 0..m.first().map_or(0, Vec::len) {
            print!("{:>8}", format!("h{h}"));
        }
        println!();
        for (l, row) in m.iter().enumerate() {
            print!("  L{l:<3}");
            for &x in row {
                let mark = if x >= threshold { "*" } else { " " };
                print!("{:>7.3}{mark}", x);
            }
            println!();
        }
        println!();
    }
    Ok(())
}
