//! `circuitscope ablate`: mean-ablate every head output except a circuit's heads at their
//! positions; report faithfulness and completeness.

use crate::inputs::{setup_facts, InputArgs, Loaded, OutputArgs};
use anyhow::{bail, Result};
use candle_core::Tensor;
use circuitscope::analysis::mean_ablation::template_groups;
use circuitscope::analysis::{AblationResult, Axis, Circuit, LabelledArray, MeanAblation, Setup};
use circuitscope::data::{JsonlOptions, Side};
use circuitscope::experiment::{padded_tensor, PAD};
use circuitscope::graph::Node;
use circuitscope::model::ModelConfig;
use circuitscope::report::html::Report;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "Examples:
  circuitscope ablate --model gpt2 --task 'Ioi(n: 100, prompt_type: Mixed, flip: \"ABB->XYZ, BAB->XYZ\")' \\
      --circuit configs/ioi-minimal-circuit.json --k a9.h9,a10.h0,a9.h6 --out ablate.safetensors
  circuitscope ablate --model tests/fixtures/gpt2-tiny --tokens clean.json \\
      --corrupted-tokens corrupted.json --answers answers.json \\
      --circuit 'a1.h2@-1, a2.h0@-1@-2, a0.h1@3' --k a1.h2 --report ablate.html

Means: every head's hook_z averaged over the means rows (default: the corrupted rows, e.g.
the ABC flip), per template and position. A circuit is heads with the positions they are kept
at: inline 'a9.h9@END, a5.h5@S2' or a JSON file {\"a9.h9\": [\"END\"], …} or ARENA's
{\"heads\": {\"name mover\": [[9, 9]]}, \"positions\": {\"name mover\": \"END\"}}.
Faithfulness: F(C) vs F(M); completeness for each --k: |F(C∖K) − F(M∖K)|.";

/// Arguments of `circuitscope ablate`.
#[derive(clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct AblateArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// The circuit: a JSON file or inline 'a9.h9@END, a5.h5@S2' (no @: every position).
    #[arg(long)]
    circuit: String,
    /// A subset K of the circuit's heads for completeness (repeatable), comma-separated.
    #[arg(long = "k")]
    k: Vec<String>,
    /// Rows to average for the means (a JSONL dataset with the same templates); default: the
    /// corrupted rows of the input.
    #[arg(long)]
    means_dataset: Option<PathBuf>,
}

/// Run the command.
pub fn run(a: &AblateArgs) -> Result<()> {
    a.output.check()?;
    let metric = a.input.metric()?;
    let loaded = a.input.load(true)?;
    let cfg = loaded.model.cfg.clone();
    let circuit = if Path::new(&a.circuit).is_file() {
        let text = circuitscope::error::read_to_string(&a.circuit)?;
        Circuit::from_json(&text, &a.circuit, &cfg)?
    } else {
        Circuit::parse(&a.circuit, &cfg)?
    };
    let ks = parse_ks(&a.k, &circuit, &cfg)?;
    let setup = loaded.setup(metric)?;
    let groups = template_groups(&setup.ds);
    let (means_tokens, means_groups) = means_source(a, &loaded, &setup, &groups)?;
    let ma = MeanAblation::new(&setup, &means_tokens, &means_groups, &groups)?;
    let res = ma.evaluate(&circuit, &ks)?;
    print_result(&res);
    let sweep = result_sweep(&res, &circuit)?;
    let mut report = result_report(a, &setup, &circuit, &res);
    report.sweep(&sweep);
    a.output.write(&[("ablation", &sweep)], &mut report)
}

/// The `--k` head sets, each a subset of the circuit.
fn parse_ks(
    k_args: &[String],
    circuit: &Circuit,
    cfg: &ModelConfig,
) -> Result<Vec<BTreeSet<(usize, usize)>>> {
    let mut ks = Vec::new();
    for k in k_args {
        let mut set = BTreeSet::new();
        for item in k.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            match Node::parse(item, cfg)? {
                Node::Head(l, h) => {
                    if !circuit.heads.contains_key(&(l, h)) {
                        bail!("--k {k}: {item} is not in the circuit; K must be a subset of it");
                    }
                    set.insert((l, h));
                }
                other => bail!("--k {k}: '{other}' is not a head"),
            }
        }
        ks.push(set);
    }
    Ok(ks)
}

