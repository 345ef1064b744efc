//! `sweep collect`: merge a sweep's finished points into `sweep.json` and `sweep.csv`, draw
//! the size–faithfulness Pareto plot and, with a known circuit, the ROC curves with their AUC
//! (SVG, and all of it in `sweep.html`).
//!
//! Faithfulness is normalised between the clean model and the empty circuit (every edge
//! ablated): `(empty − circuit) / (empty − clean)` of the minimised metric, so 1 is the clean
//! model's behaviour and 0 the fully ablated one's. The empty circuit's metric is computed here
//! (one patched pass per distinct model, task, metric and ablation).
//!
//! `sweep.json` and `sweep.csv` are functions of the points' `circuit.json` files and the
//! models: no paths, no times, except the CSV's last column (`seconds`, wall-clock time of
//! the point's sessions), so an interrupted and resumed sweep, or one run on a cluster, gives
//! the same bytes.

use super::folder::SweepFolder;
use super::plot::{Plot, Series};
use super::spec::{preparation_key, Point, SweepPlan};
use crate::acdc::{roc, Config, Level, Prepared, Units};
use crate::error::{write_atomic, Error, Result};
use crate::report::html::Report;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The format tag of `sweep.json`.
pub const RESULT_FORMAT: &str = "circuitscope-sweep-result/1";

/// One finished point's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct PointResult {
    /// Index in the sweep.
    pub index: usize,
    /// Its name.
    pub name: String,
    /// Its group (every axis but τ).
    pub group: String,
    /// τ.
    pub tau: f64,
    /// Units kept.
    pub kept: usize,
    /// Units in the graph.
    pub total: usize,
    /// The circuit's (minimised) metric.
    pub metric: f64,
    /// The clean model's.
    pub clean: f64,
    /// The empty circuit's.
    pub empty: f64,
    /// `(empty − metric) / (empty − clean)`; NaN when empty = clean.
    pub faithfulness: f64,
    /// Patched passes the run evaluated.
    pub evaluations: u64,
    /// The kept units (indices into the run's graph).
    pub kept_units: BTreeSet<usize>,
    /// Wall-clock seconds of its sessions, if recorded.
    pub seconds: Option<f64>,
}

/// A group's ROC curve against the known circuit.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRoc {
    /// The group.
    pub group: String,
    /// The list of the known-circuit file compared with.
    pub key: String,
    /// Its curve (sorted by FPR, with (0,0) and (1,1)).
    pub curve: Vec<roc::RocPoint>,
    /// Area under it.
    pub auc: f64,
    /// Number of edges in the known circuit.
    pub truth: usize,
    /// Edges in the graph.
    pub edges: usize,
    /// τ values whose run kept exactly the known circuit.
    pub exact_at_tau: Vec<f64>,
    /// Per point of the group (in sweep order): τ, kept, FPR, TPR.
    pub points: Vec<(f64, usize, f64, f64)>,
}

/// A merged sweep.
#[derive(Debug, Clone)]
pub struct Collected {
    /// Finished points, in sweep order.
    pub points: Vec<PointResult>,
    /// Names of the points not finished.
    pub missing: Vec<String>,
    /// Names of the points on the size–faithfulness Pareto front (fewest units for their
    /// faithfulness), in order of size.
    pub pareto: Vec<String>,
    /// ROC curves (when a known circuit is given).
    pub roc: Vec<GroupRoc>,
    /// The known circuit file's SHA-256, when one was given.
    pub known: Option<String>,
}

/// A point's group: its name without the τ part.
fn group_of(p: &Point) -> String {
    let g: Vec<&str> = p
        .name
        .split('_')
        .filter(|s| !s.starts_with("tau-"))
        .collect();
    if g.is_empty() || p.name == "base" {
        "all".into()
    } else {
        g.join("_")
    }
}

struct GroupModel {
    empty: f64,
    units: Units,
    names: BTreeMap<String, usize>,
    prep: Prepared,
}

