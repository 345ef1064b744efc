//! Hypothesis files (RON): the interpretation tree, its matchers and samplers.
//!
//! ```ron
//! Hypothesis(
//!     name: "name-movers",
//!     model: "gpt2",
//!     task: Ioi(prompt_type: Baba, templates: 1, n: 50, seed: 42),
//!     metric: LogitDiff,
//!     seed: 42,
//!     groups: { "POS_NM": ["a9.h6", "a9.h9", "a10.h0"] },
//!     root: Node(
//!         name: "logits",
//!         sampler: Exact,
//!         other_inputs: Uncond,
//!         children: [
//!             Node(name: "POS_NM", matcher: Direct(to: ["POS_NM"], at: ["END"]), sampler: Exact),
//!         ],
//!     ),
//! )
//! ```

use crate::data::{Dataset, TaskSpec};
use crate::error::{Error, Result};
use crate::graph::{Node, Qkv};
use crate::metric::Metric;
use crate::model::ModelConfig;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A hypothesis file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename = "Hypothesis", deny_unknown_fields)]
pub struct HypothesisFile {
    /// A short name.
    pub name: String,
    /// What the hypothesis claims (free text).
    #[serde(default)]
    pub description: Option<String>,
    /// The model (`--model` syntax); the command line may override it.
    pub model: String,
    /// The dataset.
    pub task: TaskSpec,
    /// The metric (LogitDiff, Kl, …).
    pub metric: Metric,
    /// The sampling seed.
    #[serde(default)]
    pub seed: u64,
    /// Named groups of components, usable in matchers' `to` lists.
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    /// The interpretation tree; its root matches the output (the logits).
    pub root: NodeFile,
}

/// One interpretation node as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename = "Node", deny_unknown_fields)]
pub struct NodeFile {
    /// Unique name.
    pub name: String,
    /// Which paths this node owns (absent or `Root` for the root).
    #[serde(default)]
    pub matcher: Option<MatcherFile>,
    /// How its dataset is drawn from its parent's (default `Exact`).
    #[serde(default)]
    pub sampler: Option<SamplerSpec>,
    /// How inputs under it that no child claims are drawn (non-leaves; default `Uncond`).
    #[serde(default)]
    pub other_inputs: Option<SamplerSpec>,
    /// Child nodes.
    #[serde(default)]
    pub children: Vec<NodeFile>,
}

/// A matcher as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum MatcherFile {
    /// The output only (the root's matcher).
    Root,
    /// Paths that take one edge from the parent's matched component to one in `to`.
    Direct {
        /// Components or group names.
        to: Vec<String>,
        /// Named positions of that edge (empty: all positions).
        #[serde(default)]
        at: Vec<String>,
        /// Through which input of the parent's heads (`Q`, `K`, `V`; empty: any).
        #[serde(default)]
        via: Vec<Qkv>,
    },
    /// Paths from the parent's matched component through any components to one in `to`.
    Any {
        /// Components or group names.
        to: Vec<String>,
        /// Named positions of the last edge, into the matched component.
        #[serde(default)]
        at: Vec<String>,
        /// Through which input of the parent's heads the path leaves it.
        #[serde(default)]
        via: Vec<Qkv>,
        /// Stop at the first match: the path may not pass through another `to` component.
        #[serde(default)]
        stop: bool,
    },
}

/// A conditional sampler.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
pub enum SamplerSpec {
    /// The parent's rows.
    Exact,
    /// Uniformly random rows, with replacement.
    Uncond,
    /// For each row, a random row that agrees on these features (Redwood's FuncSampler).
    Same(Vec<String>),
    /// Rows listed in a JSON file (a list of row indices), relative to the hypothesis file.
    Fixed(String),
}

/// A resolved matcher.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// `Any` rather than `Direct`.
    pub any: bool,
    /// Stop at the first match (`Any` only).
    pub stop: bool,
    /// Matched components.
    pub to: BTreeSet<Node>,
    /// Position names (empty: all).
    pub at_names: Vec<String>,
    /// Per row, the allowed positions (`None`: all).
    pub at: Option<Vec<BTreeSet<usize>>>,
    /// Allowed inputs of the parent's heads (`None`: any).
    pub via: Option<BTreeSet<Qkv>>,
}

impl Matcher {
    /// Whether the edge at (row, pos) satisfies the position restriction.
    pub fn at_ok(&self, row: usize, pos: usize) -> bool {
        self.at.as_ref().is_none_or(|a| a[row].contains(&pos))
    }
}

/// A resolved interpretation node.
#[derive(Debug, Clone)]
pub struct InterpNode {
    /// Unique name.
    pub name: String,
    /// Parent index (`None` for the root).
    pub parent: Option<usize>,
    /// Children indices.
    pub children: Vec<usize>,
    /// One past the last index of this node's subtree (nodes are in depth-first pre-order).
    pub subtree_end: usize,
    /// The matcher (`None` for the root).
    pub matcher: Option<Matcher>,
    /// Conditional sampler.
    pub sampler: SamplerSpec,
    /// Other-inputs sampler (non-leaves).
    pub other_inputs: SamplerSpec,
    /// Line and column of the node in the file.
    pub loc: (usize, usize),
}

