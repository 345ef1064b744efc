//! Inputs and outputs shared by the exploration commands (`patch`, `dla`, `logit-lens`,
//! `attn`, `ablate`): a model, clean/corrupted tokens with answers or a task dataset with its
//! flip, a metric; result files, heatmaps and the HTML report.

use anyhow::{bail, Context, Result};
use circuitscope::analysis::sweep::save_sweeps;
use circuitscope::analysis::{LabelledArray, Setup};
use circuitscope::data::{Dataset, JsonlOptions, TaskSpec};
use circuitscope::metric::Metric;
use circuitscope::model::{resolve::resolve_model, Model};
use circuitscope::report::heatmap::sweep_svg;
use circuitscope::report::html::Report;
use circuitscope::tokenizer::Tokenizer;
use std::path::{Path, PathBuf};

/// Where the rows come from.
#[derive(clap::Args, Debug, Clone)]
pub struct InputArgs {
    /// A model folder, a Hugging Face id in the local cache, or a shipped model name.
    #[arg(long)]
    pub model: String,
    /// Clean token ids: a JSON list of equal-length lists (TransformerLens `clean_tokens`).
    #[arg(long, conflicts_with_all = ["task", "dataset"])]
    pub tokens: Option<PathBuf>,
    /// Corrupted token ids, one row per clean row, of the same length.
    #[arg(long, requires = "tokens")]
    pub corrupted_tokens: Option<PathBuf>,
    /// A JSON list of `[answer_id, wrong_id]` per row; the metric reads the last position.
    #[arg(long, requires = "tokens")]
    pub answers: Option<PathBuf>,
    /// A task: a RON file, inline RON such as
    /// 'Ioi(n: 20, prompt_type: Baba, templates: 1, flip: "ABB->XYZ, BAB->XYZ")', or a task
    /// name with default options (ioi, induction, greater-than, digits, …).
    #[arg(long, conflicts_with = "dataset")]
    pub task: Option<String>,
    /// A JSONL dataset (the output of `circuitscope data`, or your own lines with prompt,
    /// answer, wrong, corrupted).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Metric, averaged over rows at each row's END: logit-diff, norm-logit-diff, kl, nll,
    /// prob, prob-diff, accuracy.
    #[arg(long, default_value = "logit-diff")]
    pub metric: String,
    /// Compute in f32 or f64.
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

/// Where results go.
#[derive(clap::Args, Debug, Clone)]
pub struct OutputArgs {
    /// Write the result tensor here (safetensors; a JSON file with axis labels and notes is
    /// written beside it, same name with .json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Heatmap SVG (default: --out with .svg).
    #[arg(long)]
    pub svg: Option<PathBuf>,
    /// Self-contained HTML report (default: --out with .html).
    #[arg(long)]
    pub report: Option<PathBuf>,
}

impl OutputArgs {
    /// Fail early when a target folder does not exist, or when nothing would be written.
    pub fn check(&self) -> Result<()> {
        if self.out.is_none() && self.svg.is_none() && self.report.is_none() {
            bail!("nothing to write: give --out FILE.safetensors (and/or --svg, --report)");
        }
        for p in [&self.out, &self.svg, &self.report].into_iter().flatten() {
            check_parent(p)?;
        }
        Ok(())
    }

    /// The SVG path.
    pub fn svg_path(&self) -> Option<PathBuf> {
        self.svg
            .clone()
            .or_else(|| self.out.as_ref().map(|p| p.with_extension("svg")))
    }

    /// The report path.
    pub fn report_path(&self) -> Option<PathBuf> {
        self.report
            .clone()
            .or_else(|| self.out.as_ref().map(|p| p.with_extension("html")))
    }

    /// Write sweeps: the tensors (under their keys) with the JSON description, the heatmaps
    /// (one SVG per sweep; with several, `NAME-KEY.svg`), and the report.
    pub fn write(&self, sweeps: &[(&str, &LabelledArray)], report: &mut Report) -> Result<()> {
        self.write_pictures(sweeps, sweeps, report)
    }

