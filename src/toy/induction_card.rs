//! Writing `toy-induction`: the model folder, its metrics, `CIRCUIT.json` and `MODEL.md`.

use super::edges::{edge_effects, Ablation, EdgeEffect};
use super::induction::{build, BuiltInduction, InductionSpec, Layout, D_MLP};
use crate::data::{InductionOptions, Side, TaskSpec};
use crate::detect::{self, HeadScores};
use crate::error::{write_atomic, Error, Result};
use crate::eval::{self, LogitsAt, Patches, RunOptions};
use crate::experiment::{padded_tensor, token_tensor};
use crate::model::Model;
use crate::report::template::fill;
use crate::tokenizer::Tokenizer;
use crate::train::export::write_model_dir;
use candle_core::DType;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The circuit's edges: what each circuit component reads (all of them matter when cut by
/// zero ablation).
pub const CIRCUIT_EDGES: [(&str, &str); 8] = [
    ("embed", "a0.h0.q"),
    ("embed", "a0.h0.k"),
    ("embed", "a0.h0.v"),
    ("a0.h0", "a1.h0.k"),
    ("embed", "a1.h0.q"),
    ("embed", "a1.h0.v"),
    ("a1.h0", "logits"),
    ("embed", "logits"),
];

/// The edges that matter when cut by patching in the activations of another sequence (other
/// rows of the dataset, as ACDC's induction experiments do): the positional reads of a0.h0's
/// query and key see the same positions in every input, so they drop out.
pub const RESAMPLE_EDGES: [(&str, &str); 6] = [
    ("embed", "a0.h0.v"),
    ("a0.h0", "a1.h0.k"),
    ("embed", "a1.h0.q"),
    ("embed", "a1.h0.v"),
    ("a1.h0", "logits"),
    ("embed", "logits"),
];

/// The edges that matter at END under the induction task's own corruption, which replaces
/// only the second copy: the key the END query needs (the first token of the second copy,
/// whose previous token is the last of the first copy) has the same previous token in both
/// inputs, so the previous-token head's contribution is not changed by it.
pub const SECOND_COPY_EDGES: [(&str, &str); 4] = [
    ("embed", "a1.h0.q"),
    ("embed", "a1.h0.v"),
    ("a1.h0", "logits"),
    ("embed", "logits"),
];

/// Behaviour of the constructed model on repeated random tokens.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InductionMetrics {
    /// Sequences `[BOS] r r`.
    pub n: usize,
    /// Length of `r`.
    pub seq_len: usize,
    /// Seed of the sequences.
    pub seed: u64,
    /// Mean next-token loss inside the first copy (not predictable).
    pub loss_first: f64,
    /// Mean next-token loss inside the second copy (predictable by induction).
    pub loss_repeat: f64,
    /// Top-1 accuracy inside the first copy.
    pub top1_first: f64,
    /// Top-1 accuracy inside the second copy.
    pub top1_repeat: f64,
    /// The induction task (`TaskSpec::Induction`): accuracy of the answer at END.
    pub task_end_accuracy: f64,
    /// The induction task: mean loss of the answer at END.
    pub task_end_loss: f64,
    /// Head detector scores.
    pub heads: HeadScores,
}

/// The ordinary (non-special) token ids of the toy tokenizer.
pub fn ordinary_tokens(tok: &Tokenizer) -> Vec<u32> {
    let specials = tok.special_ids();
    (0..tok.vocab_size() as u32)
        .filter(|t| specials.binary_search(t).is_err())
        .collect()
}

