//! `circuitscope forward`: one forward pass, its top predictions, logits and activations.

use anyhow::{Context, Result};
use circuitscope::eval::{self, LogitsAt, NameFilter, Patches, RunOptions};
use circuitscope::model::{resolve::resolve_model, Model};
use circuitscope::tokenizer::Tokenizer;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Arguments of `circuitscope forward`.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  circuitscope forward --model toy-ioi --prompt \"Then, Mary and John went to the store. John gave a drink to\"\n  circuitscope forward --model DIR --tokens tokens.json --out logits.safetensors --cache 'blocks.*.attn.hook_pattern'"
)]
pub struct ForwardArgs {
    /// A model folder, a Hugging Face id in the local cache, or a shipped model name.
    #[arg(long)]
    model: String,
    /// Text to run (tokenised with the model's tokenizer.json).
    #[arg(long, conflicts_with = "tokens", required_unless_present = "tokens")]
    prompt: Option<String>,
    /// A JSON list of equal-length lists of token ids.
    #[arg(long)]
    tokens: Option<PathBuf>,
    /// Do not prepend the BOS token to --prompt.
    #[arg(long)]
    no_bos: bool,
    /// Write `logits` [batch, pos, vocab] and the cached activations here (f32 safetensors).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Activations to save, by TransformerLens name, comma-separated; `*` is a wildcard.
    #[arg(long, value_delimiter = ',')]
    cache: Vec<String>,
    /// How many next-token predictions to print for --prompt.
    #[arg(long, default_value_t = 10)]
    top_k: usize,
    /// Compute in f32 or f64.
    #[arg(long, default_value = "f32")]
    dtype: String,
}

/// Run the command.
pub fn run(a: &ForwardArgs) -> Result<()> {
    let dtype = crate::util::parse_dtype(&a.dtype)?;
    let dir = resolve_model(&a.model)?;
    let cfg = circuitscope::model::ModelConfig::from_dir(&dir)?;
    let filter = NameFilter::new(&a.cache, &cfg)?;
    let (rows, tok) = match (&a.prompt, &a.tokens) {
        (Some(p), _) => {
            let tok = Tokenizer::from_model_dir(&dir)?;
            (vec![tok.to_tokens(p, !a.no_bos)?], Some(tok))
        }
        (None, Some(path)) => (read_tokens(path)?, None),
        (None, None) => anyhow::bail!("give --prompt TEXT or --tokens FILE.json"),
    };
    match &a.out {
        Some(out) => circuitscope::error::check_output_file(out, "--out")?,
        None if tok.is_none() => anyhow::bail!(
            "--tokens without --out would compute and show nothing: give --out \
             FILE.safetensors to save the logits (and --cache activations), or --prompt TEXT to \
             see the top next tokens"
        ),
        None => {}
    }
    let model = Model::load(&dir, dtype)?;
    let tokens = model
        .tokens_tensor(&rows)
        .with_context(|| match &a.tokens {
            Some(p) => format!("{}", p.display()),
            None => "--prompt".to_string(),
        })?;
    let run = eval::run(
        &model,
        &tokens,
        &Patches::new(),
        RunOptions {
            cache: filter,
            logits: LogitsAt::All,
            ..Default::default()
        },
    )?;
    let logits = run.logits.clone().context("no logits")?;
    if let Some(tok) = &tok {
        print_prediction(tok, &rows[0], &logits, a.top_k)?;
    }
    if let Some(out) = &a.out {
        let mut map: HashMap<String, candle_core::Tensor> = run.cache.into_iter().collect();
        map.insert("logits".into(), logits);
        crate::util::save_safetensors(out, &map)?;
        eprintln!("wrote {} ({} tensors)", out.display(), map.len());
    }
    Ok(())
}

fn read_tokens(path: &Path) -> Result<Vec<Vec<u32>>> {
    Ok(circuitscope::json_file::read(path, |e| {
        format!("expected a JSON list of lists of token ids: {e}")
    })?)
}

fn print_prediction(
    tok: &Tokenizer,
    ids: &[u32],
    logits: &candle_core::Tensor,
    k: usize,
) -> Result<()> {
    let strs = tok.to_str_tokens(ids)?;
    println!("Tokenized prompt: {:?}", strs);
    let last = logits
        .get(0)?
        .get(ids.len() - 1)?
        .to_dtype(candle_core::DType::F64)?;
    let logp = eval::log_softmax(&last)?.to_vec1::<f64>()?;
    let lv = last.to_vec1::<f64>()?;
    let mut order: Vec<usize> = (0..lv.len()).collect();
    order.sort_by(|&x, &y| lv[y].total_cmp(&lv[x]).then(x.cmp(&y)));
    println!("Top {k} next tokens:");
    for (rank, &i) in order.iter().take(k).enumerate() {
        let s = tok
            .to_str_tokens(&[i as u32])
            .ok()
            .and_then(|v| v.into_iter().next())
            .unwrap_or_default();
        println!(
            "  {rank:>2}. {:>8} {:<16} logit {:>8.3}  prob {:>6.2}%",
            i,
            format!("{s:?}"),
            lv[i],
            100.0 * logp[i].exp()
        );
    }
    Ok(())
}
