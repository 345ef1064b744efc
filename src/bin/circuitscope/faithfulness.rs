//! `circuitscope faithfulness`: the faithfulness of circuits (ACDC's, attribution's, edge
//! lists) and curves over circuit size from score files, with MIB's CPR and CMD.

use crate::attribute::{token_dataset, TOKENS_TASK};
use anyhow::{bail, Context, Result};
use circuitscope::acdc::{roc::read_truth, Ablation, Precision, Prepared};
use circuitscope::attribution::faithfulness::{
    ks_for_fractions, Curve, CurvePoint, Faithfulness, MIB_FRACTIONS,
};
use circuitscope::attribution::hypothesis::kept_edges;
use circuitscope::attribution::output::{read_json, read_scores, recorded_setup, ScoreFile};
use circuitscope::attribution::{plot, Config};
use circuitscope::data::TaskSpec;
use circuitscope::error::write_atomic;
use circuitscope::metric::Metric;
use circuitscope::model::{resolve::resolve_model, Model};
use circuitscope::scrub::experiment::prepare;
use circuitscope::scrub::hypothesis::parse_file;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use std::path::PathBuf;

const EXAMPLES: &str = "Examples:
  circuitscope faithfulness --scores runs/eap/scores.json --scores runs/eapig/scores.json \\
      --circuit runs/acdc/circuit.json --out runs/faith
  circuitscope faithfulness --circuit runs/acdc/circuit.json --out runs/faith-acdc
  circuitscope faithfulness --config configs/attribution/toy-ioi.ron --circuit edges.json \\
      --ablation mean --out runs/faith-mean
  circuitscope faithfulness --scores runs/eap/scores.json --ks 1,5,10,20,50 --out runs/f
  circuitscope faithfulness --config configs/attribution/toy-induction.ron \
      --hypothesis hypotheses/toy/induction-refined.ron --out runs/faith-hyp

