//! What `circuitscope attribute` writes, and reading it back.
//!
//! - `scores.json`: every edge of the graph in graph order, with `sender`, `receiver`,
//!   `name` (ACDC's edge names: `a0.h1 -> a1.h2.q`, `a1.h2.q -> a1.h2`) and `score`; AtP node
//!   scores; the method, metric, ablation, the model's hash and the graph (so that a score file
//!   is never applied to another model or graph); the effective config.
//! - `scores.safetensors`: `scores` `[edges]` (f64), `scores_per_position` `[edges, pos]` when
//!   asked for, `node_scores` `[nodes]` for AtP.
//! - `circuit.json` / `circuit.dot` / `circuit.svg` when a top-k or threshold is given: the
//!   same layout as ACDC's (`edges`, `removed_edges`, `counts`, each edge with `name`,
//!   `sender`, `receiver` and, as `effect`, its score), drawn with [`crate::report`].

use super::config::Config;
use super::scores::Scores;
use crate::acdc::checkpoint::RunIdentity;
use crate::acdc::output::{diagram_parts, edge_ends, keep_largest, MAX_DIAGRAM_EDGES};
use crate::error::{write_atomic, Error, Result};
use crate::graph::{Edge, EdgeGraph};
use crate::model::Model;
use crate::report::dot::Diagram;
use crate::report::safetensors::TensorData;
use candle_core::Tensor;
use serde_json::{json, Value};
use std::path::Path;

/// The format tag of `scores.json`.
pub const SCORES_FORMAT: &str = "circuitscope-attribution-scores/1";
/// The format tag of an attribution `circuit.json`.
pub const CIRCUIT_FORMAT: &str = "circuitscope-attribution-circuit/1";

/// The description of a graph stored beside scores.
pub fn graph_json(graph: &EdgeGraph, model: &Model) -> Value {
    json!({
        "split_qkv": graph.options.split_qkv,
        "edges": graph.len(),
        "n_layers": model.cfg.n_layers,
        "n_heads": model.cfg.n_heads,
        "mlp": model.cfg.has_mlp(),
    })
}

/// `scores.json`.
pub fn scores_json(
    config: &Config,
    setup: &crate::acdc::Config,
    id: &RunIdentity,
    model: &Model,
    s: &Scores,
    rows: usize,
) -> Value {
    let edges: Vec<Value> = s
        .graph
        .edges()
        .iter()
        .zip(&s.edges)
        .map(|(e, v)| {
            let (a, b) = edge_ends(e);
            json!({ "name": e.to_string(), "sender": a, "receiver": b, "score": v })
        })
        .collect();
    let nodes: Vec<Value> = s
        .nodes
        .iter()
        .map(|(n, v)| json!({ "name": n.to_string(), "score": v }))
        .collect();
    json!({
        "format": SCORES_FORMAT,
        "version": crate::version(),
        "method": s.method.cli_name(),
        "model": config.model,
        "identity": id,
        "graph": graph_json(&s.graph, model),
        "metric": config.metric.cli_name(),
        "ablation": config.ablation,
        "ig_steps": config.ig_steps,
        "ig_points": config.ig_points,
        "rows": rows,
        "positions": s.positions,
        "clean_metric": s.clean_metric,
        "sign": "score = estimated m(edge ablated) − m(clean) for the metric as named (not negated); positions summed",
        "config": config,
        "setup": setup,
        "edges": edges,
        "nodes": nodes,
    })
}

/// `scores.safetensors` (f64), written by [`crate::report::safetensors::write`].
pub fn save_scores_safetensors(path: &Path, s: &Scores) -> Result<()> {
    let f64_data = |name: &str, shape: &[usize], v: Vec<f64>| -> Result<(String, TensorData)> {
        let t = Tensor::from_vec(v, shape, &candle_core::Device::Cpu)?;
        Ok((name.to_string(), TensorData::from_tensor(&t)?))
    };
    let mut tensors = vec![f64_data("scores", &[s.edges.len()], s.edges.clone())?];
    if let Some(pp) = &s.per_position {
        tensors.push(f64_data(
            "scores_per_position",
            &[s.edges.len(), s.positions],
            pp.clone(),
        )?);
    }
    if !s.nodes.is_empty() {
        let v: Vec<f64> = s.nodes.iter().map(|(_, x)| *x).collect();
        tensors.push(f64_data("node_scores", &[s.nodes.len()], v)?);
    }
    crate::report::safetensors::write(path, &tensors, &Default::default())
}

/// The diagram of a circuit, edges drawn with their scores (largest |score| when there are
/// more than [`MAX_DIAGRAM_EDGES`]), as ACDC draws its circuits.
pub fn diagram(title: &str, graph: &EdgeGraph, present: &[bool], scores: &[f64]) -> Diagram {
    let mut drawn: Vec<(Edge, Option<f64>)> = (0..graph.len())
        .filter(|&i| present[i])
        .map(|i| (graph.edge(i), Some(scores[i])))
        .collect();
    let mut title = title.to_string();
    if let Some(all) = keep_largest(&mut drawn) {
        title.push_str(&format!(
            " (drawing the {MAX_DIAGRAM_EDGES} largest of {all})"
        ));
    }
    let (nodes, edges) = diagram_parts(&drawn);
    Diagram {
        title,
        nodes,
        edges,
    }
}

