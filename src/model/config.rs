//! Model configuration, read from a Hugging Face `config.json`.

use crate::error::{read_to_string, Error, Result};
use serde_json::Value;
use std::path::Path;

/// The model families circuitscope runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Family {
    /// GPT-2 (`model_type: gpt2`): learned positions, Conv1D weights, tied unembedding.
    Gpt2,
    /// GPT-NeoX / Pythia (`model_type: gpt_neox`): rotary positions, untied unembedding.
    NeoX,
    /// Llama (`model_type: llama`): RMSNorm, SwiGLU, rotary (with Llama-3 `rope_scaling`),
    /// grouped-query attention.
    Llama,
    /// Qwen2 (`model_type: qwen2`): Llama plus biases on the q, k and v projections.
    Qwen2,
    /// Gemma-2 (`model_type: gemma2`): RMSNorm with a +1 weight, GeGLU, √d embedding scale,
    /// norms before and after attention and MLP, soft-capping, alternating sliding windows.
    Gemma2,
}

/// The MLP activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Activation {
    /// GPT-2's tanh approximation (`gelu_new`).
    GeluNew,
    /// The exact erf GELU (`gelu`).
    Gelu,
    /// `relu`.
    Relu,
    /// `silu` (x·σ(x)), Llama's and Qwen2's gate activation.
    Silu,
}

/// Which normalisation every receiver (and the final norm) applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Default)]
pub enum NormKind {
    /// LayerNorm: (x − mean) / √(var + ε) · w + b (GPT-2, GPT-NeoX).
    #[default]
    LayerNorm,
    /// RMSNorm: x / √(mean x² + ε) · w, no mean and no bias (Llama, Qwen2, Gemma-2; Gemma's
    /// `1 + w` is folded into `w` when the weights are loaded, as TransformerLens does).
    RmsNorm,
}

/// Rotary frequency scaling (`rope_scaling` / `rope_parameters` in `config.json`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, Default)]
pub enum RopeScaling {
    /// The plain frequencies `base^(−2i/d)`.
    #[default]
    None,
    /// `rope_type: linear`: every frequency divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
    /// `rope_type: llama3`: low frequencies divided by `factor`, high ones kept, a smooth
    /// interpolation between the `low_freq_factor` and `high_freq_factor` wavelengths of
    /// `original_max_position_embeddings`.
    Llama3 {
        /// `factor`.
        factor: f64,
        /// `low_freq_factor`.
        low_freq_factor: f64,
        /// `high_freq_factor`.
        high_freq_factor: f64,
        /// `original_max_position_embeddings`.
        original_max_position_embeddings: f64,
    },
}

/// The per-component options of today's decoder families (Llama, Qwen2, Gemma-2). The default
/// is GPT-2's and GPT-NeoX's: LayerNorm, one key/value head per query head, no gating, no
/// soft-capping, global attention.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Default)]
pub struct Arch {
    /// Key/value heads (`num_key_value_heads`); 0 means one per query head. Query head `h`
    /// reads key/value head `h / (n_heads / n_kv_heads)`.
    pub n_kv_heads: usize,
    /// The norm kind.
    pub norm: NormKind,
    /// Gated MLP: `W_out · (act(W_gate x) ⊙ W_in x)` (SwiGLU with `silu`, GeGLU with `gelu`).
    pub gated_mlp: bool,
    /// Rotary frequency scaling.
    pub rope_scaling: RopeScaling,
    /// Attention scores divide by √ of this instead of √`d_head` (Gemma-2's
    /// `query_pre_attn_scalar`); 0 means `d_head`.
    pub query_pre_attn_scalar: f64,
    /// Attention-logit soft-capping `cap · tanh(s / cap)` before the mask (0: none).
    pub attn_softcap: f64,
    /// Final-logit soft-capping (0: none).
    pub final_softcap: f64,
    /// Keys visible from a query at distance < `sliding_window` in the sliding layers.
    pub sliding_window: usize,
    /// Per layer: whether it is a sliding-window layer (empty: none is).
    pub sliding_layers: Vec<bool>,
    /// Token embeddings are multiplied by √d_model (Gemma).
    pub embed_scale: bool,
    /// Norms after attention and after the MLP, before they are added to the residual
    /// stream (Gemma-2's `post_attention_layernorm` and `post_feedforward_layernorm`).
    pub post_norms: bool,
    /// The unembedding is the token embedding (`tie_word_embeddings`).
    pub tied_embeddings: bool,
}

