//! `circuitscope attn`: attention patterns of chosen heads on chosen prompts, optionally
//! value-weighted, as a tensor, heatmaps and an HTML report with a token view.

use crate::inputs::{InputArgs, OutputArgs};
use anyhow::{bail, Result};
use circuitscope::analysis::attention_patterns;
use circuitscope::data::{Dataset, Side};
use circuitscope::experiment::{padded_tensor, PAD};
use circuitscope::graph::Node;
use circuitscope::model::{resolve::resolve_model, Model};
use circuitscope::report::html::{AttentionBlock, Report};
use circuitscope::tokenizer::Tokenizer;

const EXAMPLES: &str = "Examples:
  circuitscope attn --model gpt2 --prompt \"When Mary and John went to the store, John gave a drink to\" \\
      --heads a9.h9,a9.h6,a10.h0 --report attn.html
  circuitscope attn --model tests/fixtures/gpt2-tiny --tokens clean.json --rows 0,1 \\
      --heads a0.h1,a2.* --value-weighted --out attn.safetensors

--out holds `pattern` [rows, heads, query, key]; the report shows one heatmap per head
(query × key, token labels) and a token view: hover a token to see where it attends.";

/// Arguments of `circuitscope attn` (rows from --prompt or as for the other commands).
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// A prompt (repeatable), tokenised with the model's tokenizer; BOS is prepended unless
    /// --no-bos.
    #[arg(long, conflicts_with_all = ["tokens", "task", "dataset"])]
    prompt: Vec<String>,
    /// Do not prepend BOS to --prompt.
    #[arg(long)]
    no_bos: bool,
    /// Heads, comma-separated: a9.h6, or a9.* for every head of a layer.
    #[arg(long, value_delimiter = ',', required = true)]
    heads: Vec<String>,
    /// Which rows (prompts) to show, comma-separated, counting from 0.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    rows: Vec<usize>,
    /// Scale each key column by the norm of its value vector.
    #[arg(long)]
    value_weighted: bool,
}

/// The model, its tokenizer, the rows' tokens and a caption per row: from --prompt, or from
/// the inputs the other commands take.
type Inputs = (Model, Option<Tokenizer>, Vec<Vec<u32>>, Vec<String>);

fn load_inputs(a: &Args) -> Result<Inputs> {
    if !a.prompt.is_empty() {
        let dtype = crate::util::parse_dtype(&a.input.dtype)?;
        let dir = resolve_model(&a.input.model)?;
        let tok = Tokenizer::from_model_dir(&dir)?;
        let rows: Vec<Vec<u32>> = a
            .prompt
            .iter()
            .map(|p| tok.to_tokens(p, !a.no_bos))
            .collect::<circuitscope::Result<_>>()?;
        let model = Model::load(&dir, dtype)?;
        return Ok((model, Some(tok), rows, a.prompt.clone()));
    }
    let loaded = a.input.load(false)?;
    let rows: Vec<Vec<u32>> = loaded
        .ds
        .examples
        .iter()
        .map(|e| e.tokens.clone())
        .collect();
    let caps = loaded
        .ds
        .examples
        .iter()
        .map(|e| e.prompt.clone())
        .collect();
    Ok((loaded.model, loaded.tok, rows, caps))
}

/// The heads of --heads (a9.h6, a9.*); anything else is refused.
fn heads_of(a: &Args, model: &Model) -> Result<Vec<(usize, usize)>> {
    let senders = circuitscope::analysis::path_patch::parse_senders(&a.heads, &model.cfg)?;
    let mut heads = Vec::new();
    for s in senders {
        match s {
            Node::Head(l, h) => heads.push((l, h)),
            other => bail!("--heads: '{other}' is not a head; write a9.h6 or a9.*"),
        }
    }
    Ok(heads)
}

/// Run the command.
pub fn run(a: &Args) -> Result<()> {
    a.output.check()?;
    let (model, tok, rows_tokens, captions) = load_inputs(a)?;
    let heads = heads_of(a, &model)?;
    // pad rows to one length (padding comes after each row's tokens and is never shown)
    let rows_ds = Dataset::from_token_rows(&rows_tokens, None, None)?;
    let tokens = padded_tensor(&model, &rows_ds, Side::Clean, rows_ds.max_len(), PAD)?;
    let pats = attention_patterns(&model, &tokens, &a.rows, &heads, a.value_weighted)?;
    let mut report = Report::new(if a.value_weighted {
        "Value-weighted attention patterns"
    } else {
        "Attention patterns"
    });
    for (i, &row) in a.rows.iter().enumerate() {
        let n = rows_tokens[row].len();
        let strs = match &tok {
            Some(t) => t
                .to_str_tokens(&rows_tokens[row])
                .unwrap_or_else(|_| rows_tokens[row].iter().map(|x| format!("#{x}")).collect()),
            None => rows_tokens[row].iter().map(|x| format!("#{x}")).collect(),
        };
        let caption = if captions[row].is_empty() {
            format!("Row {row}")
        } else {
            format!("Row {row}: {}", captions[row])
        };
        let block = AttentionBlock {
            caption,
            tokens: strs,
            heads: heads
                .iter()
                .enumerate()
                .map(|(j, &(l, h))| {
                    let m: Vec<Vec<f64>> = pats.patterns[i][j]
                        .iter()
                        .take(n)
                        .map(|r| r[..n].to_vec())
                        .collect();
                    (format!("a{l}.h{h}"), m)
                })
                .collect(),
            value_weighted: a.value_weighted,
        };
        report.attention(&block);
    }
    let sweep = pats.to_sweep();
    println!(
        "attention patterns of {} heads on {} rows ({} positions)",
        heads.len(),
        a.rows.len(),
        rows_ds.max_len()
    );
    a.output.write(&[("pattern", &sweep)], &mut report)
}
