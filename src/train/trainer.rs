//! The training loop: AdamW on candle's autograd, batches that are a pure function of
//! `(seed, step)`, checkpoints that resume bit for bit, and the final model folder.

use super::adamw::AdamW;
use super::config::{TrainConfig, TrainTask};
use super::export::{safetensors_bytes, write_model_dir};
use super::ioi::{self, derive_seed, IoiMetrics, IoiTask, Split};
use super::params::Gpt2Params;
use crate::error::{read_to_string, write_atomic, Error, Result};
use crate::experiment::hash::sha256_hex;
use crate::model::{Model, ModelConfig};
use candle_core::{backprop::GradStore, DType, Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What the loop reports after each step.
#[derive(Debug, Clone, Copy)]
pub struct StepInfo {
    /// Steps done (1-based).
    pub step: usize,
    /// Total steps.
    pub steps: usize,
    /// This step's loss.
    pub loss: f64,
    /// This step's learning rate.
    pub lr: f64,
    /// The gradient norm before clipping.
    pub grad_norm: f64,
}

/// One row of `train_log.csv`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LogRow {
    /// Step (1-based).
    pub step: usize,
    /// Learning rate.
    pub lr: f64,
    /// Loss.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
}

/// The outcome of a training run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainOutcome {
    /// The model's name.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// Steps trained.
    pub steps: usize,
    /// Mean loss over the last 50 steps.
    pub final_loss: f64,
    /// Seconds spent training (this invocation; a resumed run counts only its own part).
    pub wall_s: f64,
    /// Threads candle used.
    pub threads: usize,
    /// Step the run resumed from, if it did.
    pub resumed_from: Option<usize>,
    /// Task metrics of the final model.
    pub metrics: IoiMetrics,
    /// SHA-256 of `model.safetensors`.
    pub weights_sha256: String,
}

/// One row of `eval_log.csv`: held-out metrics during training.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct EvalRow {
    /// Step (1-based).
    pub step: usize,
    /// Held-out mean logit difference IO − S.
    pub logit_diff: f64,
    /// Held-out top-1 accuracy.
    pub top1: f64,
    /// Held-out loss.
    pub loss: f64,
}

#[derive(Serialize, Deserialize)]
struct CheckpointState {
    step: usize,
    adam_t: u64,
    config: TrainConfig,
    log: Vec<LogRow>,
    #[serde(default)]
    evals: Vec<EvalRow>,
}

/// The checkpoint folder of a run.
pub fn checkpoint_dir(out: &Path) -> PathBuf {
    out.join("checkpoint")
}

fn write_checkpoint(
    out: &Path,
    cfg: &TrainConfig,
    params: &Gpt2Params,
    opt: &AdamW,
    step: usize,
    log: &[LogRow],
    evals: &[EvalRow],
) -> Result<()> {
    let dir = checkpoint_dir(out);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    let mut moments = Vec::new();
    for p in &params.params {
        moments.push((format!("m.{}", p.name), p.m.clone()));
        moments.push((format!("v.{}", p.name), p.v.clone()));
    }
    write_atomic(
        dir.join("model.safetensors"),
        &safetensors_bytes(&params.tensors())?,
    )?;
    write_atomic(
        dir.join("optimizer.safetensors"),
        &safetensors_bytes(&moments)?,
    )?;
    let state = CheckpointState {
        step,
        adam_t: opt.t,
        config: cfg.clone(),
        log: log.to_vec(),
        evals: evals.to_vec(),
    };
    let text = serde_json::to_string(&state)
        .map_err(|e| Error::input(format!("cannot serialise the checkpoint state: {e}")))?;
    // The state is written last: a checkpoint counts only once its state names its step.
    write_atomic(dir.join("state.json"), text.as_bytes())
}

/// What a checkpoint restores: the next step, the loss log and the evaluation log.
type Resumed = (usize, Vec<LogRow>, Vec<EvalRow>);

fn read_checkpoint(
    out: &Path,
    cfg: &TrainConfig,
    params: &mut Gpt2Params,
    opt: &mut AdamW,
) -> Result<Option<Resumed>> {
    let dir = checkpoint_dir(out);
    let state_path = dir.join("state.json");
    if !state_path.is_file() {
        return Ok(None);
    }
    let state: CheckpointState =
        serde_json::from_str(&read_to_string(&state_path)?).map_err(|e| {
            Error::input(format!(
                "{}: corrupted checkpoint state ({e}); delete {} to train from scratch",
                state_path.display(),
                dir.display()
            ))
        })?;
    if &state.config != cfg {
        return Err(Error::input(format!(
            "{}: the checkpoint was written by a different training config; delete {} or \
             train without --resume",
            state_path.display(),
            dir.display()
        )));
    }
    let load = |name: &str| -> Result<HashMap<String, Tensor>> {
        let p = dir.join(name);
        candle_core::safetensors::load(&p, &Device::Cpu).map_err(|e| {
            Error::input(format!(
                "{}: cannot read the checkpoint ({e}); delete {} to train from scratch",
                p.display(),
                dir.display()
            ))
        })
    };
    let weights = load("model.safetensors")?;
    let moments = load("optimizer.safetensors")?;
    *params = Gpt2Params::from_tensors(&params.cfg, &weights)?;
    for p in params.params.iter_mut() {
        let get = |k: String| {
            moments.get(&k).cloned().ok_or_else(|| {
                Error::input(format!(
                    "{}: checkpoint lacks '{k}'; delete {} to train from scratch",
                    dir.display(),
                    dir.display()
                ))
            })
        };
        p.m = get(format!("m.{}", p.name))?;
        p.v = get(format!("v.{}", p.name))?;
    }
    opt.t = state.adam_t;
    Ok(Some((state.step, state.log, state.evals)))
}

