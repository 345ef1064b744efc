//! Peak memory of loading and running a 0.5B-parameter model: Qwen2.5-0.5B's shape (494M
//! parameters, 24 layers, d_model 896, 14 query heads in 2 key/value groups, vocabulary
//! 151,936, tied embeddings) with random bf16 weights in two shards, loaded in f32 and run at
//! batch 1 × 64 tokens. Goal: peak resident memory ≤ 1.3 × the weights' f32 size.
//!
//! Run: `cargo bench --bench memory` (writes the random checkpoint, about 1 GB, to
//! `target/memory-bench/qwen2-0.5b` on first use, in a separate process so that writing it does
//! not count; `MEMORY_BENCH_DIR` picks another folder).

use candle_core::DType;
use circuitscope::eval::{self, LogitsAt, Patches, RunOptions};
use circuitscope::model::Model;
use safetensors::tensor::{Dtype, TensorView};
use std::path::{Path, PathBuf};
use std::process::Command;

#[global_allocator]
static GLOBAL: circuitscope::allocator::Allocator = circuitscope::allocator::Allocator;

const CONFIG: &str = r#"{
  "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 151936,
  "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
  "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 32768,
  "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
  "use_sliding_window": false, "hidden_act": "silu", "bos_token_id": 151643,
  "eos_token_id": 151643, "torch_dtype": "bfloat16"
}"#;

/// `(name, shape)` of every tensor of the checkpoint, in two shards.
fn tensors() -> [Vec<(String, Vec<usize>)>; 2] {
    let (d, m, kv) = (896, 4864, 128);
    let mut shards: [Vec<(String, Vec<usize>)>; 2] = [vec![], vec![]];
    shards[0].push(("model.embed_tokens.weight".into(), vec![151936, d]));
    for l in 0..24 {
        let s = &mut shards[usize::from(l >= 12)];
        let p = |x: &str| format!("model.layers.{l}.{x}");
        for (n, shape) in [
            ("input_layernorm.weight", vec![d]),
            ("post_attention_layernorm.weight", vec![d]),
            ("self_attn.q_proj.weight", vec![d, d]),
            ("self_attn.q_proj.bias", vec![d]),
            ("self_attn.k_proj.weight", vec![kv, d]),
            ("self_attn.k_proj.bias", vec![kv]),
            ("self_attn.v_proj.weight", vec![kv, d]),
            ("self_attn.v_proj.bias", vec![kv]),
            ("self_attn.o_proj.weight", vec![d, d]),
            ("mlp.gate_proj.weight", vec![m, d]),
            ("mlp.up_proj.weight", vec![m, d]),
            ("mlp.down_proj.weight", vec![d, m]),
        ] {
            s.push((p(n), shape));
        }
    }
    shards[1].push(("model.norm.weight".into(), vec![d]));
    shards
}

/// Write the random checkpoint (bf16 values of a seeded xorshift, norms 1).
fn write_checkpoint(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut index = serde_json::Map::new();
    for (i, shard) in tensors().iter().enumerate() {
        let file = format!("model-{:05}-of-00002.safetensors", i + 1);
        let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = vec![];
        for (name, shape) in shard {
            let n: usize = shape.iter().product();
            let mut bytes = Vec::with_capacity(2 * n);
            for _ in 0..n {
                let v = if name.contains("norm") {
                    1.0f32
                } else {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04
                };
                bytes.extend_from_slice(&((v.to_bits() >> 16) as u16).to_le_bytes());
            }
            index.insert(name.clone(), serde_json::Value::String(file.clone()));
            bufs.push((name.clone(), shape.clone(), bytes));
        }
        let views: Vec<(String, TensorView)> = bufs
            .iter()
            .map(|(n, s, b)| {
                (
                    n.clone(),
                    TensorView::new(Dtype::BF16, s.clone(), b).unwrap(),
                )
            })
            .collect();
        safetensors::serialize_to_file(views, None, &dir.join(&file)).unwrap();
    }
    let idx = serde_json::json!({ "metadata": {}, "weight_map": index });
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&idx).unwrap(),
    )
    .unwrap();
    std::fs::write(dir.join("config.json"), CONFIG).unwrap();
}

/// `VmHWM` / `VmRSS` of this process in bytes.
fn status(key: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn gib(b: u64) -> f64 {
    b as f64 / (1u64 << 30) as f64
}

fn main() {
    let dir = std::env::var("MEMORY_BENCH_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/memory-bench/qwen2-0.5b"),
        PathBuf::from,
    );
    if std::env::var("MEMORY_BENCH_WRITE").is_ok() {
        write_checkpoint(&dir);
        return;
    }
    if !dir.join("config.json").is_file() {
        eprintln!("writing the random checkpoint to {} …", dir.display());
        let ok = Command::new(std::env::current_exe().unwrap())
            .env("MEMORY_BENCH_WRITE", "1")
            .env("MEMORY_BENCH_DIR", &dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "writing the checkpoint failed");
    }
    let before = status("VmRSS:");
    let t0 = std::time::Instant::now();
    let model = Model::load(&dir, DType::F32).unwrap();
    let load_s = t0.elapsed().as_secs_f64();
    let after_load = status("VmRSS:");
    let n_params = model.cfg.n_params();
    let f32_bytes = 4 * n_params as u64;
    let tokens: Vec<u32> = (0..64).map(|i| (i * 2371 + 17) % 151936).collect();
    let tokens = model.tokens_tensor(&[tokens]).unwrap();
    let t1 = std::time::Instant::now();
    let run = eval::run(
        &model,
        &tokens,
        &Patches::new(),
        RunOptions {
            logits: LogitsAt::All,
            ..Default::default()
        },
    )
    .unwrap();
    let fwd_s = t1.elapsed().as_secs_f64();
    assert!(run.logits.is_some());
    let peak = status("VmHWM:");
    println!("model            Qwen2.5-0.5B shape, bf16 on disk (2 shards), f32 in memory");
    println!(
        "parameters       {:.1} M  (f32 size {:.3} GiB)",
        n_params as f64 / 1e6,
        gib(f32_bytes)
    );
    println!("rss before load  {:.3} GiB", gib(before));
    println!(
        "rss after load   {:.3} GiB  ({load_s:.1} s)",
        gib(after_load)
    );
    println!("forward 1 × 64   {fwd_s:.2} s, all-position logits");
    println!(
        "peak rss         {:.3} GiB = {:.2} × the f32 weights (goal ≤ 1.30)",
        gib(peak),
        peak as f64 / f32_bytes as f64
    );
}
