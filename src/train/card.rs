//! `MODEL.md` for a trained model: how it was made and how well it does.

use super::config::{TrainConfig, TrainTask};
use super::ioi::{IoiTask, SplitMetrics, ABC_FLIP};
use super::trainer::TrainOutcome;
use crate::model::ModelConfig;

fn split_row(name: &str, m: &SplitMetrics) -> String {
    format!(
        "| {name} | {} | {:.3} ± {:.3} | {:.1}% | {:.1}% | {:.3} |\n",
        m.n,
        m.logit_diff,
        m.logit_diff_se,
        100.0 * m.top1,
        100.0 * m.io_over_s,
        m.loss
    )
}

/// The model card of a model trained on IOI: title and how to reproduce it, the model, its
/// training, its metrics, the config.
pub fn ioi_model_card(
    cfg: &TrainConfig,
    mcfg: &ModelConfig,
    task: &IoiTask,
    out: &TrainOutcome,
) -> String {
    let mut s = String::new();
    intro(&mut s, cfg);
    model_section(&mut s, mcfg, out);
    training_section(&mut s, cfg, task, out);
    metrics_section(&mut s, cfg, task, out);
    s.push_str(
        "`tests/toys_ioi.rs` re-evaluates this folder on a fresh evaluation set and checks \
         these numbers within the tolerances stated there.\n\n",
    );
    s.push_str("## Config\n\n```ron\n");
    s.push_str(&config_ron(cfg));
    s.push_str("\n```\n");
    s
}

/// The card's title, what the model is and how to reproduce it.
fn intro(s: &mut String, cfg: &TrainConfig) {
    s.push_str(&format!("# {}\n\n", cfg.name));
    s.push_str(
        "A small GPT-2 (Hugging Face `GPT2LMHeadModel` layout) trained from scratch by \
         circuitscope on indirect object identification (IOI) prompts, with the loss on the \
         answer token only. It is one of circuitscope's embedded default models: small enough \
         to ship, with a real, learned IOI behaviour to find circuits in.\n\n",
    );
    s.push_str("## Reproduce\n\n```\n");
    s.push_str(&format!(
        "circuitscope train --config configs/train/{}.ron --out models/{}\n",
        cfg.name, cfg.name
    ));
    s.push_str("```\n\n");
    s.push_str(
        "The same config gives the same `model.safetensors` bit for bit (batches and the \
         initialisation are drawn from seeded ChaCha8 streams; the optimiser is a fixed \
         sequence of element-wise operations). `metrics.json` holds every number below.\n\n",
    );
}

/// The card's model table.
fn model_section(s: &mut String, mcfg: &ModelConfig, out: &TrainOutcome) {
    let n_params = mcfg.n_params() + mcfg.n_ctx * mcfg.d_model;
    s.push_str("## Model\n\n");
    s.push_str(&format!(
        "| | |\n|---|---|\n| layers | {} |\n| d_model | {} |\n| heads | {} (d_head {}) |\n\
         | d_mlp | {} (gelu_new) |\n| context | {} |\n| vocabulary | {} words (word-level tokenizer) |\n\
         | parameters | {} (tied embedding and unembedding) |\n| weights SHA-256 | `{}` |\n\n",
        mcfg.n_layers,
        mcfg.d_model,
        mcfg.n_heads,
        mcfg.d_head,
        mcfg.d_mlp,
        mcfg.n_ctx,
        mcfg.d_vocab,
        n_params,
        out.weights_sha256
    ));
}

/// The card's training table and its training and held-out prompts.
fn training_section(s: &mut String, cfg: &TrainConfig, task: &IoiTask, out: &TrainOutcome) {
    let TrainTask::Ioi(ioi) = &cfg.task;
    s.push_str("## Training\n\n");
    s.push_str(&format!(
        "| | |\n|---|---|\n| seed | {} |\n| steps | {} |\n| batch | {} prompts |\n\
         | optimiser | AdamW (β {}, {}; weight decay {} on matrices), peak lr {}, warm-up {}, {:?} schedule, gradient clip {} |\n\
         | final loss (mean of last 50 steps) | {:.4} |\n| wall time | {:.0} s on {} thread(s) |\n\n",
        out.seed,
        out.steps,
        cfg.batch,
        cfg.adamw.beta1,
        cfg.adamw.beta2,
        cfg.adamw.weight_decay,
        cfg.lr,
        cfg.warmup,
        cfg.schedule,
        cfg.grad_clip,
        out.final_loss,
        out.wall_s,
        out.threads
    ));
    s.push_str(&format!(
        "Training prompts come from {} templates ({}), with {:?} names, the paper's 8 places \
         and 8 objects, a BOS token first. Held out for evaluation: the templates {} (never \
         trained on) and {:.0}% of the unordered name pairs (split seed {}). Every name is \
         trained on; not every pair.\n\n",
        task.train_templates.len(),
        task.train_templates.join(", "),
        ioi.names,
        ioi.heldout_templates.join(", "),
        100.0 * ioi.heldout_pairs,
        ioi.split_seed
    ));
}

/// The card's metrics: the splits, the ABC corruption, the untrained names.
fn metrics_section(s: &mut String, cfg: &TrainConfig, task: &IoiTask, out: &TrainOutcome) {
    let TrainTask::Ioi(ioi) = &cfg.task;
    let m = &out.metrics;
    s.push_str("## Metrics\n\n");
    s.push_str(&format!(
        "Evaluated on {} fresh prompts per split (eval seed {}). Logit difference = logit(IO) − \
         logit(S) at the last position; top-1 = IO is the highest logit over the whole \
         vocabulary.\n\n",
        cfg.eval.n, cfg.eval.seed
    ));
    s.push_str("| split | n | logit diff IO − S | top-1 = IO | IO > S | loss |\n|---|---|---|---|---|---|\n");
    s.push_str(&split_row(
        "held-out templates × held-out pairs",
        &m.heldout,
    ));
    s.push_str(&split_row("training templates and pairs", &m.train));
    if let Some(u) = &m.untrained_names {
        s.push_str(&split_row("held-out templates, untrained names", u));
    }
    s.push_str(&format!(
        "\nABC corruption (`{ABC_FLIP}`) of the held-out prompts, logit(first name) − \
         logit(second name): mean {:.3} ± {:.3}, mean |difference| {:.3} (n = {}). The mean is \
         near 0: the model has no preference for either position once no name repeats.\n\n",
        m.heldout_abc.mean_diff,
        m.heldout_abc.mean_diff_se,
        m.heldout_abc.mean_abs_diff,
        m.heldout_abc.n
    ));
    if m.untrained_names.is_some() {
        s.push_str(&format!(
            "Untrained names: the vocabulary also holds {} names (from the {:?} list) that never \
             occur in a training prompt. Their embeddings only ever received gradient as wrong \
             answers, so the model cannot copy them; the row above reports it, it is not a \
             target.\n\n",
            task.untrained_names().len(),
            ioi.untrained_names.unwrap_or_default()
        ));
    }
}

/// The config as RON (for the card).
pub fn config_ron(cfg: &TrainConfig) -> String {
    ron::ser::to_string_pretty(cfg, ron::ser::PrettyConfig::default()).unwrap_or_default()
}