    /// Like [`OutputArgs::write`], with other sweeps for the heatmaps (e.g. shifted so that 0
    /// means no effect).
    pub fn write_pictures(
        &self,
        sweeps: &[(&str, &LabelledArray)],
        pictures: &[(&str, &LabelledArray)],
        report: &mut Report,
    ) -> Result<()> {
        if let Some(out) = &self.out {
            save_sweeps(out, sweeps)?;
            eprintln!(
                "wrote {} and {}",
                out.display(),
                out.with_extension("json").display()
            );
        }
        if let Some(svg) = self.svg_path() {
            for (i, (key, s)) in pictures.iter().enumerate() {
                if s.values.len() <= 1 {
                    continue;
                }
                let path = if i == 0 {
                    svg.clone()
                } else {
                    let stem = svg
                        .file_stem()
                        .map(|x| x.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    svg.with_file_name(format!("{stem}-{key}.svg"))
                };
                circuitscope::error::write_atomic(&path, sweep_svg(s).as_bytes())?;
                eprintln!("wrote {}", path.display());
            }
        }
        if let Some(r) = self.report_path() {
            report.save(&r)?;
            eprintln!("wrote {}", r.display());
        }
        Ok(())
    }
}

fn check_parent(p: &Path) -> Result<()> {
    Ok(circuitscope::error::check_output_file(p, "output")?)
}

/// A model, its tokenizer (when it has one) and the rows.
pub struct Loaded {
    /// The model.
    pub model: Model,
    /// The tokenizer, if the model folder has one.
    pub tok: Option<Tokenizer>,
    /// The rows (clean, with corrupted tokens and answers where given).
    pub ds: Dataset,
}

/// Read a JSON list of token-id lists.
pub fn read_token_rows(path: &Path) -> Result<Vec<Vec<u32>>> {
    Ok(circuitscope::json_file::read(path, |e| {
        format!(
            "expected a JSON list of lists of token ids, like [[50256, 3, 7], [50256, 4, 9]]: {e}"
        )
    })?)
}

/// Read `--answers FILE.json`: a list of `[answer_id, wrong_id]` pairs, one per row.
pub fn read_answers(path: &Path) -> Result<Vec<(u32, u32)>> {
    let v: Vec<Vec<u32>> = circuitscope::json_file::read(path, |e| {
        format!(
            "expected a JSON list of [answer_id, wrong_id] pairs, like [[262, 1757], [1757, \
             262]]: {e}"
        )
    })?;
    v.into_iter()
        .enumerate()
        .map(|(i, r)| match r.as_slice() {
            [a, w] => Ok((*a, *w)),
            _ => bail!(
                "{}: row {i} has {} ids; each row is [answer_id, wrong_id]",
                path.display(),
                r.len()
            ),
        })
        .collect()
}

/// Parse `--task`: a RON file, inline RON, or a task name.
pub fn task_spec(s: &str) -> Result<TaskSpec> {
    let p = Path::new(s);
    if p.is_file() {
        let text = circuitscope::error::read_to_string(p)?;
        return Ok(TaskSpec::from_ron(&text, &p.display().to_string())?);
    }
    if s.contains('(') {
        return Ok(TaskSpec::from_ron(s, "--task")?);
    }
    TaskSpec::default_for(s).context("--task: not a file, not RON and not a task name")
}

impl InputArgs {
    /// The metric.
    pub fn metric(&self) -> Result<Metric> {
        Ok(self.metric.parse::<Metric>()?)
    }

