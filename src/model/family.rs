//! `config.json` of today's decoder families: Llama, Qwen2 and Gemma-2.
//!
//! Our own typed reading of the keys these families use, rather than `candle-transformers`'
//! config types: those would add a large crate (and its compile time) for a handful of keys,
//! and they do not refuse what we cannot run (a `rope_scaling` kind, Qwen2's
//! `use_sliding_window`, `mlp_bias`), which must be an error naming the key. Both the older
//! key style (`rope_theta`, `rope_scaling`) and transformers 5's (`rope_parameters`,
//! `layer_types`) are read. Defaults for absent keys are those of the Hugging Face config
//! classes.

use super::config::{Activation, Arch, Family, Getter, ModelConfig, NormKind, RopeScaling};
use crate::error::Result;
use serde_json::Value;

/// Parse a Llama, Qwen2 or Gemma-2 `config.json`.
#[allow(clippy::too_many_lines)] // one config.json key per field, with each family's defaults
pub(crate) fn decoder(get: &Getter, family: Family) -> Result<ModelConfig> {
    let gemma = family == Family::Gemma2;
    let d_model = get.usize("hidden_size")?;
    let n_heads = get.usize("num_attention_heads")?;
    let n_kv = get.opt_usize("num_key_value_heads")?.unwrap_or(n_heads);
    if n_kv == 0 || n_heads % n_kv != 0 {
        return Err(get.bad(
            "num_key_value_heads",
            &n_kv.to_string(),
            &format!("a divisor of num_attention_heads ({n_heads})"),
        ));
    }
    let d_head = match get.opt_usize("head_dim")? {
        Some(d) => d,
        None if gemma => 256,
        None => get.head_dim(d_model, n_heads)?,
    };
    let n_layers = get.usize("num_hidden_layers")?;
    let act_key = if gemma && get.v.get("hidden_activation").is_some() {
        "hidden_activation"
    } else {
        "hidden_act"
    };
    let default_act = if gemma { "gelu_pytorch_tanh" } else { "silu" };
    let act = match get.opt_str(act_key)?.as_deref().unwrap_or(default_act) {
        "silu" | "swish" => Activation::Silu,
        "gelu_pytorch_tanh" | "gelu_new" | "gelu_fast" => Activation::GeluNew,
        "gelu" => Activation::Gelu,
        "relu" => Activation::Relu,
        other => {
            return Err(get.unsupported(
                act_key,
                &format!("'{other}'"),
                "use silu, gelu, gelu_pytorch_tanh or relu",
            ))
        }
    };
    if get.opt_bool("mlp_bias")? == Some(true) {
        return Err(get.unsupported("mlp_bias", "true", "MLP biases are not implemented"));
    }
    let attention_bias = get.opt_bool("attention_bias")?.unwrap_or(false);
    if family == Family::Qwen2 && attention_bias {
        return Err(get.unsupported(
            "attention_bias",
            "true",
            "Qwen2's output projection has no bias",
        ));
    }
    let (rope_theta, rope_scaling) = rope(get)?;
    let n_ctx = get.usize("max_position_embeddings")?;
    let mut arch = Arch {
        n_kv_heads: n_kv,
        norm: NormKind::RmsNorm,
        gated_mlp: true,
        rope_scaling,
        tied_embeddings: get.opt_bool("tie_word_embeddings")?.unwrap_or(gemma),
        ..Arch::default()
    };
    sliding(get, family, n_layers, &mut arch)?;
    if gemma {
        arch.embed_scale = true;
        arch.post_norms = true;
        arch.query_pre_attn_scalar = get.opt_f64("query_pre_attn_scalar")?.unwrap_or(256.0);
        arch.attn_softcap = opt_cap(get, "attn_logit_softcapping", 50.0)?;
        arch.final_softcap = opt_cap(get, "final_logit_softcapping", 30.0)?;
    } else {
        for key in ["attn_logit_softcapping", "final_logit_softcapping"] {
            if let Some(v) = get.opt_f64(key)? {
                return Err(get.unsupported(key, &v.to_string(), "only Gemma-2 soft-caps"));
            }
        }
    }
    let eps = get.opt_f64("rms_norm_eps")?.unwrap_or(1e-6);
    Ok(ModelConfig {
        family,
        n_layers,
        d_model,
        n_heads,
        d_head,
        d_mlp: get.usize("intermediate_size")?,
        d_vocab: get.usize("vocab_size")?,
        n_ctx,
        eps,
        act,
        rotary_dim: d_head,
        rotary_base: rope_theta,
        parallel_residual: false,
        scale_attn_by_inverse_layer_idx: false,
        bos_token_id: get.opt_usize("bos_token_id")?.map(|x| x as u32),
        arch,
    })
}

