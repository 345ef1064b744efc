//! `circuitscope attribute`: EAP, EAP-IG and AtP edge scores on ACDC's graph, and a circuit
//! from them.

use anyhow::{bail, Context, Result};
use circuitscope::acdc::{Ablation, Precision, Prepared};
use circuitscope::analysis::setup::tokens_dataset;
use circuitscope::attribution::circuit::ranking;
use circuitscope::attribution::experiment::{self, prepare_out};
use circuitscope::attribution::{Config, Method, Overrides};
use circuitscope::data::{JsonlOptions, TaskSpec};
use circuitscope::metric::Metric;
use circuitscope::model::{resolve::resolve_model, Model};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "Examples:
  circuitscope attribute --config configs/attribution/toy-ioi.ron --out runs/eap-ioi
  circuitscope attribute --config configs/attribution/toy-ioi.ron --method eap-ig --ig-steps 5 \\
      --top-k 40 --out runs/eapig-ioi
  circuitscope attribute --config configs/attribution/toy-induction.ron --method eap-ig \\
      --metric kl --out runs/eapig-induction
  circuitscope attribute --model models/toy-ioi --tokens clean.json --corrupted-tokens \\
      corrupted.json --answers answers.json --method atp --out runs/atp
  circuitscope faithfulness --scores runs/eap-ioi/scores.json --out runs/faith

The folder gets scores.json (every edge: sender, receiver, score, in ACDC's edge names),
scores.safetensors, config.ron and, with --top-k or --threshold, circuit.json / circuit.dot /
circuit.svg as ACDC writes them. A score estimates m(edge ablated) − m(clean) for the metric as
named. KL divergence has zero gradient at the clean point: use it with eap-ig or eap-ig-act.";

/// Arguments of `circuitscope attribute`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct AttributeArgs {
    /// The run's config (RON, see configs/attribution/); flags override it.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Overwrite earlier results in --out.
    #[arg(long)]
    force: bool,
    /// eap, eap-ig (integrated gradients over the input embeddings), eap-ig-act (over each
    /// layer's outputs), atp (node scores; edges as eap).
    #[arg(long)]
    method: Option<String>,
    /// Integrated-gradient steps (eap-ig, eap-ig-act), ≥ 1.
    #[arg(long)]
    ig_steps: Option<usize>,
    /// A model folder, a shipped model name, or a Hugging Face id in the local cache.
    #[arg(long)]
    model: Option<String>,
    /// A task: RON such as 'Ioi(n: 20, flip: "ABB->XYZ, BAB->XYZ")', a RON file, or a name.
    #[arg(long, conflicts_with = "tokens")]
    task: Option<String>,
    /// Clean token ids: a JSON list of equal-length lists (the metric reads the last position).
    #[arg(long, requires_all = ["corrupted_tokens", "answers"])]
    tokens: Option<PathBuf>,
    /// Corrupted token ids, one row per clean row, of the same length.
    #[arg(long, requires = "tokens")]
    corrupted_tokens: Option<PathBuf>,
    /// A JSON list of [answer_id, wrong_id] per row.
    #[arg(long, requires = "tokens")]
    answers: Option<PathBuf>,
    /// Number of examples.
    #[arg(long)]
    n: Option<usize>,
    /// logit-diff, norm-logit-diff, prob, prob-diff, nll or kl.
    #[arg(long)]
    metric: Option<String>,
    /// What removed edges carry: corrupted, resample, zero, mean, mean-all.
    #[arg(long)]
    ablation: Option<String>,
    /// f32 or f64.
    #[arg(long)]
    dtype: Option<String>,
    /// The graph without the q/k/v input → head edges (AutoCircuit's and EAP-IG's).
    #[arg(long)]
    no_split_qkv: bool,
    /// Also keep per-position scores (scores.safetensors: scores_per_position).
    #[arg(long)]
    per_position: bool,
    /// Write the circuit of the k edges with the largest |score| (dangling edges pruned).
    #[arg(long)]
    top_k: Option<usize>,
    /// Write the circuit of the edges with |score| ≥ this.
    #[arg(long, conflicts_with = "top_k")]
    threshold: Option<f64>,
    /// Print the ROC AUC of the |score| ranking against a known circuit (a toy's
    /// CIRCUIT.json; its list for the ablation: edges_resample, edges_second_copy or edges).
    #[arg(long, value_name = "FILE")]
    roc: Option<PathBuf>,
}

fn overrides(a: &AttributeArgs) -> Result<Overrides> {
    Ok(Overrides {
        model: a.model.clone(),
        task: a
            .task
            .as_deref()
            .map(crate::inputs::task_spec)
            .transpose()?,
        n: a.n,
        metric: a.metric.as_deref().map(str::parse::<Metric>).transpose()?,
        ablation: a
            .ablation
            .as_deref()
            .map(str::parse::<Ablation>)
            .transpose()?,
        method: a.method.as_deref().map(str::parse::<Method>).transpose()?,
        ig_steps: a.ig_steps,
        dtype: a
            .dtype
            .as_deref()
            .map(str::parse::<Precision>)
            .transpose()?,
        no_split_qkv: a.no_split_qkv,
        per_position: a.per_position,
        top_k: a.top_k,
        threshold: a.threshold,
    })
}