    /// Load the model and the rows. `need_pairs`: patching needs corrupted rows and answers.
    pub fn load(&self, need_pairs: bool) -> Result<Loaded> {
        let dtype = crate::util::parse_dtype(&self.dtype)?;
        let dir = resolve_model(&self.model)?;
        let tok = Tokenizer::from_model_dir(&dir).ok();
        let need_tok = |what: &str| -> Result<&Tokenizer> {
            tok.as_ref().with_context(|| {
                format!(
                    "{what} needs the model's tokenizer, but {} has no usable tokenizer.json; \
                     give --tokens instead",
                    dir.display()
                )
            })
        };
        let ds = if let Some(t) = &self.tokens {
            let clean = read_token_rows(t)?;
            let corrupted = match &self.corrupted_tokens {
                Some(p) => Some(read_token_rows(p)?),
                None if need_pairs => {
                    bail!("--tokens needs --corrupted-tokens FILE.json (one row per clean row)")
                }
                None => None,
            };
            let answers = match &self.answers {
                Some(p) => Some(read_answers(p)?),
                None if need_pairs => bail!(
                    "--tokens needs --answers FILE.json: a list of [answer_id, wrong_id] per row"
                ),
                None => None,
            };
            if let Some(c) = &corrupted {
                for (i, (a, b)) in clean.iter().zip(c).enumerate() {
                    if a.len() != b.len() {
                        bail!(
                            "row {i}: the clean row has {} tokens but the corrupted row {}; \
                             patching needs rows of equal length",
                            a.len(),
                            b.len()
                        );
                    }
                }
            }
            Dataset::from_token_rows(&clean, corrupted.as_deref(), answers.as_deref())?
        } else if let Some(t) = &self.task {
            let spec = task_spec(t)?;
            spec.build(need_tok("--task")?)?
        } else if let Some(d) = &self.dataset {
            let opts = JsonlOptions {
                path: d.display().to_string(),
                ..Default::default()
            };
            circuitscope::data::jsonl::load(&opts, need_tok("--dataset")?)?
        } else {
            bail!(
                "give the rows: --tokens clean.json --corrupted-tokens corrupted.json --answers \
                 answers.json, or --task 'Ioi(n: 20, flip: \"ABB->XYZ, BAB->XYZ\")', or \
                 --dataset FILE.jsonl"
            );
        };
        let model = Model::load(&dir, dtype)?;
        Ok(Loaded { model, tok, ds })
    }
}

impl Loaded {
    /// The patching setup (clean vs corrupted, metric), positions labelled with tokens.
    pub fn setup(&self, metric: Metric) -> Result<Setup<'_>> {
        let mut s = Setup::from_dataset(&self.model, self.ds.clone(), metric)?;
        if let Some(t) = &self.tok {
            // labels are a nicety: ids outside a tokenizer's vocabulary keep plain indices
            let _ = s.label_positions(t);
        }
        Ok(s)
    }
}

/// Facts about a setup for reports.
pub fn setup_facts(s: &Setup, model: &str) -> Vec<(&'static str, String)> {
    vec![
        ("model", model.to_string()),
        ("rows", s.batch().to_string()),
        ("positions", s.seq_len().to_string()),
        ("metric", s.metric.to_string()),
        ("clean metric", format!("{:.6}", s.clean_metric)),
        ("corrupted metric", format!("{:.6}", s.corrupted_metric)),
    ]
}

/// Print the largest entries of a sweep (by distance from `baseline`).
pub fn print_top(s: &LabelledArray, baseline: f64, n: usize) {
    let shape = s.shape();
    let mut idx: Vec<usize> = (0..s.values.len())
        .filter(|&i| s.values[i].is_finite())
        .collect();
    idx.sort_by(|&a, &b| {
        (s.values[b] - baseline)
            .abs()
            .total_cmp(&(s.values[a] - baseline).abs())
            .then(a.cmp(&b))
    });
    println!("{} {:?}: largest effects", s.name, shape);
    for &i in idx.iter().take(n) {
        let mut rem = i;
        let mut parts = vec![String::new(); shape.len()];
        for d in (0..shape.len()).rev() {
            let k = rem % shape[d];
            rem /= shape[d];
            parts[d] = format!("{}={}", s.axes[d].name, s.axes[d].labels[k]);
        }
        println!("  {:<48} {:>12.6}", parts.join(" "), s.values[i]);
    }
}
