//! Memory estimates made from a config before the first large allocation: a run that would not
//! fit is refused with the estimate and the limit, instead of aborting or waking the
//! out-of-memory killer on a shared machine.
//!
//! The limit is the machine's physical memory, or `CIRCUITSCOPE_MAX_MEMORY` (set by the
//! commands' `--max-memory SIZE` flag). Estimates count what a run cannot do without (the
//! dataset, one forward pass's activations, the weights); real peaks are higher, so a refusal
//! is never a false alarm.

use crate::data::TaskSpec;
use crate::error::{Error, Result};
use crate::model::ModelConfig;

/// The environment variable holding the memory limit (`8G`, `512M`, `2.5G`, or bytes).
pub const LIMIT_ENV: &str = "CIRCUITSCOPE_MAX_MEMORY";

/// Bytes of one dataset row besides its tokens (prompt text, positions, answers, features).
const ROW_BYTES: u64 = 1024;

/// Parse a size: a number of bytes, or a number followed by K, M, G or T (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => 0,
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    match num.trim().parse::<f64>() {
        Ok(x) if mult > 0 && x.is_finite() && x > 0.0 => Ok((x * mult as f64) as u64),
        _ => Err(Error::input(format!(
            "memory size '{s}': expected a positive number of bytes or a size like 512M, 8G, 1.5T"
        ))),
    }
}

/// Physical memory in bytes (`/proc/meminfo`), if known.
fn physical() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The limit in bytes and where it comes from.
pub fn limit() -> Result<(u64, String)> {
    if let Ok(v) = std::env::var(LIMIT_ENV) {
        let b =
            parse_size(&v).map_err(|e| Error::input(format!("--max-memory / {LIMIT_ENV}: {e}")))?;
        return Ok((b, format!("set by --max-memory {v}")));
    }
    match physical() {
        Some(b) => Ok((b, "this machine's memory".into())),
        None => Ok((u64::MAX, "unknown".into())),
    }
}

/// A size for people: `1.5 GB`.
pub fn human(b: u64) -> String {
    let b = b as f64;
    let gb = (1u64 << 30) as f64;
    if b >= gb {
        format!("{:.1} GB", b / gb)
    } else {
        format!("{:.1} MB", b / (1u64 << 20) as f64)
    }
}

/// Refuse `estimate` bytes above the limit: `what` says what needs them (naming the file or
/// flag), `fix` how to need less.
pub fn check(what: &str, estimate: u64, fix: &str) -> Result<()> {
    let (limit, source) = limit()?;
    if estimate <= limit {
        return Ok(());
    }
    Err(Error::input(format!(
        "{what} needs at least {} of memory, more than the limit of {} ({source}); {fix}, or \
         raise the limit with --max-memory SIZE if the machine really has that much",
        human(estimate),
        human(limit)
    )))
}

/// Rows and tokens per row a task will produce, from its options alone (`None` rows for a JSONL
/// file read whole: its size bounds it).
pub fn task_shape(task: &TaskSpec) -> (Option<u64>, u64) {
    let n = |n: usize| Some(n as u64);
    match task {
        TaskSpec::Ioi(o) => (n(o.n), 64),
        TaskSpec::Induction(o) => (n(o.n), 2 * o.seq_len as u64 + 2),
        TaskSpec::GreaterThan(o) => (n(o.n), 32),
        TaskSpec::Digits(o) | TaskSpec::NumberWords(o) | TaskSpec::Months(o) => {
            (n(o.n), o.len as u64 + 8)
        }
        TaskSpec::Jsonl(o) if o.n > 0 => (n(o.n), 64),
        TaskSpec::Jsonl(_) => (None, 64),
    }
}

/// Refuse a task whose dataset alone would not fit, before it is built. `who` names the file
/// or flag that sets the task.
pub fn check_task(task: &TaskSpec, who: &str) -> Result<()> {
    let (rows, tokens) = task_shape(task);
    let Some(rows) = rows else { return Ok(()) };
    let bytes = rows.saturating_mul(ROW_BYTES.saturating_add(tokens.saturating_mul(8)));
    check(
        &format!("{who}: the {} task with n = {rows}", task.name()),
        bytes,
        "lower n",
    )
}

/// Bytes of one forward pass over `rows` × `seq` tokens in `dtype_bytes`-byte floats: the
/// weights, every component's output kept for patching, one layer's attention patterns and MLP
/// activations, and the logits.
pub fn forward_bytes(cfg: &ModelConfig, rows: usize, seq: usize, dtype_bytes: usize) -> u64 {
    let tokens = (rows as u64).saturating_mul(seq as u64);
    let per_token = (cfg.d_model as u64)
        .saturating_mul((cfg.n_layers as u64).saturating_mul(cfg.n_heads as u64 + 2) + 2)
        .saturating_add(2 * cfg.d_mlp as u64)
        .saturating_add((cfg.n_heads as u64).saturating_mul(seq as u64))
        .saturating_add(cfg.d_vocab as u64);
    let weights = (cfg.n_params() as u64).saturating_mul(dtype_bytes as u64);
    tokens
        .saturating_mul(per_token)
        .saturating_mul(dtype_bytes as u64)
        .saturating_add(weights)
}

/// Refuse a run whose forward pass would not fit.
pub fn check_forward(who: &str, cfg: &ModelConfig, rows: usize, seq: usize) -> Result<()> {
    check(
        &format!("{who}: a forward pass over {rows} rows of {seq} tokens"),
        forward_bytes(cfg, rows, seq, 4),
        "lower n",
    )
}

/// This process's peak resident memory in MiB (Linux `VmHWM`), if known.
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("8X").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("").is_err());
    }

    #[test]
    fn a_billion_rows_is_refused_before_building() {
        let t = TaskSpec::from_ron("Ioi(n: 1000000000)", "h.ron").unwrap();
        let e = check_task(&t, "h.ron").unwrap_err().to_string();
        assert!(
            e.starts_with("h.ron: the ioi task with n = 1000000000"),
            "{e}"
        );
        assert!(e.contains("--max-memory"), "{e}");
        let small = TaskSpec::from_ron("Ioi(n: 200)", "h.ron").unwrap();
        check_task(&small, "h.ron").unwrap();
    }
}