Every edge outside the circuit is ablated as ACDC ablates it; f(C) = (m(C) − m(∅)) / (m(M) −
m(∅)). A --scores file becomes a curve (its top-k edges for each k, dangling edges pruned; by
default MIB's sizes 0.1% … 100% of the edges); a --circuit file (ACDC's or attribution's
circuit.json, or a JSON list of edges such as [\"a0.h1 -> a1.h2.q\", …]) becomes a point, and
so does a --hypothesis file: the edges of the paths it does not resample unconditionally. The
model, data, metric and ablation come from --config, else from the first file's recorded
setup (a hypothesis records its model, task and metric); flags override them. Writes faithfulness.json, faithfulness.csv and faithfulness.svg.";

/// Arguments of `circuitscope faithfulness`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct FaithfulnessArgs {
    /// A scores.json of `circuitscope attribute` (repeatable): one curve each.
    #[arg(long, value_name = "FILE")]
    scores: Vec<PathBuf>,
    /// A circuit (repeatable): circuit.json of acdc or attribute, or a JSON list of edges.
    #[arg(long, value_name = "FILE")]
    circuit: Vec<PathBuf>,
    /// A causal-scrubbing hypothesis (repeatable): the edges of the paths it keeps, as a point.
    #[arg(long, value_name = "FILE.ron")]
    hypothesis: Vec<PathBuf>,
    /// The setup (an attribution config, RON); default: the first file's recorded setup.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Overwrite earlier results in --out.
    #[arg(long)]
    force: bool,
    /// Circuit sizes as edge counts, e.g. 1,5,10,50.
    #[arg(long, value_delimiter = ',', conflicts_with = "fractions")]
    ks: Option<Vec<usize>>,
    /// Circuit sizes as fractions of all edges (default MIB's 0.001 … 1).
    #[arg(long, value_delimiter = ',')]
    fractions: Option<Vec<f64>>,
    /// Clean token ids (for score files computed on --tokens rows): a JSON list of lists.
    #[arg(long, requires_all = ["corrupted_tokens", "answers"])]
    tokens: Option<PathBuf>,
    /// Corrupted token ids, one row per clean row.
    #[arg(long, requires = "tokens")]
    corrupted_tokens: Option<PathBuf>,
    /// A JSON list of [answer_id, wrong_id] per row.
    #[arg(long, requires = "tokens")]
    answers: Option<PathBuf>,
    /// Override the model.
    #[arg(long)]
    model: Option<String>,
    /// Override the number of examples.
    #[arg(long)]
    n: Option<usize>,
    /// Override the metric (accuracy works here).
    #[arg(long)]
    metric: Option<String>,
    /// Override the ablation: corrupted, resample, zero, mean, mean-all.
    #[arg(long)]
    ablation: Option<String>,
    /// f32 or f64.
    #[arg(long)]
    dtype: Option<String>,
    /// Plot title.
    #[arg(long)]
    title: Option<String>,
}

/// Run `circuitscope faithfulness`.
pub fn run(a: &FaithfulnessArgs) -> Result<()> {
    if a.scores.is_empty() && a.circuit.is_empty() && a.hypothesis.is_empty() {
        bail!("nothing to evaluate: give --scores FILE, --circuit FILE or --hypothesis FILE.ron");
    }
    let files = ["faithfulness.json", "faithfulness.csv", "faithfulness.svg"];
    if files.iter().any(|f| a.out.join(f).exists()) && !a.force {
        bail!(
            "--out {}: this folder already holds faithfulness results; choose another folder or \
             pass --force",
            a.out.display()
        );
    }
    if a.out.exists() && !a.out.is_dir() {
        bail!("--out {}: exists and is not a folder", a.out.display());
    }
    let setup = setup_of(a)?;
    let prep = prepared(a, &setup)?;
    let hash = prep.identity.model_hash.clone();
    let graph = circuitscope::graph::EdgeGraph::new(
        &prep.model.cfg,
        circuitscope::graph::GraphOptions {
            split_qkv: setup.split_qkv,
        },
    );
    // Read and check every input before evaluating anything.
    let mut score_files = vec![];
    for p in &a.scores {
        let f = read_scores(p, &graph, &hash)?;
        score_files.push((p.clone(), f));
    }
    let circuits = read_circuits(a, &setup, &prep, &graph, &hash)?;
    let total = graph.len();
    let ks = ks_of(a, total)?;
    let (f, curves, points) = evaluate(&prep, &score_files, &circuits, &ks)?;
    write_results(a, &setup, &prep, &f, &curves, &points, total)?;
    for n in files {
        eprintln!("wrote {}", a.out.join(n).display());
    }
    Ok(())
}

/// The setup: --config, else the first file's recorded one; then the flags' overrides.
fn setup_of(a: &FaithfulnessArgs) -> Result<circuitscope::acdc::Config> {
    let mut setup = match &a.config {
        Some(p) => Config::load(p)?.acdc(),
        None if a.scores.is_empty() && a.circuit.is_empty() => {
            let (h, _) = parse_file(&a.hypothesis[0])?;
            let mut c = Config::new(&h.model, h.task);
            c.metric = h.metric;
            c.acdc()
        }
        None => {
            let first = a.scores.first().or(a.circuit.first()).context("no input")?;
            let v = read_json(first)?;
            recorded_setup(first, &v)?.with_context(|| {
                format!(
                    "{}: records no setup (model, task, metric, ablation); give --config \
                     configs/attribution/FILE.ron",
                    first.display()
                )
            })?
        }
    };
    if let Some(m) = &a.model {
        setup.model = m.clone();
    }
    if let Some(n) = a.n {
        setup.n = Some(n);
    }
    if let Some(m) = &a.metric {
        setup.metric = m.parse::<Metric>()?;
    }
    if let Some(x) = &a.ablation {
        setup.ablation = x.parse::<Ablation>()?;
    }
    if let Some(d) = &a.dtype {
        setup.dtype = d.parse::<Precision>()?;
    }
    Ok(setup)
}

/// The model and rows: from --tokens, or from the setup's task.
fn prepared(a: &FaithfulnessArgs, setup: &circuitscope::acdc::Config) -> Result<Prepared> {
    let from_tokens = matches!(&setup.task, TaskSpec::Jsonl(o) if o.path.starts_with(TOKENS_TASK));
    Ok(match &a.tokens {
        Some(t) => {
            let ds = token_dataset(t, a.corrupted_tokens.as_deref(), a.answers.as_deref())?;
            let dir = resolve_model(&setup.model)?;
            Prepared::from_parts(setup, Model::load(&dir, setup.dtype.dtype())?, ds)?
        }
        None if from_tokens => bail!(
            "the setup was computed on --tokens rows ({}); give the same --tokens, \
             --corrupted-tokens and --answers",
            match &setup.task {
                TaskSpec::Jsonl(o) => o.path.trim_start_matches(TOKENS_TASK).to_string(),
                _ => String::new(),
            }
        ),
        None => Prepared::new(setup)?,
    })
}

/// The circuits of --circuit files (checked against this model and graph) and of
/// --hypothesis files (the edges of the paths they keep), each with its label.
fn read_circuits(
    a: &FaithfulnessArgs,
    setup: &circuitscope::acdc::Config,
    prep: &Prepared,
    graph: &circuitscope::graph::EdgeGraph,
    hash: &str,
) -> Result<Vec<(String, Vec<bool>)>> {
    let mut circuits = vec![];
    for p in &a.circuit {
        let v = read_json(p)?;
        if let Some(h) = v["identity"]["model_hash"].as_str() {
            if h != hash {
                bail!(
                    "{}: this circuit was found on another model (files sha256 {}…); this run \
                     uses {}…",
                    p.display(),
                    &h[..h.len().min(12)],
                    &hash[..hash.len().min(12)]
                );
            }
        }
        if v.get("nodes").is_some_and(|n| n.is_array()) && v.get("edges").is_none() {
            bail!(
                "{}: a node-level circuit; faithfulness reads edge circuits (run acdc at edge \
                 level, or give its edges as a list)",
                p.display()
            );
        }
        let ids = read_truth(p, "edges", graph, &prep.model.cfg)?;
        let mut present = vec![false; graph.len()];
        for i in ids {
            present[i] = true;
        }
        let label = v["method"]
            .as_str()
            .map(|m| m.to_uppercase())
            .or_else(|| {
                v["format"]
                    .as_str()
                    .filter(|f| f.contains("acdc"))
                    .map(|_| format!("ACDC τ={}", v["tau"]))
            })
            .unwrap_or_else(|| p.display().to_string());
        circuits.push((label, present));
    }
    for p in &a.hypothesis {
        let h = prepare(p, Some(&setup.model))?;
        let (n, pos) = (h.dataset.len(), h.dataset.max_len());
        let present = kept_edges(&h.hypothesis, graph, &prep.model.cfg, n, pos)?;
        circuits.push((format!("hypothesis {}", h.hypothesis.file.name), present));
    }
    Ok(circuits)
}

/// The circuit sizes of the curves: --ks, else --fractions, else MIB's fractions.
fn ks_of(a: &FaithfulnessArgs, total: usize) -> Result<Vec<usize>> {
    Ok(match (&a.ks, &a.fractions) {
        (Some(ks), _) => {
            if let Some(&k) = ks.iter().find(|&&k| k > total || k == 0) {
                bail!(
                    "--ks: {k} edges asked for, but the graph has {total} edges; use 1 ≤ k ≤ \
                     {total}"
                );
            }
            let mut v = ks.clone();
            v.sort();
            v.dedup();
            v
        }
        (None, Some(f)) => ks_for_fractions(f, total)?,
        (None, None) => ks_for_fractions(&MIB_FRACTIONS, total)?,
    })
}

/// The curves and points, with a progress bar.
type Evaluated<'p> = (Faithfulness<'p>, Vec<Curve>, Vec<(String, CurvePoint)>);

