//! Model folders: `config.json`, then a NUL byte, then a safetensors file (header and data).
//! Either the weights load into the model the config describes (shapes and finite values
//! checked) or they are refused. Without a NUL byte, the input is config.json alone.
#![no_main]
use candle_core::{DType, Device};
use circuitscope::model::weights::{TensorSource, Weights};
use circuitscope::model::ModelConfig;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let (cfg_bytes, st) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(cfg_bytes) else {
        return;
    };
    let Ok(cfg) = ModelConfig::from_json(text, Path::new("config.json")) else {
        return;
    };
    let Some(st) = st else { return };
    // Refuse configs whose weights could not fit before anything is allocated.
    if circuitscope::memory::check_forward("config.json", &cfg, 1, 1).is_err() {
        return;
    }
    let Ok(tensors) = candle_core::safetensors::load_buffer(st, &Device::Cpu) else {
        return;
    };
    let src = TensorSource::from_map(tensors, "model.safetensors");
    let _ = Weights::from_source(&src, &cfg, DType::F32);
});