/// Train as `cfg` says and write the model folder `out` (`config.json`, `model.safetensors`,
/// `tokenizer.json`, `metrics.json`, `train_log.csv`, `MODEL.md`). With `resume`, continue from
/// `out/checkpoint` if there is one. `on_step` sees every step (for a progress bar).
pub fn train(
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
    on_step: &mut dyn FnMut(&StepInfo),
) -> Result<TrainOutcome> {
    let TrainTask::Ioi(ioi_cfg) = &cfg.task;
    let task = IoiTask::new(ioi_cfg)?;
    let mcfg = cfg.model_config(task.tok.vocab_size())?;
    let mut params = Gpt2Params::init(&mcfg, cfg.seed)?;
    let mut opt = AdamW::new(cfg.adamw);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let (start, mut log, mut evals) = if resume {
        read_checkpoint(out, cfg, &mut params, &mut opt)?.unwrap_or_default()
    } else {
        (0, Vec::new(), Vec::new())
    };
    // A fixed held-out set for the evaluations during training.
    let probe = if cfg.eval_every > 0 {
        Some(task.sample(Split::Heldout, 200, derive_seed(cfg.seed, "probe", 0), None)?)
    } else {
        None
    };
    let t0 = Instant::now();
    for step in start..cfg.steps {
        let row = train_step(cfg, &task, &mut params, &mut opt, step)?;
        log.push(row);
        on_step(&StepInfo {
            step: row.step,
            steps: cfg.steps,
            loss: row.loss,
            lr: row.lr,
            grad_norm: row.grad_norm,
        });
        if let Some(probe) = &probe {
            if (step + 1) % cfg.eval_every == 0 || step + 1 == cfg.steps {
                let model = Model::from_weights(mcfg.clone(), params.weights()?, DType::F32)?;
                let m = ioi::split_metrics(&model, probe)?;
                evals.push(EvalRow {
                    step: step + 1,
                    logit_diff: m.logit_diff,
                    top1: m.top1,
                    loss: m.loss,
                });
            }
        }
        if cfg.checkpoint_every > 0
            && (step + 1) % cfg.checkpoint_every == 0
            && step + 1 < cfg.steps
        {
            write_checkpoint(out, cfg, &params, &opt, step + 1, &log, &evals)?;
        }
    }
    let run = Finished {
        start,
        log,
        evals,
        wall_s: t0.elapsed().as_secs_f64(),
    };
    finish(cfg, out, &task, &mcfg, &params, run)
}

/// One optimiser step on the batch of `step`: the loss, the gradient norm (clipped to
/// `grad_clip`) and the learning rate, as a log row.
fn train_step(
    cfg: &TrainConfig,
    task: &IoiTask,
    params: &mut Gpt2Params,
    opt: &mut AdamW,
    step: usize,
) -> Result<LogRow> {
    let ds = task.sample(
        Split::Train,
        cfg.batch,
        derive_seed(cfg.seed, "batch", step as u64),
        None,
    )?;
    let (loss, grads) = loss_and_grads(params, &ds, cfg.micro_batch)?;
    let norm = AdamW::grad_norm(&params.params, &grads)?;
    let scale = if cfg.grad_clip > 0.0 && norm > cfg.grad_clip {
        cfg.grad_clip / norm
    } else {
        1.0
    };
    let lr = cfg.lr_at(step);
    opt.step(&mut params.params, &grads, lr, scale)?;
    if !loss.is_finite() {
        return Err(Error::input(format!(
            "the loss became {loss} at step {}; lower the learning rate",
            step + 1
        )));
    }
    Ok(LogRow {
        step: step + 1,
        lr,
        loss,
        grad_norm: norm,
    })
}

/// What the training loop hands to [`finish`].
struct Finished {
    start: usize,
    log: Vec<LogRow>,
    evals: Vec<EvalRow>,
    wall_s: f64,
}