/// A soft-cap value: absent means the family's default, `null` means none.
fn opt_cap(get: &Getter, key: &str, default: f64) -> Result<f64> {
    match get.v.get(key) {
        None => Ok(default),
        Some(Value::Null) => Ok(0.0),
        Some(_) => Ok(get.opt_f64(key)?.unwrap_or(0.0)),
    }
}

/// `rope_theta` and the frequency scaling, from `rope_scaling` / `rope_parameters`.
fn rope(get: &Getter) -> Result<(f64, RopeScaling)> {
    let (key, params) = match (get.v.get("rope_parameters"), get.v.get("rope_scaling")) {
        (Some(p), _) if !p.is_null() => ("rope_parameters", Some(p)),
        (_, Some(p)) if !p.is_null() => ("rope_scaling", Some(p)),
        _ => ("rope_scaling", None),
    };
    let f = |name: &str| params.and_then(|p| p.get(name)).and_then(Value::as_f64);
    let theta = get
        .opt_f64("rope_theta")?
        .or_else(|| f("rope_theta"))
        .unwrap_or(10000.0);
    let Some(p) = params else {
        return Ok((theta, RopeScaling::None));
    };
    let kind = p
        .get("rope_type")
        .or_else(|| p.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    let need = |name: &str| f(name).ok_or_else(|| get.missing(&format!("{key}.{name}")));
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: need("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: need("factor")?,
            low_freq_factor: need("low_freq_factor")?,
            high_freq_factor: need("high_freq_factor")?,
            original_max_position_embeddings: need("original_max_position_embeddings")?,
        },
        other => {
            return Err(get.unsupported(
                &format!("{key}.rope_type"),
                &format!("'{other}'"),
                "supported rotary scalings are default, linear and llama3",
            ))
        }
    };
    if let Some(pf) = f("partial_rotary_factor") {
        if pf != 1.0 {
            return Err(get.unsupported(
                &format!("{key}.partial_rotary_factor"),
                &pf.to_string(),
                "these families rotate the whole head",
            ));
        }
    }
    Ok((theta, scaling))
}