/// Everything the forward pass needs to know about a model's shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    /// The model family.
    pub family: Family,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub d_model: usize,
    /// Attention heads per layer.
    pub n_heads: usize,
    /// Width of each head.
    pub d_head: usize,
    /// Width of the MLP hidden layer (0: attention-only model).
    pub d_mlp: usize,
    /// Rows of the embedding and columns of the unembedding.
    pub d_vocab: usize,
    /// Longest sequence the model accepts.
    pub n_ctx: usize,
    /// LayerNorm epsilon.
    pub eps: f64,
    /// MLP activation.
    pub act: Activation,
    /// Dimensions of each head that get the rotary embedding (0 for GPT-2).
    pub rotary_dim: usize,
    /// Rotary base.
    pub rotary_base: f64,
    /// Attention and MLP read the same residual stream (GPT-NeoX option).
    pub parallel_residual: bool,
    /// GPT-2's `scale_attn_by_inverse_layer_idx`.
    pub scale_attn_by_inverse_layer_idx: bool,
    /// The beginning-of-sequence token, if the config names one.
    pub bos_token_id: Option<u32>,
    /// Options of the newer families (all default for GPT-2 and GPT-NeoX).
    pub arch: Arch,
}

impl ModelConfig {
    /// Whether the model has MLPs.
    pub fn has_mlp(&self) -> bool {
        self.d_mlp > 0
    }

    /// Key/value heads per layer (`n_heads` without grouped-query attention).
    pub fn n_kv_heads(&self) -> usize {
        if self.arch.n_kv_heads == 0 {
            self.n_heads
        } else {
            self.arch.n_kv_heads
        }
    }

    /// The query heads of `h`'s key/value group (`h` alone without grouping).
    pub fn kv_group(&self, h: usize) -> std::ops::Range<usize> {
        let l = self.kv_leader(h);
        l..l + self.kv_group_size()
    }

    /// Query heads per key/value head.
    pub fn kv_group_size(&self) -> usize {
        self.n_heads / self.n_kv_heads()
    }

    /// The key/value head query head `h` reads.
    pub fn kv_head(&self, h: usize) -> usize {
        h / self.kv_group_size()
    }

    /// Whether several query heads share one key/value head.
    pub fn is_grouped(&self) -> bool {
        self.n_kv_heads() != self.n_heads
    }

    /// The query head that names its key/value group's k and v inputs in ACDC's edge graph:
    /// the group's first head. An edge into a group's k (v) input feeds every query head of the
    /// group (see [`crate::graph::edges`]).
    pub fn kv_leader(&self, h: usize) -> usize {
        self.kv_head(h) * self.kv_group_size()
    }

    /// Whether layer `l` attends only within the sliding window.
    pub fn is_sliding(&self, l: usize) -> bool {
        self.arch.sliding_layers.get(l).copied().unwrap_or(false)
    }