fn evaluate<'p>(
    prep: &'p Prepared,
    score_files: &[(PathBuf, ScoreFile)],
    circuits: &[(String, Vec<bool>)],
    ks: &[usize],
) -> Result<Evaluated<'p>> {
    let bar = ProgressBar::with_draw_target(
        Some((score_files.len() + circuits.len() + 1) as u64),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) =
        ProgressStyle::default_bar().template("[{elapsed_precise}] {bar:30} {pos}/{len} {msg}")
    {
        bar.set_style(style);
    }
    bar.set_message("clean and fully ablated runs");
    let mut f = Faithfulness::new(prep)?;
    bar.inc(1);
    let mut curves: Vec<Curve> = vec![];
    for (p, sf) in score_files {
        bar.set_message(format!("curve of {}", p.display()));
        let label = format!("{} ({})", sf.method.to_uppercase(), sf.metric);
        curves.push(f.curve(&label, &sf.scores, ks)?);
        bar.inc(1);
    }
    let mut points: Vec<(String, CurvePoint)> = vec![];
    for (label, present) in circuits {
        bar.set_message(format!("circuit {label}"));
        points.push((label.clone(), f.point(present)?));
        bar.inc(1);
    }
    bar.finish_and_clear();

    Ok((f, curves, points))
}