/// The rows the means are taken over, with their groups: `--means-dataset`, or the corrupted
/// rows.
fn means_source(
    a: &AblateArgs,
    loaded: &Loaded,
    setup: &Setup,
    groups: &[String],
) -> Result<(Tensor, Vec<String>)> {
    Ok(match &a.means_dataset {
        Some(p) => {
            let tok = loaded.tok.as_ref().ok_or_else(|| {
                anyhow::anyhow!("--means-dataset needs the model's tokenizer.json")
            })?;
            let ds = circuitscope::data::jsonl::load(
                &JsonlOptions {
                    path: p.display().to_string(),
                    ..Default::default()
                },
                tok,
            )?;
            let g = if groups.iter().all(|g| g == "all") {
                vec!["all".to_string(); ds.len()]
            } else {
                template_groups(&ds)
            };
            let tokens = padded_tensor(&loaded.model, &ds, Side::Clean, ds.max_len(), PAD)?;
            (tokens, g)
        }
        None => (setup.corrupted_tokens.clone(), groups.to_vec()),
    })
}

/// Print faithfulness and completeness.
fn print_result(res: &AblationResult) {
    println!(
        "F(M) {:.6}  F(C) {:.6}  F(C)/F(M) {:.4}  |F(C) − F(M)| {:.6}  F(nothing) {:.6}",
        res.model, res.circuit, res.faithfulness_ratio, res.faithfulness_gap, res.nothing
    );
    for c in &res.completeness {
        println!(
            "K = {{{}}}: F(C∖K) {:.6}  F(M∖K) {:.6}  |gap| {:.6}",
            c.k.join(", "),
            c.circuit_minus_k,
            c.model_minus_k,
            c.gap
        );
    }
}

/// The result as a one-axis sweep (for --out), with the result and the circuit as notes.
fn result_sweep(res: &AblationResult, circuit: &Circuit) -> Result<LabelledArray> {
    let mut labels = vec![
        "F(M)".to_string(),
        "F(C)".into(),
        "F(C)/F(M)".into(),
        "F(nothing)".into(),
    ];
    let mut values = vec![res.model, res.circuit, res.faithfulness_ratio, res.nothing];
    for c in &res.completeness {
        let k = c.k.join("+");
        labels.push(format!("F(C∖{{{k}}})"));
        values.push(c.circuit_minus_k);
        labels.push(format!("F(M∖{{{k}}})"));
        values.push(c.model_minus_k);
    }
    let mut sweep = LabelledArray::new(
        "mean_ablation",
        "Mean-ablation circuit: faithfulness and completeness",
        vec![Axis::new("quantity", labels)],
    );
    sweep.values = values;
    sweep.note("result", serde_json::to_value(res)?);
    sweep.note(
        "circuit",
        serde_json::Value::from(
            circuit
                .heads
                .iter()
                .map(|(&(l, h), p)| {
                    let ps: Vec<String> = p.iter().map(|x| x.to_string()).collect();
                    format!(
                        "a{l}.h{h}@{}",
                        if ps.is_empty() {
                            "*".into()
                        } else {
                            ps.join("@")
                        }
                    )
                })
                .collect::<Vec<_>>(),
        ),
    );
    Ok(sweep)
}

/// The HTML report: the setup, faithfulness and completeness.
fn result_report(a: &AblateArgs, setup: &Setup, circuit: &Circuit, res: &AblationResult) -> Report {
    let mut report = Report::new("Mean-ablation circuit");
    report.facts(&setup_facts(setup, &a.input.model));
    report.heading("Faithfulness");
    report.facts(&[
        ("heads in the circuit", circuit.heads.len().to_string()),
        ("F(M): the model", format!("{:.6}", res.model)),
        ("F(C): the circuit", format!("{:.6}", res.circuit)),
        ("F(C) / F(M)", format!("{:.4}", res.faithfulness_ratio)),
        ("|F(C) − F(M)|", format!("{:.6}", res.faithfulness_gap)),
        (
            "F(∅): every head mean-ablated",
            format!("{:.6}", res.nothing),
        ),
    ]);
    if !res.completeness.is_empty() {
        report.heading("Completeness");
        let rows: Vec<Vec<String>> = res
            .completeness
            .iter()
            .map(|c| {
                vec![
                    c.k.join(", "),
                    format!("{:.6}", c.circuit_minus_k),
                    format!("{:.6}", c.model_minus_k),
                    format!("{:.6}", c.gap),
                ]
            })
            .collect();
        report.table(&["K", "F(C∖K)", "F(M∖K)", "|F(C∖K) − F(M∖K)|"], &rows);
    }
    report
}