/// Evaluate a model on repeated random tokens and on the induction task.
pub fn evaluate(
    model: &Model,
    tok: &Tokenizer,
    n: usize,
    seq_len: usize,
    seed: u64,
) -> Result<InductionMetrics> {
    let bos = tok
        .bos_token_id()
        .ok_or_else(|| Error::input("the toy tokenizer has no BOS token"))?;
    let pool = ordinary_tokens(tok);
    let rows = detect::repeated_tokens(&pool, seq_len, n, seed, Some(bos))?;
    let t = model.tokens_tensor(&rows)?;
    let run = eval::run(model, &t, &Patches::new(), RunOptions::default())?;
    let logits = run
        .logits
        .ok_or_else(|| Error::input("no logits"))?
        .to_dtype(DType::F64)?;
    let lp = eval::log_softmax(&logits)?;
    let (b, p, v) = lp.dims3()?;
    let lp = lp.flatten_all()?.to_vec1::<f64>()?;
    let lv = logits.flatten_all()?.to_vec1::<f64>()?;
    let (mut lf, mut lr, mut tf, mut tr) = (0.0, 0.0, 0usize, 0usize);
    let (mut nf, mut nr) = (0usize, 0usize);
    for (bi, row) in rows.iter().enumerate() {
        // Position i predicts row[i + 1]. First copy: positions 1 ..= seq_len − 1 predict
        // r[1..]; second copy: positions seq_len + 1 ..= 2·seq_len − 1 predict r[1..] again.
        for i in 1..p - 1 {
            let target = row[i + 1] as usize;
            let off = (bi * p + i) * v;
            let l = -lp[off + target];
            let best = (0..v)
                .max_by(|&x, &y| lv[off + x].total_cmp(&lv[off + y]).then(y.cmp(&x)))
                .unwrap_or(0);
            let hit = usize::from(best == target);
            if i < seq_len {
                lf += l;
                tf += hit;
                nf += 1;
            } else if i > seq_len {
                lr += l;
                tr += hit;
                nr += 1;
            }
        }
    }
    let _ = b;
    let ds = TaskSpec::Induction(InductionOptions {
        n,
        seed,
        prepend_bos: true,
        seq_len: seq_len.min(pool.len() / 2),
        min_token: 0,
        max_token: 0,
    })
    .build(tok)?;
    let ends = ds.end_positions();
    let tt = padded_tensor(model, &ds, Side::Clean, ds.max_len(), bos)?;
    let run = eval::run(
        model,
        &tt,
        &Patches::new(),
        RunOptions {
            logits: LogitsAt::Rows(ends),
            ..Default::default()
        },
    )?;
    let end_logits = run.logits.ok_or_else(|| Error::input("no logits"))?;
    let acc = crate::metric::Metric::Accuracy.per_example(&end_logits, &ds, None, None)?;
    let nll = crate::metric::Metric::Nll.per_example(&end_logits, &ds, None, None)?;
    let heads = detect::detect(model, &tok.special_ids(), Some(bos), seq_len, n, seed)?;
    Ok(InductionMetrics {
        n,
        seq_len,
        seed,
        loss_first: lf / nf as f64,
        loss_repeat: lr / nr as f64,
        top1_first: tf as f64 / nf as f64,
        top1_repeat: tr as f64 / nr as f64,
        task_end_accuracy: crate::metric::mean(&acc),
        task_end_loss: crate::metric::mean(&nll),
        heads,
    })
}

/// `CIRCUIT.json`: the ground-truth circuit and the measured effect of cutting every edge.
#[derive(Debug, Clone, Serialize)]
pub struct CircuitFile {
    /// The model.
    pub model: String,
    /// Nodes of the circuit.
    pub nodes: Vec<String>,
    /// Edges of the circuit (sender, receiver): each matters under zero ablation.
    pub edges: Vec<[String; 2]>,
    /// The subset that matters when activations come from other sequences (resample
    /// ablation with other rows, as in ACDC's induction experiments).
    pub edges_resample: Vec<[String; 2]>,
    /// The subset that matters under the induction task's corruption (second copy replaced).
    pub edges_second_copy: Vec<[String; 2]>,
    /// What each node does.
    pub roles: std::collections::BTreeMap<String, String>,
    /// How the effects were measured.
    pub effects_setup: String,
    /// Effect of cutting each edge of the graph alone by resampling (row i takes row i + 1's
    /// activations).
    pub effects_resample: Vec<EdgeEffect>,
    /// Effect of cutting each edge alone with the induction task's corrupted rows.
    pub effects_second_copy: Vec<EdgeEffect>,
    /// Effect of cutting each edge of the graph alone by zero ablation.
    pub effects_zero: Vec<EdgeEffect>,
    /// Notes.
    pub notes: Vec<String>,
}

fn pairs(list: &[(&str, &str)]) -> Vec<[String; 2]> {
    list.iter()
        .map(|(a, b)| [a.to_string(), b.to_string()])
        .collect()
}

