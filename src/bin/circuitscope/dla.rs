//! `circuitscope dla` and `circuitscope logit-lens`: direct logit attribution per head and per
//! layer, copying scores, and the logit lens, along the answer − wrong direction.

use crate::inputs::{print_top, setup_facts, InputArgs, OutputArgs};
use anyhow::{bail, Result};
use circuitscope::analysis::{copying_scores, dla_heads, dla_layers, logit_lens};
use circuitscope::report::html::Report;

const DLA_EXAMPLES: &str = "Examples:
  circuitscope dla --model tests/fixtures/gpt2-tiny --tokens clean.json \\
      --corrupted-tokens corrupted.json --answers answers.json --out dla.safetensors
  circuitscope dla --model gpt2 --task 'Ioi(n: 50, flip: \"ABB->XYZ, BAB->XYZ\")' --copying \\
      --out dla.safetensors --report dla.html

--out holds `dla_heads` [layers, heads] (TransformerLens stack_head_results(apply_ln=True)
projected on W_U[answer] − W_U[wrong], mean over rows), `dla_layers` [components]
(decompose_resid), and with --copying `copying` [2 (positive, negative), layers, heads].";

/// Arguments of `circuitscope dla`.
#[derive(clap::Args)]
#[command(after_help = DLA_EXAMPLES)]
pub struct DlaArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Also compute the IOI copying scores of every head's OV circuit.
    #[arg(long)]
    copying: bool,
    /// Names for --copying, comma-separated words (each one token, tried with and without a
    /// leading space); default: the IOI paper's names that are single tokens.
    #[arg(long, value_delimiter = ',')]
    copying_names: Vec<String>,
    /// Top-k for --copying.
    #[arg(long, default_value_t = 5)]
    copying_k: usize,
}

const LENS_EXAMPLES: &str = "Examples:
  circuitscope logit-lens --model tests/fixtures/gpt2-tiny --tokens clean.json \\
      --corrupted-tokens corrupted.json --answers answers.json --out lens.safetensors
  circuitscope logit-lens --model gpt2 --task 'Ioi(n: 50, flip: \"ABB->XYZ, BAB->XYZ\")' --report lens.html

--out holds `logit_lens` [resid]: the final LayerNorm of each accumulated residual stream
(0_pre, 0_mid, …, final_post) at END, projected on W_U[answer] − W_U[wrong], mean over rows
(TransformerLens accumulated_resid(apply_ln=True)).";

/// Arguments of `circuitscope logit-lens`.
#[derive(clap::Args)]
#[command(after_help = LENS_EXAMPLES)]
pub struct LensArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// Run `dla`.
pub fn run_dla(a: &DlaArgs) -> Result<()> {
    a.output.check()?;
    let metric = a.input.metric()?;
    let loaded = a.input.load(true)?;
    let setup = loaded.setup(metric)?;
    let heads = dla_heads(&setup)?;
    let layers = dla_layers(&setup)?;
    print_top(&heads, 0.0, 10);
    print_top(&layers, 0.0, 10);
    let mut report = Report::new("Direct logit attribution");
    report.facts(&setup_facts(&setup, &a.input.model));
    report.sweep(&heads);
    report.sweep(&layers);
    let mut sweeps = vec![("dla_heads", &heads), ("dla_layers", &layers)];
    let copying;
    if a.copying {
        let tok = loaded.tok.as_ref();
        let words: Vec<String> = if a.copying_names.is_empty() {
            circuitscope::data::NameList::Paper
                .names()
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            a.copying_names.clone()
        };
        let mut ids = Vec::new();
        let mut skipped = Vec::new();
        for w in &words {
            let w = w.trim();
            let id = tok.and_then(|t| {
                t.single_token(&format!(" {w}"))
                    .or_else(|| t.single_token(w))
            });
            match id {
                Some(i) => ids.push(i),
                None => skipped.push(w.to_string()),
            }
        }
        if ids.is_empty() {
            bail!(
                "--copying: none of the names is a single token of this model's tokenizer; \
                 give --copying-names WORD,WORD with words of its vocabulary"
            );
        }
        if !skipped.is_empty() {
            eprintln!(
                "--copying: skipped {} names that are not single tokens",
                skipped.len()
            );
        }
        copying = copying_scores(&loaded.model, &ids, a.copying_k)?;
        report.sweep(&copying);
        sweeps.push(("copying", &copying));
    }
    a.output.write(&sweeps, &mut report)
}

/// Run `logit-lens`.
pub fn run_lens(a: &LensArgs) -> Result<()> {
    a.output.check()?;
    let metric = a.input.metric()?;
    let loaded = a.input.load(true)?;
    let setup = loaded.setup(metric)?;
    let lens = logit_lens(&setup)?;
    println!("logit lens (logit difference of the accumulated residual stream):");
    for (l, v) in lens.axes[0].labels.iter().zip(&lens.values) {
        println!("  {l:<12} {v:>12.6}");
    }
    let mut report = Report::new("Logit lens");
    report.facts(&setup_facts(&setup, &a.input.model));
    report.sweep(&lens);
    a.output.write(&[("logit_lens", &lens)], &mut report)
}