fn group_model(c: &Config) -> Result<GroupModel> {
    let prep = Prepared::new(c)?;
    let units = prep.sweep().units;
    let empty = {
        let mut ev = prep.evaluator()?;
        let logits = ev.logits(&vec![false; units.len()])?;
        ev.objective().value(&logits)?
    };
    let names = (0..units.len()).map(|i| (units.name(i), i)).collect();
    Ok(GroupModel {
        empty,
        units,
        names,
        prep,
    })
}

fn read_point(dir: &Path) -> Result<Value> {
    crate::json_file::read(&dir.join("circuit.json"), |e| {
        format!(
            "not a readable circuit.json ({e}); rerun the point with `acdc --resume {}`",
            dir.display()
        )
    })
}

/// One finished point's result, read from its `circuit.json` against its group's model.
fn point_result(
    folder: &SweepFolder,
    index: usize,
    p: &Point,
    v: &Value,
    m: &GroupModel,
) -> Result<PointResult> {
    let dir = folder.point_dir(p);
    let list_key = if v.get("nodes").is_some() {
        "nodes"
    } else {
        "edges"
    };
    let mut kept_units = BTreeSet::new();
    for e in v[list_key].as_array().into_iter().flatten() {
        let n = e["name"].as_str().unwrap_or_default();
        let id = m.names.get(n).ok_or_else(|| {
            Error::input(format!(
                "{}: unit \"{n}\" is not in the graph of this model; the point was run \
                 with another model — rerun it",
                dir.join("circuit.json").display()
            ))
        })?;
        kept_units.insert(*id);
    }
    let num = |k: &str| v[k].as_f64().unwrap_or(f64::NAN);
    let (metric, clean) = (num("current_metric"), num("clean_metric"));
    let empty = m.empty;
    let faithfulness = if empty == clean {
        f64::NAN
    } else {
        (empty - metric) / (empty - clean)
    };
    Ok(PointResult {
        index,
        name: p.name.clone(),
        group: group_of(p),
        tau: p.config.tau,
        kept: kept_units.len(),
        total: m.units.len(),
        metric,
        clean,
        empty,
        faithfulness,
        evaluations: v["evaluations"].as_u64().unwrap_or(0),
        kept_units,
        seconds: folder.time(p).map(|t| t.seconds),
    })
}

/// The ROC curve of every group of points against the known circuit at `path` (its list
/// `key`, or the one the ablation calls for).
fn rocs(
    plan: &SweepPlan,
    points: &[PointResult],
    models: &BTreeMap<String, GroupModel>,
    path: &Path,
    key: Option<&String>,
) -> Result<Vec<GroupRoc>> {
    let mut groups: Vec<String> = vec![];
    for r in points {
        if !groups.contains(&r.group) {
            groups.push(r.group.clone());
        }
    }
    let mut rocs = vec![];
    for g in groups {
        let members: Vec<&PointResult> = points.iter().filter(|r| r.group == g).collect();
        let cfg = &plan.points[members[0].index].config;
        let m = &models[&preparation_key(cfg)];
        let Units::Edges(graph) = &m.units else {
            continue;
        };
        let k = key
            .cloned()
            .unwrap_or_else(|| roc::truth_key(&cfg.ablation).to_string());
        let truth = roc::read_truth(path, &k, graph, &m.prep.model.cfg)?;
        let runs: Vec<(f64, BTreeSet<usize>)> = members
            .iter()
            .map(|r| (r.tau, r.kept_units.clone()))
            .collect();
        rocs.push(group_roc(&g, &k, &runs, &truth, graph.len()));
    }
    Ok(rocs)
}