impl InterpNode {
    /// Whether the node has no children.
    pub fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }
}

/// A hypothesis resolved against a model shape and a dataset.
#[derive(Debug, Clone)]
pub struct Hypothesis {
    /// The file as written.
    pub file: HypothesisFile,
    /// Where it came from.
    pub path: PathBuf,
    /// The raw text (for hashing and error locations).
    pub text: String,
    /// Nodes in depth-first pre-order; index 0 is the root.
    pub nodes: Vec<InterpNode>,
}

/// Parse a hypothesis file (syntax only). Relative paths in it (`model`, a JSONL task's
/// `path`, `Fixed` samplers' files) are relative to the file's folder; the first two are made
/// absolute here.
pub fn parse_file(path: &Path) -> Result<(HypothesisFile, String)> {
    let text = crate::error::read_to_string(path)?;
    let mut file = parse_str(&text, path)?;
    file.model = crate::ron_file::model_spec(path, &file.model)?;
    crate::ron_file::resolve_task_paths(&mut file.task, path);
    Ok((file, text))
}

/// Parse hypothesis text; `path` names it in errors.
pub fn parse_str(text: &str, path: &Path) -> Result<HypothesisFile> {
    crate::ron_file::parse(
        text,
        path,
        "a hypothesis is `Hypothesis(name: …, model: …, task: …, metric: …, root: Node(…))`; \
         see hypotheses/ for examples",
    )
}

/// The rows of a `Fixed(file)` sampler written in the hypothesis `hyp`: a JSON list of `n` row
/// indices below `n`, in `file` relative to the hypothesis's folder. Errors name the path tried.
pub fn read_fixed_rows(
    hyp: &Path,
    file: &str,
    n: usize,
) -> std::result::Result<Vec<usize>, String> {
    let path = crate::ron_file::resolve(hyp, file);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "cannot read {} ({e}); the path is relative to the hypothesis file's folder",
            path.display()
        )
    })?;
    let rows: Vec<usize> = crate::json_file::parse(&text, &path, |e| {
        format!("expected a JSON list of row indices ({e})")
    })
    .map_err(|e| e.to_string())?;
    if rows.len() != n {
        return Err(format!(
            "{} lists {} rows but the dataset has {n}; list one row index per example",
            path.display(),
            rows.len()
        ));
    }
    if let Some(bad) = rows.iter().find(|&&r| r >= n) {
        return Err(format!(
            "{}: row {bad} is past the dataset's {n} rows (indices start at 0)",
            path.display()
        ));
    }
    Ok(rows)
}

/// Line and column (1-based) of the first occurrence of `needle` at or after `from`.
pub fn locate(text: &str, needle: &str, from: usize) -> Option<(usize, usize, usize)> {
    let idx = text[from.min(text.len())..].find(needle)? + from.min(text.len());
    let before = &text[..idx];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(idx, |n| idx - n - 1) + 1;
    Some((line, col, idx))
}

impl Hypothesis {
    /// Resolve the tree: component names against `cfg`, positions and features against `ds`.
    pub fn resolve(
        file: HypothesisFile,
        text: String,
        path: &Path,
        cfg: &ModelConfig,
        ds: &Dataset,
    ) -> Result<Self> {
        let mut h = Hypothesis {
            file,
            path: path.to_path_buf(),
            text,
            nodes: Vec::new(),
        };
        let root = h.file.root.clone();
        h.add(&root, None, cfg, ds, 0)?;
        let mut names = BTreeSet::new();
        for n in &h.nodes {
            if !names.insert(n.name.clone()) {
                return Err(h.err_at(
                    n.loc,
                    format!("two nodes are named '{}'; names must be unique", n.name),
                ));
            }
        }
        Ok(h)
    }

    fn err_at(&self, (line, col): (usize, usize), msg: String) -> Error {
        Error::input(format!("{}:{line}:{col}: {msg}", self.path.display()))
    }

    fn node_loc(&self, name: &str, from: usize) -> ((usize, usize), usize) {
        for pat in [format!("name: \"{name}\""), format!("\"{name}\"")] {
            if let Some((l, c, i)) = locate(&self.text, &pat, from) {
                return ((l, c), i);
            }
        }
        ((1, 1), from)
    }