/// Print the results and write faithfulness.json, .csv and .svg into --out.
fn write_results(
    a: &FaithfulnessArgs,
    setup: &circuitscope::acdc::Config,
    prep: &Prepared,
    f: &Faithfulness,
    curves: &[Curve],
    points: &[(String, CurvePoint)],
    total: usize,
) -> Result<()> {
    println!(
        "{} on {} ({} rows), metric {}, ablation {:?}: m(M) = {:.6}, m(∅) = {:.6}, {} edges",
        setup.task.name(),
        setup.model,
        prep.dataset.len(),
        setup.metric,
        setup.ablation,
        f.full,
        f.empty,
        total
    );
    let mut csv = String::from("label,kind,requested,edges,fraction,metric,faithfulness\n");
    for c in curves {
        println!("{}: CPR {:.4}, CMD {:.4}", c.label, c.cpr, c.cmd);
        for p in &c.points {
            println!(
                "  k={:<6} kept {:<6} ({:>7.3}%)  m = {:+.6}  f = {:.4}",
                p.requested,
                p.edges,
                100.0 * p.fraction,
                p.metric,
                p.faithfulness
            );
            csv.push_str(&format!(
                "{},curve,{},{},{},{},{}\n",
                c.label, p.requested, p.edges, p.fraction, p.metric, p.faithfulness
            ));
        }
    }
    for (label, p) in points {
        println!(
            "{label}: {} edges ({:.3}%), m = {:+.6}, f = {:.4}",
            p.edges,
            100.0 * p.fraction,
            p.metric,
            p.faithfulness
        );
        csv.push_str(&format!(
            "{label},circuit,{},{},{},{},{}\n",
            p.requested, p.edges, p.fraction, p.metric, p.faithfulness
        ));
    }
    let json = json!({
        "format": "circuitscope-faithfulness/1",
        "version": circuitscope::version(),
        "setup": setup,
        "identity": prep.identity,
        "edges": total,
        "full_metric": f.full,
        "empty_metric": f.empty,
        "curves": curves,
        "circuits": points.iter().map(|(l, p)| json!({"label": l, "point": p})).collect::<Vec<_>>(),
    });
    let title = a.title.clone().unwrap_or_else(|| {
        format!(
            "Faithfulness on {} ({}, metric {}, {:?} ablation)",
            setup.model,
            setup.task.name(),
            setup.metric,
            setup.ablation
        )
    });
    let svg = plot::svg(&title, total, curves, points);
    let text = serde_json::to_string_pretty(&json)?;
    std::fs::create_dir_all(&a.out)
        .with_context(|| format!("cannot create {}", a.out.display()))?;
    write_atomic(
        a.out.join("faithfulness.json"),
        format!("{text}\n").as_bytes(),
    )?;
    write_atomic(a.out.join("faithfulness.csv"), csv.as_bytes())?;
    write_atomic(a.out.join("faithfulness.svg"), svg.as_bytes())?;
    Ok(())
}
