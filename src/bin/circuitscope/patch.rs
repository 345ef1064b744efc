//! `circuitscope patch act|path|iterative`: activation patching, path patching and iterative
//! path patching sweeps.

use crate::inputs::{print_top, setup_facts, InputArgs, OutputArgs};
use anyhow::Result;
use circuitscope::analysis::path_patch::{mask_for, parse_receivers, parse_senders};
use circuitscope::analysis::{
    act_patch, ActTarget, LabelledArray, PathMode, PathPatcher, Position,
};
use circuitscope::report::html::Report;

/// Arguments of `circuitscope patch`.
#[derive(clap::Args)]
pub struct PatchArgs {
    #[command(subcommand)]
    kind: PatchKind,
}

#[derive(clap::Subcommand)]
enum PatchKind {
    /// Activation patching (transformer_lens.patching): copy one clean slice into the
    /// corrupted run per entry.
    Act(ActArgs),
    /// Path patching: senders' corrupted outputs into chosen receivers only, on the clean run.
    Path(PathArgs),
    /// Iterative path patching: every head and MLP alone as the sender into the receivers.
    Iterative(IterArgs),
}

const ACT_EXAMPLES: &str = "Examples:
  circuitscope patch act --model tests/fixtures/gpt2-tiny --tokens clean.json \\
      --corrupted-tokens corrupted.json --answers answers.json \\
      --target attn_head_out_all_pos --out head_out.safetensors
  circuitscope patch act --model gpt2 --task 'Ioi(n: 20, prompt_type: Baba, templates: 1, flip: \"ABB->XYZ, BAB->XYZ\")' \\
      --target resid_pre --out resid_pre.safetensors

--out holds the result as `patch` (attn_head_out_all_pos: [layers, heads], as in
TransformerLens), FILE.json the axis labels and notes; FILE.svg the heatmap, FILE.html the report.
Targets: resid_pre, resid_mid, attn_out, mlp_out, attn_head_{out,q,k,v,pattern}_by_pos,
attn_head_{out,q,k,v,pattern}_all_pos, attn_head_pattern_dest_src_pos, block_every,
attn_head_all_pos_every, attn_head_by_pos_every.";

/// Arguments of `patch act`.
#[derive(clap::Args)]
#[command(after_help = ACT_EXAMPLES)]
pub struct ActArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// What to patch (a transformer_lens.patching get_act_patch_* suffix).
    #[arg(long)]
    target: String,
}

const PATH_EXAMPLES: &str = "Examples:
  circuitscope patch path --model gpt2 --task 'Ioi(n: 50, flip: \"ABB->XYZ, BAB->XYZ\")' \\
      --senders a9.h9,a10.h0 --receivers logits --positions END
  circuitscope patch path --model tests/fixtures/gpt2-tiny --tokens clean.json \\
      --corrupted-tokens corrupted.json --answers answers.json \\
      --senders a0.h1,m0 --receivers a2.h3.q,a2.h3.k --out path.safetensors

Receivers: a head's input a9.h6.q / .k / .v (a9.h6 = all three), an MLP m3, or logits.
Senders: embed, heads a9.h6 (a9.* = every head of layer 9), MLPs m3. Each receiver reads
clean input + Σ (corrupted − current output of each sender that feeds it), at --positions.
With --through-mlps (ARENA's path patching) the senders' corrupted outputs also pass through
the recomputed MLPs while every other head is frozen to the clean run.";

/// Arguments of `patch path`.
#[derive(clap::Args)]
#[command(after_help = PATH_EXAMPLES)]
pub struct PathArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Senders, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    senders: Vec<String>,
    /// Receivers, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    receivers: Vec<String>,
    /// Positions where the receivers take the patched input: names (END, S2, IO) or indices
    /// (-1 = END); default every position.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    positions: Vec<String>,
    /// ARENA / IOI-paper path patching: the senders' effect also flows through the MLPs
    /// (recomputed) while every other head is frozen to the clean run.
    #[arg(long)]
    through_mlps: bool,
}

const ITER_EXAMPLES: &str = "Examples:
  circuitscope patch iterative --model gpt2 --task 'Ioi(n: 50, flip: \"ABB->XYZ, BAB->XYZ\")' \\
      --receivers logits --positions END --normalize --out direct.safetensors
  circuitscope patch iterative --model gpt2 --task ioi.ron --receivers a9.h9.q,a10.h0.q \\
      --positions END --out to_name_movers.safetensors

The result `patch` is [layers, heads + 1] (last column: the MLP) of metric changes
(patched − clean; with --normalize divided by clean − corrupted, so −1 = the whole effect).
Senders that cannot reach the receivers are NaN (grey in the heatmap).";

/// Arguments of `patch iterative`.
#[derive(clap::Args)]
#[command(after_help = ITER_EXAMPLES)]
pub struct IterArgs {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    output: OutputArgs,
    /// Receivers, comma-separated (a9.h6.q, a9.h6 for q+k+v, m3, logits).
    #[arg(long, value_delimiter = ',', default_value = "logits")]
    receivers: Vec<String>,
    /// Positions where the receivers take the patched input (default every position).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    positions: Vec<String>,
    /// Divide the changes by (clean − corrupted).
    #[arg(long)]
    normalize: bool,
    /// ARENA / IOI-paper path patching: the sender's effect also flows through the MLPs
    /// (recomputed) while every other head is frozen to the clean run.
    #[arg(long)]
    through_mlps: bool,
}

fn mode(through_mlps: bool) -> PathMode {
    if through_mlps {
        PathMode::ThroughMlps
    } else {
        PathMode::Direct
    }
}