/// Which layers attend within a sliding window: `layer_types` when present, else Gemma-2's
/// even layers; Qwen2's `use_sliding_window` is refused.
fn sliding(get: &Getter, family: Family, n_layers: usize, arch: &mut Arch) -> Result<()> {
    let layers: Vec<bool> = match get.v.get("layer_types") {
        Some(Value::Array(types)) => {
            if types.len() != n_layers {
                return Err(get.bad(
                    "layer_types",
                    &format!("a list of {} entries", types.len()),
                    &format!("one entry per layer ({n_layers})"),
                ));
            }
            let mut v = Vec::with_capacity(n_layers);
            for t in types {
                match t.as_str() {
                    Some("full_attention") => v.push(false),
                    Some("sliding_attention") => v.push(true),
                    _ => {
                        return Err(get.unsupported(
                            "layer_types",
                            &format!("containing {t}"),
                            "layers are 'full_attention' or 'sliding_attention'",
                        ))
                    }
                }
            }
            v
        }
        Some(Value::Null) | None => match family {
            Family::Gemma2 => (0..n_layers).map(|l| l % 2 == 0).collect(),
            _ => vec![false; n_layers],
        },
        Some(other) => return Err(get.bad("layer_types", &other.to_string(), "a list")),
    };
    if family == Family::Qwen2 && get.opt_bool("use_sliding_window")? == Some(true) {
        return Err(get.unsupported(
            "use_sliding_window",
            "true",
            "Qwen2's sliding-window layers are not implemented",
        ));
    }
    if family != Family::Gemma2 && layers.iter().any(|&s| s) {
        return Err(get.unsupported(
            "layer_types",
            "containing sliding_attention",
            "sliding windows are implemented for Gemma-2 only",
        ));
    }
    if layers.iter().any(|&s| s) {
        arch.sliding_window = get.opt_usize("sliding_window")?.unwrap_or(4096);
        if arch.sliding_window == 0 {
            return Err(get.bad("sliding_window", "0", "a positive number of tokens"));
        }
        arch.sliding_layers = layers;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::model::config::*;
    use std::path::Path;

    fn parse(s: &str) -> crate::error::Result<ModelConfig> {
        ModelConfig::from_json(s, Path::new("config.json"))
    }

    const LLAMA3: &str = r#"{"model_type":"llama","hidden_size":64,"num_attention_heads":4,
        "num_key_value_heads":2,"num_hidden_layers":2,"intermediate_size":96,
        "max_position_embeddings":128,"vocab_size":100,"rms_norm_eps":1e-5,"rope_theta":500000.0,
        "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,
        "high_freq_factor":4.0,"original_max_position_embeddings":64},"tie_word_embeddings":false}"#;

    #[test]
    fn llama3_with_gqa_and_rope_scaling() {
        let c = parse(LLAMA3).unwrap();
        assert_eq!((c.n_kv_heads(), c.kv_group_size(), c.d_head), (2, 2, 16));
        assert_eq!((c.kv_head(3), c.kv_leader(3)), (1, 2));
        assert_eq!(c.arch.norm, NormKind::RmsNorm);
        assert!(c.arch.gated_mlp && !c.arch.tied_embeddings);
        assert_eq!(c.rotary_base, 500000.0);
        assert!(matches!(c.arch.rope_scaling, RopeScaling::Llama3 { factor, .. } if factor == 8.0));
    }

    #[test]
    fn gemma2_defaults_and_layer_types() {
        let c = parse(
            r#"{"model_type":"gemma2","hidden_size":64,"num_attention_heads":4,
            "num_key_value_heads":2,"head_dim":32,"num_hidden_layers":3,"intermediate_size":96,
            "max_position_embeddings":128,"vocab_size":100,"sliding_window":4}"#,
        )
        .unwrap();
        assert_eq!(c.arch.sliding_layers, vec![true, false, true]);
        assert_eq!((c.arch.attn_softcap, c.arch.final_softcap), (50.0, 30.0));
        assert_eq!(c.arch.query_pre_attn_scalar, 256.0);
        assert!(c.arch.embed_scale && c.arch.post_norms && c.arch.tied_embeddings);
        let c = parse(
            r#"{"model_type":"gemma2","hidden_size":64,"num_attention_heads":4,
            "head_dim":16,"num_hidden_layers":2,"intermediate_size":96,
            "max_position_embeddings":128,"vocab_size":100,"sliding_window":4,
            "layer_types":["full_attention","sliding_attention"],"final_logit_softcapping":null}"#,
        )
        .unwrap();
        assert_eq!(c.arch.sliding_layers, vec![false, true]);
        assert_eq!(c.arch.final_softcap, 0.0);
    }

    #[test]
    fn unsupported_features_name_the_key() {
        let e = parse(&LLAMA3.replace("llama3", "yarn"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'rope_scaling.rope_type'") && e.contains("yarn"),
            "{e}"
        );
        let e = parse(&LLAMA3.replace("\"tie_word_embeddings\":false", "\"mlp_bias\":true"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'mlp_bias'"), "{e}");
        let q = LLAMA3.replace("\"llama\"", "\"qwen2\"").replace(
            "\"tie_word_embeddings\":false",
            "\"use_sliding_window\":true",
        );
        let e = parse(&q).unwrap_err().to_string();
        assert!(e.contains("'use_sliding_window'"), "{e}");
        let e = parse(&LLAMA3.replace("\"num_key_value_heads\":2", "\"num_key_value_heads\":3"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'num_key_value_heads'"), "{e}");
        let e = parse(r#"{"model_type":"mistral"}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'model_type'") && e.contains("mistral"), "{e}");
    }
}