    /// Read `config.json` in a model folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(Error::input(format!(
                "{}: no config.json; a model folder needs config.json, model.safetensors and \
                 tokenizer.json (as written by Hugging Face's save_pretrained)",
                dir.display()
            )));
        }
        let text = read_to_string(&path)?;
        Self::from_json(&text, &path)
    }

    /// Parse a Hugging Face config; `path` is used in error messages.
    pub fn from_json(text: &str, path: &Path) -> Result<Self> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            Error::input(format!(
                "{}:{}:{}: malformed JSON: {e}",
                path.display(),
                e.line(),
                e.column()
            ))
        })?;
        let get = Getter { v: &v, path };
        let model_type = get.str("model_type")?;
        match model_type.as_str() {
            "gpt2" => Self::gpt2(&get),
            "gpt_neox" => Self::neox(&get),
            "llama" => super::family::decoder(&get, Family::Llama),
            "qwen2" => super::family::decoder(&get, Family::Qwen2),
            "gemma2" => super::family::decoder(&get, Family::Gemma2),
            other => Err(Error::input(format!(
                "{}: 'model_type' is '{other}', which circuitscope does not run; supported: \
                 'gpt2' (GPT-2), 'gpt_neox' (GPT-NeoX / Pythia), 'llama' (Llama 1–3), 'qwen2' \
                 (Qwen2 / Qwen2.5) and 'gemma2' (Gemma-2)",
                path.display()
            ))),
        }
    }

    fn gpt2(get: &Getter) -> Result<Self> {
        let d_model = get.usize("n_embd")?;
        let n_heads = get.usize("n_head")?;
        let n_ctx = match get.opt_usize("n_positions")? {
            Some(n) => n,
            None => get.usize("n_ctx")?,
        };
        let d_mlp = get.opt_usize("n_inner")?.unwrap_or(4 * d_model);
        let act = match get
            .opt_str("activation_function")?
            .as_deref()
            .unwrap_or("gelu_new")
        {
            "gelu_new" | "gelu_pytorch_tanh" => Activation::GeluNew,
            "gelu" => Activation::Gelu,
            "relu" => Activation::Relu,
            other => return Err(get.bad("activation_function", other, "gelu_new, gelu or relu")),
        };
        if get.opt_bool("scale_attn_weights")? == Some(false) {
            return Err(get.bad(
                "scale_attn_weights",
                "false",
                "true (unscaled attention is not supported)",
            ));
        }
        Ok(ModelConfig {
            family: Family::Gpt2,
            n_layers: get.usize("n_layer")?,
            d_model,
            n_heads,
            d_head: get.head_dim(d_model, n_heads)?,
            d_mlp,
            d_vocab: get.usize("vocab_size")?,
            n_ctx,
            eps: get.opt_f64("layer_norm_epsilon")?.unwrap_or(1e-5),
            act,
            rotary_dim: 0,
            rotary_base: 10000.0,
            parallel_residual: false,
            scale_attn_by_inverse_layer_idx: get
                .opt_bool("scale_attn_by_inverse_layer_idx")?
                .unwrap_or(false),
            bos_token_id: get.opt_usize("bos_token_id")?.map(|x| x as u32),
            arch: Arch::default(),
        })
    }

    fn neox(get: &Getter) -> Result<Self> {
        let d_model = get.usize("hidden_size")?;
        let n_heads = get.usize("num_attention_heads")?;
        let d_head = get.head_dim(d_model, n_heads)?;
        let rope = get
            .v
            .get("rope_parameters")
            .or_else(|| get.v.get("rope_scaling"));
        let rope_f64 = |key: &str| rope.and_then(|r| r.get(key)).and_then(Value::as_f64);
        let pct = get
            .opt_f64("rotary_pct")?
            .or_else(|| rope_f64("partial_rotary_factor"))
            .or(get.opt_f64("partial_rotary_factor")?)
            .unwrap_or(1.0);
        let base = get
            .opt_f64("rotary_emb_base")?
            .or_else(|| rope_f64("rope_theta"))
            .or(get.opt_f64("rope_theta")?)
            .unwrap_or(10000.0);
        if let Some(kind) = rope
            .and_then(|r| r.get("rope_type"))
            .and_then(Value::as_str)
        {
            if kind != "default" {
                return Err(get.bad("rope_parameters.rope_type", kind, "default"));
            }
        }
        let act = match get.opt_str("hidden_act")?.as_deref().unwrap_or("gelu") {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluNew,
            "relu" => Activation::Relu,
            other => return Err(get.bad("hidden_act", other, "gelu, gelu_new or relu")),
        };
        if get.opt_bool("attention_bias")? == Some(false) {
            return Err(get.bad("attention_bias", "false", "true"));
        }
        Ok(ModelConfig {
            family: Family::NeoX,
            n_layers: get.usize("num_hidden_layers")?,
            d_model,
            n_heads,
            d_head,
            d_mlp: get.usize("intermediate_size")?,
            d_vocab: get.usize("vocab_size")?,
            n_ctx: get.usize("max_position_embeddings")?,
            eps: get.opt_f64("layer_norm_eps")?.unwrap_or(1e-5),
            act,
            rotary_dim: ((d_head as f64) * pct) as usize,
            rotary_base: base,
            parallel_residual: get.opt_bool("use_parallel_residual")?.unwrap_or(true),
            scale_attn_by_inverse_layer_idx: false,
            bos_token_id: get.opt_usize("bos_token_id")?.map(|x| x as u32),
            arch: Arch::default(),
        })
    }

    /// Parameters of the model (for reports).
    pub fn n_params(&self) -> usize {
        let d = self.d_model;
        let (qd, kvd) = (self.n_heads * self.d_head, self.n_kv_heads() * self.d_head);
        let attn = 2 * d * qd + 2 * d * kvd + qd + 2 * kvd + d;
        let gate = if self.arch.gated_mlp {
            d * self.d_mlp
        } else {
            0
        };
        let mlp = 2 * d * self.d_mlp + gate + self.d_mlp + d;
        self.n_layers * (attn + mlp + 4 * d) + self.d_vocab * d
    }
}

