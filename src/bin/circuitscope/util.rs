//! Small helpers shared by the subcommands.

use anyhow::Result;
use candle_core::{DType, Tensor};
use circuitscope::report::safetensors::{self, TensorData};
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

/// Write tensors to a safetensors file atomically (temporary file, then rename); floats as
/// f32, token ids as they are.
pub fn save_safetensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    let mut data = Vec::with_capacity(tensors.len());
    for (k, v) in tensors {
        let d = if v.dtype().is_float() {
            TensorData::f32_of(v)?
        } else {
            TensorData::from_tensor(v)?
        };
        data.push((k.clone(), d));
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        anyhow::bail!(
            "{}: the folder {} does not exist",
            path.display(),
            dir.display()
        );
    }
    safetensors::write(path, &data, &Default::default())?;
    Ok(())
}