/// Merge the finished points of `folder`; `known` overrides the sweep file's known circuit
/// (path, optional key).
pub fn collect(
    folder: &SweepFolder,
    known: Option<(PathBuf, Option<String>)>,
) -> Result<Collected> {
    let plan = &folder.manifest.plan;
    let known = known.or_else(|| {
        plan.known_circuit
            .clone()
            .map(|k| (k, plan.known_key.clone()))
    });
    let mut models: BTreeMap<String, GroupModel> = BTreeMap::new();
    let mut points = vec![];
    let mut missing = vec![];
    for (index, p) in plan.points.iter().enumerate() {
        let dir = folder.point_dir(p);
        if !super::folder::finished(&dir) {
            missing.push(p.name.clone());
            continue;
        }
        let v = read_point(&dir)?;
        let key = preparation_key(&p.config);
        if !models.contains_key(&key) {
            let m = group_model(&p.config)
                .map_err(|e| Error::input(format!("sweep point {}: {e}", p.name)))?;
            models.insert(key.clone(), m);
        }
        points.push(point_result(folder, index, p, &v, &models[&key])?);
    }
    let pareto = pareto_front(&points);
    let mut roc = vec![];
    let mut known_id = None;
    if let Some((path, key)) = &known {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let sha = crate::experiment::hash::sha256_hex(&bytes);
        roc = rocs(plan, &points, &models, path, key.as_ref())?;
        known_id = Some(sha);
    }
    Ok(Collected {
        points,
        missing,
        pareto,
        roc,
        known: known_id,
    })
}

/// The ROC of one group's runs.
pub fn group_roc(
    group: &str,
    key: &str,
    runs: &[(f64, BTreeSet<usize>)],
    truth: &BTreeSet<usize>,
    total: usize,
) -> GroupRoc {
    let curve = roc::curve(runs, truth, total);
    let auc = roc::auc(&curve);
    GroupRoc {
        group: group.to_string(),
        key: key.to_string(),
        auc,
        truth: truth.len(),
        edges: total,
        exact_at_tau: runs
            .iter()
            .filter(|(_, k)| k == truth)
            .map(|(t, _)| *t)
            .collect(),
        points: runs
            .iter()
            .map(|(t, k)| {
                let (fpr, tpr) = roc::rates(k, truth, total);
                (*t, k.len(), fpr, tpr)
            })
            .collect(),
        curve,
    }
}

/// Points not dominated by another (one with at most as many units and at least the same
/// faithfulness, better in one), in order of size then name.
fn pareto_front(points: &[PointResult]) -> Vec<String> {
    let mut v: Vec<&PointResult> = points
        .iter()
        .filter(|p| p.faithfulness.is_finite())
        .collect();
    v.sort_by(|a, b| {
        a.kept
            .cmp(&b.kept)
            .then(b.faithfulness.total_cmp(&a.faithfulness))
            .then(a.index.cmp(&b.index))
    });
    let mut best = f64::NEG_INFINITY;
    let mut out = vec![];
    for p in v {
        if p.faithfulness > best {
            best = p.faithfulness;
            out.push(p.name.clone());
        }
    }
    out
}

fn num(x: f64) -> Value {
    if x.is_finite() {
        json!(x)
    } else {
        Value::Null
    }
}