/// Reads typed values from a parsed `config.json`, with errors naming the file and the key.
pub(crate) struct Getter<'a> {
    pub(crate) v: &'a Value,
    pub(crate) path: &'a Path,
}

impl Getter<'_> {
    /// The error for a key whose value circuitscope does not support.
    pub(crate) fn unsupported(&self, key: &str, got: &str, why: &str) -> Error {
        Error::input(format!(
            "{}: '{key}' is {got}, which circuitscope does not support: {why}",
            self.path.display()
        ))
    }
    pub(crate) fn missing(&self, key: &str) -> Error {
        Error::input(format!(
            "{}: missing key '{key}'; is this a complete Hugging Face config.json (as written by \
             save_pretrained)?",
            self.path.display()
        ))
    }
    pub(crate) fn bad(&self, key: &str, got: &str, want: &str) -> Error {
        Error::input(format!(
            "{}: '{key}' is {got}; expected {want}",
            self.path.display()
        ))
    }
    pub(crate) fn str(&self, key: &str) -> Result<String> {
        self.opt_str(key)?.ok_or_else(|| self.missing(key))
    }
    pub(crate) fn opt_str(&self, key: &str) -> Result<Option<String>> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(self.bad(key, &other.to_string(), "a string")),
        }
    }
    pub(crate) fn usize(&self, key: &str) -> Result<usize> {
        self.opt_usize(key)?.ok_or_else(|| self.missing(key))
    }
    pub(crate) fn opt_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| self.bad(key, &x.to_string(), "a non-negative integer")),
        }
    }
    pub(crate) fn opt_f64(&self, key: &str) -> Result<Option<f64>> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(key, &x.to_string(), "a number")),
        }
    }
    pub(crate) fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(x) => x
                .as_bool()
                .map(Some)
                .ok_or_else(|| self.bad(key, &x.to_string(), "true or false")),
        }
    }
    pub(crate) fn head_dim(&self, d_model: usize, n_heads: usize) -> Result<usize> {
        if n_heads == 0 || !d_model.is_multiple_of(n_heads) {
            return Err(Error::input(format!(
                "{}: the model width {d_model} is not divisible by the number of heads {n_heads}",
                self.path.display()
            )));
        }
        Ok(d_model / n_heads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ModelConfig> {
        ModelConfig::from_json(s, Path::new("config.json"))
    }

    #[test]
    fn gpt2_small() {
        let c = parse(r#"{"model_type":"gpt2","n_embd":768,"n_head":12,"n_layer":12,"n_positions":1024,"vocab_size":50257}"#).unwrap();
        assert_eq!((c.d_head, c.d_mlp, c.n_ctx), (64, 3072, 1024));
        assert_eq!(c.act, Activation::GeluNew);
    }

    #[test]
    fn neox_old_and_new_rope_keys() {
        let old = parse(r#"{"model_type":"gpt_neox","hidden_size":64,"num_attention_heads":4,"num_hidden_layers":2,"intermediate_size":256,"max_position_embeddings":128,"vocab_size":100,"rotary_pct":0.25,"rotary_emb_base":10000}"#).unwrap();
        assert_eq!(old.rotary_dim, 4);
        let new = parse(r#"{"model_type":"gpt_neox","hidden_size":64,"num_attention_heads":4,"num_hidden_layers":2,"intermediate_size":256,"max_position_embeddings":128,"vocab_size":100,"rope_parameters":{"partial_rotary_factor":0.5,"rope_theta":5000.0,"rope_type":"default"},"use_parallel_residual":false}"#).unwrap();
        assert_eq!(
            (new.rotary_dim, new.rotary_base, new.parallel_residual),
            (8, 5000.0, false)
        );
    }

    #[test]
    fn errors_name_file_and_key() {
        let e = parse(r#"{"model_type":"mamba"}"#).unwrap_err().to_string();
        assert!(e.contains("config.json") && e.contains("mamba"), "{e}");
        let e = parse(r#"{"model_type":"gpt2","n_embd":768}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'n_head'"), "{e}");
        let e = parse("{").unwrap_err().to_string();
        assert!(e.contains("config.json:1:"), "{e}");
    }
}