/// Write the model folder and its records (weights, metrics, logs, example tokens, MODEL.md)
/// and remove the checkpoint.
fn finish(
    cfg: &TrainConfig,
    out: &Path,
    task: &IoiTask,
    mcfg: &ModelConfig,
    params: &Gpt2Params,
    run: Finished,
) -> Result<TrainOutcome> {
    let Finished {
        start,
        log,
        evals,
        wall_s,
    } = run;
    let tensors = params.tensors();
    write_model_dir(out, mcfg, &tensors, &task.tokenizer_json)?;
    let weights_sha256 = sha256_hex(
        &std::fs::read(out.join("model.safetensors"))
            .map_err(|e| Error::io(out.join("model.safetensors"), e))?,
    );
    let model = Model::load(out, DType::F32)?;
    let metrics = ioi::evaluate(&model, task, cfg.eval.n, cfg.eval.seed)?;
    let tail = &log[log.len().saturating_sub(50)..];
    let final_loss = tail.iter().map(|r| r.loss).sum::<f64>() / tail.len().max(1) as f64;
    let outcome = TrainOutcome {
        name: cfg.name.clone(),
        seed: cfg.seed,
        steps: cfg.steps,
        final_loss,
        wall_s,
        threads: candle_core::utils::get_num_threads(),
        resumed_from: (start > 0).then_some(start),
        metrics,
        weights_sha256,
    };
    write_atomic(out.join("train_log.csv"), log_csv(&log).as_bytes())?;
    // Example token ids for scripts/check_hf.py (held-out prompts, right-padded with BOS).
    let examples = task.sample(Split::Heldout, 4, derive_seed(cfg.seed, "tokens", 0), None)?;
    let (ids, _, len) = examples.padded_tokens(0);
    let rows: Vec<Vec<u32>> = ids.chunks(len).map(<[u32]>::to_vec).collect();
    write_atomic(
        out.join("tokens.json"),
        format!("{}\n", serde_json::to_string(&rows).unwrap_or_default()).as_bytes(),
    )?;
    if !evals.is_empty() {
        let mut csv = String::from("step,heldout_logit_diff,heldout_top1,heldout_loss\n");
        for e in &evals {
            csv.push_str(&format!(
                "{},{:.4},{:.4},{:.5}\n",
                e.step, e.logit_diff, e.top1, e.loss
            ));
        }
        write_atomic(out.join("eval_log.csv"), csv.as_bytes())?;
    }
    let json = serde_json::to_string_pretty(&outcome)
        .map_err(|e| Error::input(format!("cannot serialise metrics: {e}")))?;
    write_atomic(out.join("metrics.json"), format!("{json}\n").as_bytes())?;
    write_atomic(
        out.join("MODEL.md"),
        super::card::ioi_model_card(cfg, mcfg, task, &outcome).as_bytes(),
    )?;
    let ck = checkpoint_dir(out);
    if ck.is_dir() {
        std::fs::remove_dir_all(&ck).map_err(|e| Error::io(&ck, e))?;
    }
    Ok(outcome)
}

/// The mean answer loss of a batch and its gradients, computed in passes of `micro` prompts
/// (0: one pass) whose gradients are summed in order.
pub fn loss_and_grads(
    params: &Gpt2Params,
    ds: &crate::data::Dataset,
    micro: usize,
) -> Result<(f64, GradStore)> {
    let n = ds.len();
    let micro = if micro == 0 { n } else { micro.min(n) };
    let model = Model::from_weights(params.cfg.clone(), params.weights()?, DType::F32)?;
    let mut total: Option<GradStore> = None;
    let mut loss_sum = 0.0;
    let rows: Vec<usize> = (0..n).collect();
    for chunk in rows.chunks(micro) {
        let part = ds.select(chunk);
        let loss = ioi::answer_loss(&model, &part)?;
        let weight = chunk.len() as f64 / n as f64;
        loss_sum += weight * loss.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        let grads = (loss * weight)?.backward()?;
        total = Some(match total {
            None => grads,
            Some(mut acc) => {
                for p in &params.params {
                    let v = p.var.as_tensor();
                    if let (Some(a), Some(g)) = (acc.get(v), grads.get(v)) {
                        let s = (a.detach() + g.detach())?;
                        acc.insert(v, s);
                    }
                }
                acc
            }
        });
    }
    let grads = total.ok_or_else(|| Error::input("empty training batch"))?;
    Ok((loss_sum, grads))
}

/// The loss log as CSV (every 10th step and the last).
pub fn log_csv(log: &[LogRow]) -> String {
    let mut s = String::from("step,lr,loss,grad_norm\n");
    for (i, r) in log.iter().enumerate() {
        if r.step % 10 == 0 || i + 1 == log.len() {
            s.push_str(&format!(
                "{},{:.6e},{:.6},{:.6}\n",
                r.step, r.lr, r.loss, r.grad_norm
            ));
        }
    }
    s
}