fn positions(list: &[String]) -> Result<Vec<Position>> {
    Ok(list
        .iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.parse())
        .collect::<circuitscope::Result<Vec<_>>>()?)
}

/// Run the command.
pub fn run(a: &PatchArgs) -> Result<()> {
    match &a.kind {
        PatchKind::Act(x) => run_act(x),
        PatchKind::Path(x) => run_path(x),
        PatchKind::Iterative(x) => run_iter(x),
    }
}

fn run_act(a: &ActArgs) -> Result<()> {
    let target = ActTarget::parse(&a.target)?;
    a.output.check()?;
    let metric = a.input.metric()?;
    let loaded = a.input.load(true)?;
    let setup = loaded.setup(metric)?;
    let t0 = std::time::Instant::now();
    let sweep = act_patch(&setup, target)?;
    eprintln!("{} in {:.1}s", sweep.name, t0.elapsed().as_secs_f64());
    println!(
        "clean {:.6}  corrupted {:.6}",
        setup.clean_metric, setup.corrupted_metric
    );
    print_top(&sweep, setup.corrupted_metric, 10);
    // pictures show the effect: patched − corrupted (0 = the slice changes nothing)
    let shown = sweep.minus(setup.corrupted_metric, "the corrupted metric");
    let mut report = Report::new(&format!("Activation patching: {}", target.name()));
    report.facts(&setup_facts(&setup, &a.input.model));
    report.paragraph(
        "Each cell: the metric of the corrupted run with that slice copied from the clean run, \
         shown minus the corrupted metric (0: no effect; clean − corrupted: the whole effect). \
         The saved tensor holds the metric itself, as transformer_lens.patching returns it.",
    );
    if shown.axes.len() > 2 && shown.axes[0].name == "component" {
        for i in 0..shown.axes[0].len() {
            report.sweep(&shown.index_first(i));
        }
    } else {
        report.sweep(&shown);
    }
    a.output
        .write_pictures(&[("patch", &sweep)], &[("patch", &shown)], &mut report)
}

fn run_path(a: &PathArgs) -> Result<()> {
    a.output.check()?;
    let metric = a.input.metric()?;
    let loaded = a.input.load(true)?;
    let cfg = &loaded.model.cfg;
    let senders = parse_senders(&a.senders, cfg)?;
    let receivers = parse_receivers(&a.receivers, cfg)?;
    let setup = loaded.setup(metric)?;
    let pos = positions(&a.positions)?;
    let mask = mask_for(&setup, &pos)?;
    let pp = PathPatcher::new(&setup)?.with_mode(mode(a.through_mlps));
    let r = pp.run(&senders, &receivers, mask.as_ref())?;
    if r.edges == 0 {
        eprintln!(
            "warning: none of the senders writes to the residual stream before a receiver \
             reads it; nothing was patched"
        );
    }
    println!(
        "clean {:.6}  corrupted {:.6}  patched {:.6}  change {:+.6}  normalized {:+.4}  ({} edges)",
        setup.clean_metric, setup.corrupted_metric, r.metric, r.change, r.normalized, r.edges
    );
    let names = |v: Vec<String>| serde_json::Value::from(v);
    let mut sweep = LabelledArray::new(
        "path_patch",
        "Path patching",
        vec![circuitscope::analysis::Axis::new(
            "value",
            vec!["patched".into(), "change".into(), "normalized".into()],
        )],
    );
    sweep.values = vec![r.metric, r.change, r.normalized];
    sweep.note(
        "senders",
        names(senders.iter().map(|s| s.to_string()).collect()),
    );
    sweep.note(
        "receivers",
        names(receivers.iter().map(|s| s.to_string()).collect()),
    );
    sweep.note(
        "positions",
        names(pos.iter().map(|p| p.to_string()).collect()),
    );
    sweep.note("edges", r.edges as u64);
    sweep.note("clean_metric", setup.clean_metric);
    sweep.note("corrupted_metric", setup.corrupted_metric);
    sweep.note("metric", setup.metric.to_string());
    let mut report = Report::new("Path patching");
    report.facts(&setup_facts(&setup, &a.input.model));
    report.heading("Result");
    report.facts(&[
        (
            "senders",
            senders
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        (
            "receivers",
            receivers
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("patched metric", format!("{:.6}", r.metric)),
        ("change", format!("{:+.6}", r.change)),
        ("normalized change", format!("{:+.4}", r.normalized)),
    ]);
    a.output.write(&[("patch", &sweep)], &mut report)
}

fn run_iter(a: &IterArgs) -> Result<()> {
    a.output.check()?;
    let metric = a.input.metric()?;
    let loaded = a.input.load(true)?;
    let receivers = parse_receivers(&a.receivers, &loaded.model.cfg)?;
    let setup = loaded.setup(metric)?;
    let pos = positions(&a.positions)?;
    let mask = mask_for(&setup, &pos)?;
    let pp = PathPatcher::new(&setup)?.with_mode(mode(a.through_mlps));
    let t0 = std::time::Instant::now();
    let mut sweep = pp.iterative(&receivers, mask.as_ref(), a.normalize)?;
    eprintln!(
        "iterative path patching in {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    sweep.note(
        "positions",
        serde_json::Value::from(pos.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
    );
    println!(
        "clean {:.6}  corrupted {:.6}",
        setup.clean_metric, setup.corrupted_metric
    );
    print_top(&sweep, 0.0, 10);
    let mut report = Report::new("Iterative path patching");
    report.facts(&setup_facts(&setup, &a.input.model));
    report.sweep(&sweep);
    a.output.write(&[("patch", &sweep)], &mut report)
}