/// `circuit.json` of a circuit chosen from scores (ACDC's layout).
pub fn circuit_json(
    scores_json: &Value,
    graph: &EdgeGraph,
    present: &[bool],
    scores: &[f64],
    selection: &super::circuit::Selection,
    pruned: usize,
) -> Value {
    let entry = |i: usize| {
        let e = graph.edge(i);
        let (a, b) = edge_ends(&e);
        json!({ "name": e.to_string(), "sender": a, "receiver": b, "effect": scores[i] })
    };
    let kept: Vec<Value> = (0..graph.len())
        .filter(|&i| present[i])
        .map(entry)
        .collect();
    let removed: Vec<Value> = (0..graph.len())
        .filter(|&i| !present[i])
        .map(entry)
        .collect();
    let mut out = json!({
        "format": CIRCUIT_FORMAT,
        "version": crate::version(),
        "method": scores_json["method"],
        "model": scores_json["model"],
        "config": scores_json["config"],
        "setup": scores_json["setup"],
        "identity": scores_json["identity"],
        "level": "Edges",
        "split_qkv": graph.options.split_qkv,
        "metric": scores_json["metric"],
        "selection": selection,
        "finished": true,
        "clean_metric": scores_json["clean_metric"],
        "counts": {
            "total": graph.len(),
            "kept": kept.len(),
            "removed": graph.len() - kept.len(),
            "pruned_dangling": pruned,
        },
    });
    out["edges"] = json!(kept);
    out["removed_edges"] = json!(removed);
    out
}

/// A score file read back, checked against a model and graph.
#[derive(Debug, Clone)]
pub struct ScoreFile {
    /// The method that made it.
    pub method: String,
    /// The metric it differentiated.
    pub metric: String,
    /// One score per edge of the graph, in graph order.
    pub scores: Vec<f64>,
    /// The setup it was computed on (model, task, metric, ablation, graph), if recorded.
    pub setup: Option<crate::acdc::Config>,
    /// The model hash it was computed for.
    pub model_hash: Option<String>,
}

/// Parse a JSON file, naming it on error.
pub fn read_json(path: &Path) -> Result<Value> {
    crate::json_file::read(path, |e| format!("not JSON ({e})"))
}

/// The setup (an ACDC config) recorded in a scores.json or circuit.json (ACDC's or ours).
pub fn recorded_setup(path: &Path, v: &Value) -> Result<Option<crate::acdc::Config>> {
    let cfg = if v.get("setup").is_some_and(|s| !s.is_null()) {
        &v["setup"]
    } else if v.get("config").is_some_and(|s| s.get("tau").is_some()) {
        &v["config"]
    } else {
        return Ok(None);
    };
    serde_json::from_value(cfg.clone()).map(Some).map_err(|e| {
        Error::input(format!(
            "{}: its recorded config does not parse ({e}); give --config FILE.ron",
            path.display()
        ))
    })
}

/// Read `scores.json` and check it belongs to this model and graph.
pub fn read_scores(path: &Path, graph: &EdgeGraph, model_hash: &str) -> Result<ScoreFile> {
    let v = read_json(path)?;
    if v["format"] != SCORES_FORMAT {
        return Err(Error::input(format!(
            "{}: not a score file (format {}; expected \"{SCORES_FORMAT}\", as written by \
             `circuitscope attribute`)",
            path.display(),
            v["format"]
        )));
    }
    let recorded_hash = v["identity"]["model_hash"].as_str().map(str::to_string);
    if let Some(h) = &recorded_hash {
        if h != model_hash {
            return Err(Error::input(format!(
                "{}: these scores were computed for another model ({}, files sha256 {}…); this \
                 run uses a model whose files hash to {}…; attribute again with this model, or \
                 pass the score file's model with --model",
                path.display(),
                v["model"],
                &h[..h.len().min(12)],
                &model_hash[..model_hash.len().min(12)]
            )));
        }
    }
    let edges = v["edges"].as_array().cloned().unwrap_or_default();
    if edges.len() != graph.len()
        || v["graph"]["split_qkv"].as_bool() != Some(graph.options.split_qkv)
    {
        return Err(Error::input(format!(
            "{}: scores for a graph of {} edges (q/k/v split: {}); this graph has {} (q/k/v \
             split: {}); use the same --no-split-qkv setting as the attribution run",
            path.display(),
            edges.len(),
            v["graph"]["split_qkv"],
            graph.len(),
            graph.options.split_qkv
        )));
    }
    let mut scores = Vec::with_capacity(edges.len());
    for (i, e) in edges.iter().enumerate() {
        let name = e["name"].as_str().unwrap_or_default();
        if name != graph.edge(i).to_string() {
            return Err(Error::input(format!(
                "{}: edge {i} is '{name}' but this graph's edge {i} is '{}'; the file belongs \
                 to another graph",
                path.display(),
                graph.edge(i)
            )));
        }
        let s = e["score"].as_f64().ok_or_else(|| {
            Error::input(format!(
                "{}: edge {i} ({name}) has no numeric score",
                path.display()
            ))
        })?;
        if !s.is_finite() {
            return Err(Error::input(format!(
                "{}: edge {i} ({name}) has a non-finite score {s}",
                path.display()
            )));
        }
        scores.push(s);
    }
    Ok(ScoreFile {
        method: v["method"].as_str().unwrap_or("scores").to_string(),
        metric: v["metric"].as_str().unwrap_or("").to_string(),
        scores,
        setup: recorded_setup(path, &v)?,
        model_hash: recorded_hash,
    })
}

/// Write text files of a run folder atomically.
pub fn write_text(dir: &Path, name: &str, text: &str) -> Result<()> {
    write_atomic(dir.join(name), text.as_bytes())
}