impl Collected {
    /// `sweep.json`.
    pub fn to_json(&self, folder: &SweepFolder) -> Value {
        let plan = &folder.manifest.plan;
        let points: Vec<Value> = self
            .points
            .iter()
            .map(|r| {
                let c = &plan.points[r.index].config;
                json!({
                    "name": r.name,
                    "group": r.group,
                    "tau": r.tau,
                    "metric": c.metric.cli_name(),
                    "ablation": c.ablation,
                    "n": c.n,
                    "seed": c.seed,
                    "order": c.order,
                    "model": c.model,
                    "level": c.level,
                    "kept": r.kept,
                    "total": r.total,
                    "metric_value": num(r.metric),
                    "clean_metric": num(r.clean),
                    "empty_metric": num(r.empty),
                    "faithfulness": num(r.faithfulness),
                    "evaluations": r.evaluations,
                })
            })
            .collect();
        let roc: Vec<Value> = self
            .roc
            .iter()
            .map(|g| {
                json!({
                    "group": g.group,
                    "key": g.key,
                    "auc": g.auc,
                    "truth": g.truth,
                    "edges": g.edges,
                    "exact_at_tau": g.exact_at_tau,
                    "points": g.points.iter().map(|(t, k, f, p)| json!({"tau": t, "kept": k, "fpr": f, "tpr": p})).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "format": RESULT_FORMAT,
            "version": crate::version(),
            "sweep_hash": folder.manifest.hash,
            "axes": plan.axes,
            "points": points,
            "missing": self.missing,
            "pareto": self.pareto,
            "known_circuit_sha256": self.known,
            "roc": roc,
        })
    }

    /// `sweep.csv`: one row per finished point.
    pub fn to_csv(&self, folder: &SweepFolder) -> String {
        let plan = &folder.manifest.plan;
        let mut s = String::from(
            "name,group,tau,metric,ablation,n,seed,kept,total,metric_value,clean_metric,\
             empty_metric,faithfulness,evaluations,seconds\n",
        );
        // Shortest round-trip form (as in sweep.json); empty for no value.
        let f = |x: f64| {
            if x.is_finite() {
                serde_json::to_string(&x).unwrap_or_default()
            } else {
                String::new()
            }
        };
        for r in &self.points {
            let c = &plan.points[r.index].config;
            let abl = super::spec::ablation_label(&c.ablation);
            s.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                r.name,
                r.group,
                f(r.tau),
                c.metric.cli_name(),
                abl,
                c.n.map_or(String::new(), |n| n.to_string()),
                c.seed,
                r.kept,
                r.total,
                f(r.metric),
                f(r.clean),
                f(r.empty),
                f(r.faithfulness),
                r.evaluations,
                r.seconds.map_or(String::new(), |x| format!("{x:.2}")),
            ));
        }
        s
    }

    /// The Pareto plot: units kept against faithfulness, one series per group, and the front.
    pub fn pareto_svg(&self, level: Level) -> String {
        let unit = match level {
            Level::Edges => "edges",
            Level::Nodes => "nodes",
        };
        let mut groups: Vec<String> = vec![];
        for r in &self.points {
            if !groups.contains(&r.group) {
                groups.push(r.group.clone());
            }
        }
        let mut series: Vec<Series> = groups
            .iter()
            .map(|g| {
                let ps: Vec<&PointResult> = self.points.iter().filter(|r| &r.group == g).collect();
                Series {
                    label: g.clone(),
                    points: ps.iter().map(|r| (r.kept as f64, r.faithfulness)).collect(),
                    line: false,
                    markers: true,
                    dashed: false,
                    tips: ps
                        .iter()
                        .map(|r| {
                            format!(
                                "{}: {} {unit}, faithfulness {:.4}",
                                r.name, r.kept, r.faithfulness
                            )
                        })
                        .collect(),
                }
            })
            .collect();
        let front: Vec<(f64, f64)> = self
            .pareto
            .iter()
            .filter_map(|n| self.points.iter().find(|r| &r.name == n))
            .map(|r| (r.kept as f64, r.faithfulness))
            .collect();
        series.push(Series {
            label: "Pareto front".into(),
            points: front,
            line: true,
            markers: false,
            dashed: true,
            tips: vec![],
        });
        Plot {
            title: "Circuit size against faithfulness".into(),
            x_label: format!("{unit} kept"),
            y_label: "normalised faithfulness (1 = clean model, 0 = empty circuit)".into(),
            x_range: None,
            y_range: None,
            series,
        }
        .to_svg()
    }

    /// The ROC curves, one per group, with their AUC in the legend.
    pub fn roc_svg(&self) -> Option<String> {
        if self.roc.is_empty() {
            return None;
        }
        let mut series: Vec<Series> = self
            .roc
            .iter()
            .map(|g| Series {
                label: format!("{} (AUC {:.3})", g.group, g.auc),
                points: g.curve.iter().map(|p| (p.fpr, p.tpr)).collect(),
                line: true,
                markers: true,
                dashed: false,
                tips: g
                    .curve
                    .iter()
                    .map(|p| {
                        if p.tau.is_nan() {
                            format!("FPR {:.4}, TPR {:.4}", p.fpr, p.tpr)
                        } else {
                            format!("tau {:e}: FPR {:.4}, TPR {:.4}", p.tau, p.fpr, p.tpr)
                        }
                    })
                    .collect(),
            })
            .collect();
        series.push(Series {
            label: "chance".into(),
            points: vec![(0.0, 0.0), (1.0, 1.0)],
            line: true,
            markers: false,
            dashed: true,
            tips: vec![],
        });
        Some(
            Plot {
                title: "ROC of the edge decisions against the known circuit".into(),
                x_label: "false-positive rate".into(),
                y_label: "true-positive rate".into(),
                x_range: Some((0.0, 1.0)),
                y_range: Some((0.0, 1.0)),
                series,
            }
            .to_svg(),
        )
    }

