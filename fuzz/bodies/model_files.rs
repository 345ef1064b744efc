//! Model folders: `config.json`, then a NUL byte, then a safetensors file (header and data).
//! Either the weights load into the model the config describes (shapes and finite values
//! checked) or they are refused. Without a NUL byte, the input is config.json alone.

use candle_core::{DType, Device};
use circuitscope::model::weights::{TensorSource, Weights};
use circuitscope::model::ModelConfig;
use std::path::Path;

/// Run one input; true when the config loaded (and, given weights, they loaded too).
pub fn run(data: &[u8]) -> bool {
    let (cfg_bytes, st) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(cfg_bytes) else {
        return false;
    };
    let Ok(cfg) = ModelConfig::from_json(text, Path::new("config.json")) else {
        return false;
    };
    let Some(st) = st else { return true };
    // Refuse configs whose weights could not fit before anything is allocated.
    if circuitscope::memory::check_forward("config.json", &cfg, 1, 1).is_err() {
        return false;
    }
    let Ok(tensors) = candle_core::safetensors::load_buffer(st, &Device::Cpu) else {
        return false;
    };
    let src = TensorSource::from_map(tensors, "model.safetensors");
    Weights::from_source(&src, &cfg, DType::F32).is_ok()
}
