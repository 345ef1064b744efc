//! Small helpers shared by the subcommands.

use anyhow::Result;
use candle_core::{DType, Tensor};
use std::collections::HashMap;
use std::path::Path;

/// Print `error: …` and exit with code 2 on failure.
pub fn exit_on_error(res: Result<()>) {
    if let Err(e) = res {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}

/// Log to stderr, filtered by `RUST_LOG` (default: warnings).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}

/// Parse `--dtype`.
pub fn parse_dtype(s: &str) -> Result<DType> {
    match s {
        "f32" => Ok(DType::F32),
        "f64" => Ok(DType::F64),
        other => anyhow::bail!("--dtype {other}: expected f32 or f64"),
    }
}

/// Write tensors to a safetensors file atomically (temporary file, then rename), as f32.
pub fn save_safetensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let mut f32s = HashMap::new();
    for (k, v) in tensors {
        let v = if v.dtype() == DType::F32 || !v.dtype().is_float() {
            v.contiguous()?
        } else {
            v.to_dtype(DType::F32)?.contiguous()?
        };
        f32s.insert(k.clone(), v);
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    circuitscope::error::check_output_file(path, "output")?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let res = candle_core::safetensors::save(&f32s, &tmp)
        .map_err(anyhow::Error::from)
        .and_then(|_| std::fs::rename(&tmp, path).map_err(anyhow::Error::from));
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        anyhow::bail!("{}: cannot write: {e}", path.display());
    }
    Ok(())
}