    /// Write `sweep.json`, `sweep.csv`, `pareto.svg`, `roc.svg` (with a known circuit) and
    /// `sweep.html` into the sweep's folder.
    pub fn write(&self, folder: &SweepFolder) -> Result<()> {
        let dir = &folder.dir;
        let json = serde_json::to_string_pretty(&self.to_json(folder))
            .map_err(|e| Error::input(format!("cannot serialise sweep.json: {e}")))?;
        write_atomic(dir.join("sweep.json"), format!("{json}\n").as_bytes())?;
        write_atomic(dir.join("sweep.csv"), self.to_csv(folder).as_bytes())?;
        let level = folder
            .points()
            .first()
            .map_or(Level::Edges, |p| p.config.level);
        let pareto = self.pareto_svg(level);
        write_atomic(dir.join("pareto.svg"), pareto.as_bytes())?;
        let roc = self.roc_svg();
        if let Some(r) = &roc {
            write_atomic(dir.join("roc.svg"), r.as_bytes())?;
        }
        self.html(folder, &pareto, roc.as_deref())
            .save(&dir.join("sweep.html"))
    }

    /// The sweep's HTML report: facts, the Pareto plot, the ROC (when a known circuit was
    /// given) and a table of the points.
    fn html(&self, folder: &SweepFolder, pareto: &str, roc: Option<&str>) -> Report {
        let mut rep = Report::new(&format!("ACDC sweep: {} points", folder.points().len()));
        rep.facts(&[
            ("sweep", folder.manifest.plan.source.clone()),
            ("axes", folder.manifest.plan.axes.join(", ")),
            ("finished", self.points.len().to_string()),
            ("missing", self.missing.len().to_string()),
        ]);
        rep.heading("Size against faithfulness");
        rep.paragraph(
            "Faithfulness is normalised between the clean model (1) and the empty circuit, \
             every edge ablated (0). The dashed line joins the Pareto front: the smallest \
             circuit for each level of faithfulness.",
        );
        rep.svg(pareto);
        if let Some(r) = roc {
            rep.heading("ROC against the known circuit");
            rep.svg(r);
            let rows: Vec<Vec<String>> = self
                .roc
                .iter()
                .map(|g| {
                    vec![
                        g.group.clone(),
                        format!("{:.4}", g.auc),
                        g.truth.to_string(),
                        g.edges.to_string(),
                        g.exact_at_tau.len().to_string(),
                    ]
                })
                .collect();
            rep.table(
                &[
                    "group",
                    "AUC",
                    "true edges",
                    "edges",
                    "τ giving exactly the truth",
                ],
                &rows,
            );
        }
        rep.heading("Points");
        rep.table(
            &[
                "point",
                "τ",
                "kept",
                "metric",
                "faithfulness",
                "evaluations",
                "seconds",
            ],
            &self.point_rows(),
        );
        if !self.missing.is_empty() {
            rep.paragraph(&format!(
                "Not finished (not merged): {}",
                self.missing.join(", ")
            ));
        }
        rep
    }

    /// The report's table of points, one row each.
    fn point_rows(&self) -> Vec<Vec<String>> {
        self.points
            .iter()
            .map(|r| {
                vec![
                    r.name.clone(),
                    format!("{:e}", r.tau),
                    format!("{} / {}", r.kept, r.total),
                    crate::report::html::num(r.metric),
                    crate::report::html::num(r.faithfulness),
                    r.evaluations.to_string(),
                    r.seconds.map_or("–".into(), |s| format!("{s:.1}")),
                ]
            })
            .collect()
    }
}