/// The prefix of the task path recorded for runs on `--tokens` rows.
pub const TOKENS_TASK: &str = "tokens:";

/// Rows from `--tokens`, `--corrupted-tokens` and `--answers` files.
pub fn token_dataset(
    tokens: &Path,
    corrupted: Option<&Path>,
    answers: Option<&Path>,
) -> Result<circuitscope::data::Dataset> {
    let clean = crate::inputs::read_token_rows(tokens)?;
    let corrupted = crate::inputs::read_token_rows(
        corrupted.context("--tokens needs --corrupted-tokens FILE.json (one row per clean row)")?,
    )?;
    let answers =
        crate::inputs::read_answers(answers.context(
            "--tokens needs --answers FILE.json: a list of [answer_id, wrong_id] per row",
        )?)?;
    Ok(tokens_dataset(&clean, Some(&corrupted), Some(&answers))?)
}

/// The effective config and the prepared model and data.
fn prepare(a: &AttributeArgs) -> Result<(Config, Prepared)> {
    let o = overrides(a)?;
    let mut config = match &a.config {
        Some(p) => Config::load(p)?,
        None => {
            let model = a.model.clone().context(
                "give --config FILE.ron, or --model with --task (or --tokens, \
                 --corrupted-tokens, --answers)",
            )?;
            let task = match (&o.task, &a.tokens) {
                (Some(t), _) => t.clone(),
                (None, Some(t)) => TaskSpec::Jsonl(JsonlOptions {
                    path: format!("{TOKENS_TASK}{}", t.display()),
                    ..Default::default()
                }),
                (None, None) => bail!(
                    "give the rows: --task 'Ioi(n: 20, flip: \"ABB->XYZ, BAB->XYZ\")', or \
                     --tokens clean.json --corrupted-tokens corrupted.json --answers answers.json"
                ),
            };
            Config::new(&model, task)
        }
    };
    config.apply(&o)?;
    let prep = match &a.tokens {
        Some(t) => {
            let ds = token_dataset(t, a.corrupted_tokens.as_deref(), a.answers.as_deref())?;
            let dir = resolve_model(&config.model)?;
            let model = Model::load(&dir, config.dtype.dtype())?;
            Prepared::from_parts(&config.acdc(), model, ds)?
        }
        None => Prepared::new(&config.acdc())?,
    };
    Ok((config, prep))
}

/// Run `circuitscope attribute`.
pub fn run(a: &AttributeArgs) -> Result<()> {
    prepare_out(&a.out, a.force)?;
    let (config, prep) = prepare(a)?;
    let truth = match &a.roc {
        Some(p) => {
            let graph = circuitscope::graph::EdgeGraph::new(
                &prep.model.cfg,
                circuitscope::graph::GraphOptions {
                    split_qkv: config.split_qkv,
                },
            );
            let key = circuitscope::acdc::roc::truth_key(&config.ablation);
            let t = circuitscope::acdc::roc::read_truth(p, key, &graph, &prep.model.cfg)?;
            Some((p.clone(), key, t))
        }
        None => None,
    };
    let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::default_bar()
        .template("[{elapsed_precise}] {bar:30} {pos}/{len} gradient passes · ETA {eta}")
    {
        bar.set_style(style);
    }
    let out = experiment::score(&prep, &config, &mut |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let written = experiment::write(&a.out, &prep, &config, &out.scores)?;
    let s = &out.scores;
    println!(
        "{} on {} ({} rows, {} positions): {} edges scored (q/k/v split: {}), metric {} = {:.6} \
         on the clean run",
        config.method,
        config.model,
        prep.dataset.len(),
        s.positions,
        s.edges.len(),
        config.split_qkv,
        config.metric,
        s.clean_metric
    );
    println!(
        "cost: {} forward and {} backward passes in {:.2}s",
        out.forwards, out.backwards, out.seconds
    );
    println!("largest |score| (estimated m(ablated) − m(clean)):");
    for &i in ranking(&s.edges).iter().take(10) {
        println!("  {:<28} {:+.6e}", s.graph.edge(i).to_string(), s.edges[i]);
    }
    if !s.nodes.is_empty() {
        let mut nodes = s.nodes.clone();
        nodes.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()));
        println!("AtP node scores (largest |score|):");
        for (n, v) in nodes.iter().take(10) {
            println!("  {:<10} {v:+.6e}", n.to_string());
        }
    }
    if let Some((p, key, t)) = &truth {
        let noise = circuitscope::attribution::roc::noise_floor(prep.model.dtype);
        match circuitscope::attribution::roc::ranking_auc(&s.edges, t, noise) {
            Some(auc) => println!(
                "ROC AUC of the |score| ranking against {} ({key}, {} true edges of {}): {auc:.4}",
                p.display(),
                t.len(),
                s.edges.len()
            ),
            None => println!("ROC AUC: undefined (the known circuit is empty or every edge)"),
        }
    }
    for p in written {
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}