    fn add(
        &mut self,
        nf: &NodeFile,
        parent: Option<usize>,
        cfg: &ModelConfig,
        ds: &Dataset,
        search_from: usize,
    ) -> Result<usize> {
        let (loc, at_idx) = self.node_loc(&nf.name, search_from);
        let idx = self.nodes.len();
        let matcher = match (parent, &nf.matcher) {
            (None, None) | (None, Some(MatcherFile::Root)) => None,
            (None, Some(_)) => {
                return Err(self.err_at(
                    loc,
                    format!(
                        "the root '{}' must match the output only: remove its matcher (or write \
                         `matcher: Root`)",
                        nf.name
                    ),
                ))
            }
            (Some(_), None) | (Some(_), Some(MatcherFile::Root)) => {
                return Err(self.err_at(
                    loc,
                    format!(
                        "'{}' is not the root, so it needs a matcher: `Direct(to: [...])` or \
                         `Any(to: [...])`; a hypothesis has exactly one root",
                        nf.name
                    ),
                ))
            }
            (Some(p), Some(m)) => Some(self.resolve_matcher(m, &nf.name, p, cfg, ds, at_idx)?),
        };
        let sampler = nf.sampler.clone().unwrap_or(SamplerSpec::Exact);
        let other = nf.other_inputs.clone().unwrap_or(SamplerSpec::Uncond);
        if nf.children.is_empty() && nf.other_inputs.is_some() && parent.is_some() {
            return Err(self.err_at(
                loc,
                format!(
                    "'{}' is a leaf: `other_inputs` applies only to nodes with children; remove it",
                    nf.name
                ),
            ));
        }
        for s in [&sampler, &other] {
            self.check_sampler(s, &nf.name, loc, ds)?;
        }
        self.nodes.push(InterpNode {
            name: nf.name.clone(),
            parent,
            children: Vec::new(),
            subtree_end: idx + 1,
            matcher,
            sampler,
            other_inputs: other,
            loc,
        });
        let mut from = at_idx;
        for c in &nf.children {
            let ci = self.add(c, Some(idx), cfg, ds, from)?;
            from = self.node_loc(&c.name, from).1;
            self.nodes[idx].children.push(ci);
        }
        self.nodes[idx].subtree_end = self.nodes.len();
        Ok(idx)
    }

    fn check_sampler(
        &self,
        s: &SamplerSpec,
        node: &str,
        loc: (usize, usize),
        ds: &Dataset,
    ) -> Result<()> {
        if let SamplerSpec::Same(features) = s {
            if features.is_empty() {
                return Err(self.err_at(
                    loc,
                    format!("'{node}': Same([]) needs at least one feature"),
                ));
            }
            for f in features {
                if let Err(e) = ds.feature(f) {
                    let (l, c, _) =
                        locate(&self.text, &format!("\"{f}\""), 0).unwrap_or((loc.0, loc.1, 0));
                    return Err(self.err_at((l, c), format!("'{node}': Same([\"{f}\"]): {e}")));
                }
            }
        }
        if let SamplerSpec::Fixed(file) = s {
            let at = locate(&self.text, &format!("\"{file}\""), 0).map_or(loc, |(l, c, _)| (l, c));
            read_fixed_rows(&self.path, file, ds.len())
                .map_err(|e| self.err_at(at, format!("'{node}': Fixed(\"{file}\"): {e}")))?;
        }
        Ok(())
    }

    fn resolve_matcher(
        &self,
        m: &MatcherFile,
        name: &str,
        parent: usize,
        cfg: &ModelConfig,
        ds: &Dataset,
        from: usize,
    ) -> Result<Matcher> {
        let (any, stop, to, at, via) = match m {
            MatcherFile::Root => unreachable!("handled by the caller"),
            MatcherFile::Direct { to, at, via } => (false, false, to, at, via),
            MatcherFile::Any { to, at, via, stop } => (true, *stop, to, at, via),
        };
        let where_ = |needle: &str| -> (usize, usize) {
            locate(&self.text, &format!("\"{needle}\""), from)
                .map(|(l, c, _)| (l, c))
                .unwrap_or(self.node_loc(name, from).0)
        };
        if to.is_empty() {
            return Err(self.err_at(
                where_(name),
                format!("'{name}': the matcher's `to` list is empty"),
            ));
        }
        let mut nodes = BTreeSet::new();
        for t in to {
            if let Some(members) = self.file.groups.get(t) {
                for mname in members {
                    let n = Node::parse(mname, cfg)
                        .map_err(|e| self.err_at(where_(mname), format!("group '{t}': {e}")))?;
                    nodes.insert(n);
                }
            } else {
                let n = Node::parse(t, cfg).map_err(|e| {
                    let groups: Vec<&String> = self.file.groups.keys().collect();
                    let hint = if groups.is_empty() {
                        String::new()
                    } else {
                        format!(" (known groups: {groups:?})")
                    };
                    self.err_at(where_(t), format!("'{name}': {e}{hint}"))
                })?;
                nodes.insert(n);
            }
        }
        let at_sets = if at.is_empty() {
            None
        } else {
            let mut sets = vec![BTreeSet::new(); ds.len()];
            for a in at {
                let pos = ds
                    .position(a)
                    .map_err(|e| self.err_at(where_(a), format!("'{name}': {e}")))?;
                for (row, p) in pos.into_iter().enumerate() {
                    sets[row].insert(p);
                }
            }
            Some(sets)
        };
        let via_set = if via.is_empty() {
            None
        } else {
            Some(via.iter().copied().collect())
        };
        let _ = parent;
        Ok(Matcher {
            any,
            stop,
            to: nodes,
            at_names: at.clone(),
            at: at_sets,
            via: via_set,
        })
    }
}
