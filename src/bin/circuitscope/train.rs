//! `circuitscope train`: train a small GPT-2 from a RON config and write a Hugging Face folder.

use anyhow::Result;
use circuitscope::train::{self, TrainConfig};
use std::path::PathBuf;

/// Arguments of `circuitscope train`.
#[derive(clap::Args)]
#[command(
    after_help = "Example:\n  circuitscope train --config configs/train/toy-ioi.ron --out models/toy-ioi\n\n\
The folder gets config.json, model.safetensors, tokenizer.json (loadable by Hugging Face \
transformers and by `circuitscope forward`), metrics.json, train_log.csv and MODEL.md. A \
checkpoint is kept in OUT/checkpoint while training; --resume continues from it and gives the \
same weights as an uninterrupted run."
)]
pub struct TrainArgs {
    /// The training config (RON), e.g. configs/train/toy-ioi.ron.
    #[arg(long)]
    config: PathBuf,
    /// The model folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Continue from OUT/checkpoint if it exists.
    #[arg(long)]
    resume: bool,
    /// Override the number of steps (for quick trials; the card records the steps used).
    #[arg(long)]
    steps: Option<usize>,
}

/// Run the command.
pub fn run(a: &TrainArgs) -> Result<()> {
    let mut cfg = TrainConfig::from_file(&a.config)?;
    if let Some(s) = a.steps {
        anyhow::ensure!(s > 0, "--steps must be positive");
        cfg.steps = s;
    }
    if a.out.is_file() {
        anyhow::bail!("--out {}: is a file; give a folder", a.out.display());
    }
    let bar = indicatif::ProgressBar::new(cfg.steps as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut ema: Option<f64> = None;
    let out = train::train(&cfg, &a.out, a.resume, &mut |s| {
        let e = match ema {
            Some(x) => 0.95 * x + 0.05 * s.loss,
            None => s.loss,
        };
        ema = Some(e);
        bar.set_position(s.step as u64);
        bar.set_message(format!("loss {e:.4}  lr {:.2e}", s.lr));
        if !bar.is_hidden() {
            return;
        }
        if s.step % 100 == 0 || s.step == s.steps {
            eprintln!("step {}/{}  loss {e:.4}  lr {:.2e}", s.step, s.steps, s.lr);
        }
    })?;
    bar.finish_and_clear();
    let m = &out.metrics;
    eprintln!(
        "trained {} steps in {:.0} s; final loss {:.4}",
        out.steps, out.wall_s, out.final_loss
    );
    eprintln!(
        "held-out: logit diff {:.3} ± {:.3}, top-1 {:.1}%; ABC mean diff {:.3}; train split \
         logit diff {:.3}",
        m.heldout.logit_diff,
        m.heldout.logit_diff_se,
        100.0 * m.heldout.top1,
        m.heldout_abc.mean_diff,
        m.train.logit_diff
    );
    eprintln!("wrote {}", a.out.display());
    Ok(())
}