/// The induction task used to measure edge effects: `n` rows of `seq_len` tokens repeated,
/// corrupted by replacing the second copy with fresh tokens.
pub fn effects_task(seq_len: usize) -> InductionOptions {
    InductionOptions {
        n: 20,
        seed: 0,
        prepend_bos: true,
        seq_len,
        min_token: 0,
        max_token: 0,
    }
}

/// Measure every edge's effect on the induction task.
pub fn circuit_file(model: &Model, tok: &Tokenizer) -> Result<CircuitFile> {
    let opts = effects_task(15);
    let ds = TaskSpec::Induction(opts.clone()).build(tok)?;
    let clean = token_tensor(model, &ds, Side::Clean)?;
    let cor = token_tensor(model, &ds, Side::Corrupted)?;
    let shifted = shifted_rows(
        &ds.examples
            .iter()
            .map(|e| e.tokens.clone())
            .collect::<Vec<_>>(),
    );
    let shifted = model.tokens_tensor(&shifted)?;
    let roles = [
        ("a0.h0", "previous-token head: attends from p to p − 1, copies that token into PREV"),
        ("a0.h1", "distractor: attends to itself, writes a code of the current token into J0, which nothing reads"),
        ("a1.h0", "induction head: query = current token, key = PREV (a0.h0's output), copies the attended token into TOK for the unembedding"),
        ("a1.h1", "distractor: attends to itself, writes a code of PREV into J1, which nothing reads"),
        ("m0", "MLP with all-zero weights: output exactly 0"),
        ("m1", "MLP with all-zero weights: output exactly 0"),
        ("embed", "token (TOK) and position (POS) codes"),
        ("logits", "tied unembedding: reads TOK"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    Ok(CircuitFile {
        model: "toy-induction".into(),
        nodes: ["embed", "a0.h0", "a1.h0", "logits"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        edges: pairs(&CIRCUIT_EDGES),
        edges_resample: pairs(&RESAMPLE_EDGES),
        edges_second_copy: pairs(&SECOND_COPY_EDGES),
        roles,
        effects_setup: format!(
            "Each edge of the graph cut alone at every position, on the clean rows of the \
             induction task {:?} (f32). resample: the sender's output on row i + 1 (mod n); \
             second_copy: the sender's output on the task's corrupted row (second copy replaced \
             by fresh tokens); zero: 0. max_abs_logit_change is over every row, position and \
             token; mean_kl averages KL(clean ‖ cut) over every row and position; end_kl over \
             rows at END (the last position).",
            TaskSpec::Induction(opts)
        ),
        effects_resample: edge_effects(model, &clean, &shifted, Ablation::Corrupted)?,
        effects_second_copy: edge_effects(model, &clean, &cor, Ablation::Corrupted)?,
        effects_zero: edge_effects(model, &clean, &cor, Ablation::Zero)?,
        notes: vec![
            "Under resampling every edge outside edges_resample has exactly zero effect up to \
             float rounding: every block of the residual stream is a centred code of fixed \
             norm, so swapping one input's code for another's leaves LayerNorm's scale \
             unchanged."
                .into(),
            "The induction task's own corruption (TaskSpec::Induction) replaces only the second \
             copy; the key the END query needs keeps its previous token, so under that \
             corruption the previous-token head is invisible at END (edges_second_copy). Use \
             other rows as the corruption to see the whole circuit."
                .into(),
            "Under zero ablation, removing a vector changes the LayerNorm scale of the \
             receiver, so a few edges outside `edges` move the logits slightly (see \
             effects_zero); the distractors' outputs are never read."
                .into(),
            "The MLPs m0 and m1 exist (Hugging Face's GPT-2 cannot run without them) but their \
             weights and biases are all zero: every edge into or out of them has zero effect."
                .into(),
        ],
    })
}

/// Row i of the result is row i + 1 (mod n): every row gets another sequence.
pub fn shifted_rows(rows: &[Vec<u32>]) -> Vec<Vec<u32>> {
    (0..rows.len())
        .map(|i| rows[(i + 1) % rows.len()].clone())
        .collect()
}

/// Build `toy-induction` and write the folder: config.json, model.safetensors,
/// tokenizer.json, CIRCUIT.json, metrics.json, MODEL.md.
pub fn write(dir: &Path, spec: &InductionSpec) -> Result<(InductionMetrics, CircuitFile)> {
    let BuiltInduction {
        cfg,
        weights,
        tokenizer_json,
        layout,
    } = build(spec)?;
    let tensors: Vec<(String, candle_core::Tensor)> = weights
        .to_hf_gpt2()?
        .into_iter()
        .map(|(n, t)| Ok((n, t.to_dtype(DType::F32)?)))
        .collect::<Result<_>>()?;
    write_model_dir(dir, &cfg, &tensors, &tokenizer_json)?;
    let model = Model::load(dir, DType::F32)?;
    let tok = Tokenizer::from_model_dir(dir)?;
    let metrics = evaluate(&model, &tok, 200, 20, 0)?;
    let circuit = circuit_file(&model, &tok)?;
    write_atomic(dir.join("CIRCUIT.json"), to_json(&circuit)?.as_bytes())?;
    // Example token ids for scripts/check_hf.py: two repeated random sequences.
    let bos = tok.bos_token_id().unwrap_or(0);
    let rows = detect::repeated_tokens(&ordinary_tokens(&tok), 12, 2, 1, Some(bos))?;
    write_atomic(
        dir.join("tokens.json"),
        format!("{}\n", serde_json::to_string(&rows).unwrap_or_default()).as_bytes(),
    )?;
    let m = serde_json::json!({"spec": spec, "layout": layout, "metrics": metrics});
    write_atomic(dir.join("metrics.json"), to_json(&m)?.as_bytes())?;
    let sha = crate::experiment::hash::sha256_hex(
        &std::fs::read(dir.join("model.safetensors"))
            .map_err(|e| Error::io(dir.join("model.safetensors"), e))?,
    );
    write_atomic(
        dir.join("MODEL.md"),
        model_card(spec, &layout, &cfg, &metrics, &circuit, &sha)?.as_bytes(),
    )?;
    Ok((metrics, circuit))
}

/// Pretty JSON with a final newline.
fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string_pretty(v)
        .map(|s| format!("{s}\n"))
        .map_err(|e| Error::input(format!("cannot serialise JSON: {e}")))
}

fn heads_table(s: &HeadScores) -> String {
    let mut t = String::from(
        "| head | previous-token | duplicate-token | induction |\n|---|---|---|---|\n",
    );
    for l in 0..s.previous_token.len() {
        for h in 0..s.previous_token[l].len() {
            t.push_str(&format!(
                "| a{l}.h{h} | {:.3} | {:.3} | {:.3} |\n",
                s.previous_token[l][h], s.duplicate_token[l][h], s.induction[l][h]
            ));
        }
    }
    t
}

/// The card's prose, with `{{name}}` placeholders for every number.
const CARD_TEMPLATE: &str = include_str!("induction_card.md");

/// MODEL.md: [`CARD_TEMPLATE`] filled with the model's shape, layout, metrics and circuit.
fn model_card(
    spec: &InductionSpec,
    lay: &Layout,
    cfg: &crate::model::ModelConfig,
    m: &InductionMetrics,
    c: &CircuitFile,
    sha: &str,
) -> Result<String> {
    let mut values = shape_values(spec, lay, cfg, sha);
    values.extend(metric_values(m));
    values.extend(circuit_values(c));
    fill(CARD_TEMPLATE, &values)
}

/// The placeholders of the model's shape and residual-stream layout.
fn shape_values(
    spec: &InductionSpec,
    lay: &Layout,
    cfg: &crate::model::ModelConfig,
    sha: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("sha", sha.to_string()),
        ("n_layers", cfg.n_layers.to_string()),
        ("d_model", cfg.d_model.to_string()),
        ("n_heads", cfg.n_heads.to_string()),
        ("d_head", cfg.d_head.to_string()),
        ("d_mlp", D_MLP.to_string()),
        ("n_ctx", cfg.n_ctx.to_string()),
        ("d_vocab", cfg.d_vocab.to_string()),
        ("last_token", (spec.n_tokens - 1).to_string()),
        (
            "n_params",
            (cfg.n_params() + cfg.n_ctx * cfg.d_model).to_string(),
        ),
        ("margin", spec.margin.to_string()),
        ("logit_gap", spec.logit_gap.to_string()),
        ("beta", spec.beta.to_string()),
        ("tok_start", lay.tok.to_string()),
        ("tok_end", (lay.tok + lay.d_vocab).to_string()),
        ("pos_start", lay.pos.to_string()),
        ("pos_end", (lay.pos + lay.n_ctx).to_string()),
        ("prev_start", lay.prev.to_string()),
        ("prev_end", (lay.prev + lay.d_vocab).to_string()),
        ("j0_start", lay.j0.to_string()),
        ("j0_end", (lay.j0 + lay.code_dims).to_string()),
        ("j1_start", lay.j1.to_string()),
        ("j1_end", (lay.j1 + lay.code_dims).to_string()),
    ]
}

/// The placeholders of the measured metrics and head scores.
fn metric_values(m: &InductionMetrics) -> Vec<(&'static str, String)> {
    vec![
        ("n", m.n.to_string()),
        ("seq_len", m.seq_len.to_string()),
        ("seed", m.seed.to_string()),
        ("loss_first", format!("{:.3}", m.loss_first)),
        ("top1_first", format!("{:.1}", 100.0 * m.top1_first)),
        ("loss_repeat", format!("{:.4}", m.loss_repeat)),
        ("top1_repeat", format!("{:.1}", 100.0 * m.top1_repeat)),
        (
            "task_accuracy",
            format!("{:.1}", 100.0 * m.task_end_accuracy),
        ),
        ("task_loss", format!("{:.4}", m.task_end_loss)),
        ("heads_table", heads_table(&m.heads)),
    ]
}

/// True when `e` is one of the edges `listed`.
fn is_listed(e: &EdgeEffect, listed: &[[String; 2]]) -> bool {
    listed
        .iter()
        .any(|l| l[0] == e.sender && l[1] == e.receiver)
}

/// The smallest `of` among the listed edges (∞ when none).
fn listed_min(effects: &[EdgeEffect], listed: &[[String; 2]], of: fn(&EdgeEffect) -> f64) -> f64 {
    effects
        .iter()
        .filter(|e| is_listed(e, listed))
        .map(of)
        .fold(f64::INFINITY, f64::min)
}

/// The largest `of` among the edges not listed (0 when none).
fn others_max(effects: &[EdgeEffect], listed: &[[String; 2]], of: fn(&EdgeEffect) -> f64) -> f64 {
    effects
        .iter()
        .filter(|e| !is_listed(e, listed))
        .map(of)
        .fold(0.0f64, f64::max)
}

/// The placeholders of the circuit: the heads' roles, the edges and their effects under each
/// ablation.
fn circuit_values(c: &CircuitFile) -> Vec<(&'static str, String)> {
    let logit = |e: &EdgeEffect| e.max_abs_logit_change;
    let kl = |e: &EdgeEffect| e.end_kl;
    let roles: String = c
        .roles
        .iter()
        .map(|(k, v)| format!("- `{k}`: {v}\n"))
        .collect();
    let edges: String = c
        .edges
        .iter()
        .map(|[a, b]| {
            let in_r = c.edges_resample.iter().any(|e| &e[0] == a && &e[1] == b);
            let note = if in_r {
                ""
            } else {
                " (positions only: invisible to resampling)"
            };
            format!("- `{a} → {b}`{note}\n")
        })
        .collect();
    let second_copy_edges = c
        .edges_second_copy
        .iter()
        .map(|[a, b]| format!("`{a} → {b}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let (rs, rl) = (&c.effects_resample, &c.edges_resample);
    let (ss, sl) = (&c.effects_second_copy, &c.edges_second_copy);
    vec![
        ("roles", roles),
        ("edges", edges),
        (
            "resample_min_listed",
            format!("{:.3}", listed_min(rs, rl, logit)),
        ),
        (
            "resample_min_end_kl",
            format!("{:.3}", listed_min(rs, rl, kl)),
        ),
        ("resample_others", (rs.len() - rl.len()).to_string()),
        (
            "resample_max_other",
            format!("{:.1e}", others_max(rs, rl, logit)),
        ),
        ("second_copy_edges", second_copy_edges),
        (
            "second_copy_min_end_kl",
            format!("{:.3}", listed_min(ss, sl, kl)),
        ),
        (
            "second_copy_max_other_end_kl",
            format!("{:.1e}", others_max(ss, sl, kl)),
        ),
        (
            "zero_min_listed",
            format!("{:.3}", listed_min(&c.effects_zero, &c.edges, logit)),
        ),
        (
            "zero_max_other",
            format!("{:.3}", others_max(&c.effects_zero, &c.edges, logit)),
        ),
    ]
}
