#!/usr/bin/env python3
"""Build tiny random Llama, Qwen2 and Gemma-2 models, their tokenizers and reference outputs.

Usage:
    python scripts/make_family_fixtures.py                 # writes tests/fixtures/<name>/
    python scripts/make_family_fixtures.py --only llama-tiny
    python scripts/make_family_fixtures.py --memory-shape DIR   # a 0.5B-parameter Qwen2-shaped
                                                                # bf16 checkpoint (random)

Everything runs offline on the CPU and is deterministic. Per fixture folder:
    config.json, model.safetensors       Hugging Face save_pretrained output (f32)
    tokenizer.json, tokenizer_config.json  trained here with the `tokenizers` package:
                                         byte-level BPE (llama-tiny, qwen2-tiny) or
                                         SentencePiece-style BPE with a metaspace (gemma2-tiny)
    expected.safetensors                 tokens, logits (Hugging Face, eager attention),
                                         tl_logits and every TransformerLens run_with_cache
                                         activation (ungroup_grouped_query_attention,
                                         use_attn_result, use_split_qkv_input, use_hook_mlp_in)
    tokenizer_cases.json                 texts with their token ids (no special tokens) and
                                         the BOS id the family prepends (null: none)

What each fixture exercises:
    llama-tiny   grouped-query attention (4 query heads, 2 key/value heads), SwiGLU, RMSNorm,
                 Llama-3 rope_scaling (all three frequency bands), untied unembedding
    qwen2-tiny   q/k/v biases, multi-query attention (1 key/value head), rope_theta 1e6,
                 tied embeddings, no BOS
    gemma2-tiny  RMSNorm (1 + w), GeGLU, embeddings x sqrt(d), four norms per block, head_dim
                 != d_model / n_heads, query_pre_attn_scalar != head_dim, attention and final
                 soft-capping, alternating sliding-window layers (window 4, sequences of 12)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
BATCH, SEQ = 2, 12

NAMES = ["Mary", "John", "Alice", "Bob", "Tom", "Anna", "James", "Sarah", "David", "Laura"]
PLACES = ["store", "garden", "school", "park", "house"]
OBJECTS = ["drink", "ring", "kiss", "bone", "book"]


def corpus() -> list[str]:
    lines = []
    for i, a in enumerate(NAMES):
        for j, b in enumerate(NAMES):
            if a == b:
                continue
            p = PLACES[(i + j) % len(PLACES)]
            o = OBJECTS[(i * 3 + j) % len(OBJECTS)]
            lines.append(f"Then, {a} and {b} went to the {p}. {b} gave a {o} to {a}")
            lines.append(f"When {a} and {b} got a {o} at the {p}, {a} decided to give it to {b}")
    lines += [" ".join(str(n) for n in range(k, k + 6)) for k in range(0, 90, 3)]
    return lines


def byte_level_tokenizer(specials: list[str], vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    return tok


def sentencepiece_tokenizer(specials: list[str], vocab: int):
    from tokenizers import SentencePieceBPETokenizer

    tok = SentencePieceBPETokenizer(add_prefix_space=True)
    tok.train_from_iterator(corpus(), vocab_size=vocab, special_tokens=specials,
                            show_progress=False)
    return tok._tokenizer


SPECS = {
    "llama-tiny": dict(
        arch="llama", seed=11, vocab=384, bos="<|begin_of_text|>",
        specials=["<|begin_of_text|>", "<|end_of_text|>"], tokenizer="byte",
    ),
    "qwen2-tiny": dict(
        arch="qwen2", seed=12, vocab=384, bos=None,
        specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"], tokenizer="byte",
    ),
    "gemma2-tiny": dict(
        arch="gemma2", seed=13, vocab=384, bos="<bos>",
        specials=["<pad>", "<eos>", "<bos>", "<unk>"], tokenizer="sp",
    ),
}


def hf_config(arch: str, vocab: int, tok, spec: dict, shape: dict | None = None):
    from transformers import Gemma2Config, LlamaConfig, Qwen2Config

    s = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=64)
    if shape:
        s.update(shape)
    ids = {t: tok.token_to_id(t) for t in spec["specials"]}
    if arch == "llama":
        return LlamaConfig(
            vocab_size=vocab, rms_norm_eps=1e-5, hidden_act="silu",
            rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 32},
            tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
            bos_token_id=ids["<|begin_of_text|>"], eos_token_id=ids["<|end_of_text|>"], **s)
    if arch == "qwen2":
        s["num_key_value_heads"] = 1 if not shape else s["num_key_value_heads"]
        return Qwen2Config(
            vocab_size=vocab, rms_norm_eps=1e-6, hidden_act="silu",
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            tie_word_embeddings=True, use_sliding_window=False,
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|endoftext|>"], **s)
    s["num_hidden_layers"] = 3
    return Gemma2Config(
        vocab_size=vocab, rms_norm_eps=1e-6, hidden_activation="gelu_pytorch_tanh",
        head_dim=24, query_pre_attn_scalar=20, sliding_window=4,
        attn_logit_softcapping=2.0, final_logit_softcapping=6.0,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        tie_word_embeddings=True, attention_bias=False,
        pad_token_id=ids["<pad>"], eos_token_id=ids["<eos>"], bos_token_id=ids["<bos>"], **s)


@torch.no_grad()
def randomize_(model, seed: int, gemma: bool) -> None:
    """O(1) weights: RMSNorm scales near 1 (Gemma: the stored w near 0, scale 1 + w), every
    bias non-zero, linear weights ~ N(0, 1/fan_in), embeddings ~ N(0, 0.3^2)."""
    g = torch.Generator().manual_seed(1000 + seed)

    def randn(shape):
        return torch.randn(shape, generator=g, dtype=torch.float32)

    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Embedding):
            mod.weight.copy_(0.3 * randn(mod.weight.shape))
        elif isinstance(mod, torch.nn.Linear):
            if name.endswith("lm_head") and model.config.tie_word_embeddings:
                continue
            mod.weight.copy_(randn(mod.weight.shape) / math.sqrt(mod.weight.shape[1]))
            if mod.bias is not None:
                mod.bias.copy_(0.3 * randn(mod.bias.shape))
        elif "norm" in type(mod).__name__.lower() and getattr(mod, "weight", None) is not None:
            base = 0.0 if gemma else 1.0
            mod.weight.copy_(base + 0.2 * randn(mod.weight.shape))
    if model.config.tie_word_embeddings:
        model.tie_weights()


def build(name: str, spec: dict, out_dir: Path):
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    if spec["tokenizer"] == "byte":
        tok = byte_level_tokenizer(spec["specials"], spec["vocab"])
    else:
        tok = sentencepiece_tokenizer(spec["specials"], spec["vocab"])
    vocab = tok.get_vocab_size()
    assert vocab <= spec["vocab"], vocab
    torch.manual_seed(spec["seed"])
    cfg = hf_config(spec["arch"], spec["vocab"], tok, spec)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager")
    randomize_(model, spec["seed"], spec["arch"] == "gemma2")
    model.eval()
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    (out_dir / "generation_config.json").unlink(missing_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    (out_dir / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": spec["bos"],
        "eos_token": spec["specials"][1] if spec["arch"] != "qwen2" else "<|endoftext|>",
        "add_bos_token": spec["bos"] is not None,
        "model_max_length": 64,
    }, indent=2) + "\n")
    del fast
    return tok


def load_hf(out_dir: Path):
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch.float32,
                                             attn_implementation="eager", local_files_only=True)
    m.eval()
    return m


def load_tl(out_dir: Path, hf, arch: str):
    """HookedTransformer (ungrouped GQA, split q/k/v inputs, head results) from a local folder."""
    import transformer_lens.loading_from_pretrained as lfp
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    flags = dict(use_attn_result=True, use_split_qkv_input=True, use_hook_mlp_in=True,
                 ungroup_grouped_query_attention=True)
    if arch == "gemma2":
        # TransformerLens knows Gemma-2 only by its published names: the same settings as its
        # gemma-2-2b entry, with this model's shape.
        c = hf.config
        cfg = HookedTransformerConfig(
            d_model=c.hidden_size, d_head=c.head_dim, n_heads=c.num_attention_heads,
            d_mlp=c.intermediate_size, n_layers=c.num_hidden_layers,
            n_ctx=c.max_position_embeddings, eps=c.rms_norm_eps, d_vocab=c.vocab_size,
            act_fn="gelu_pytorch_tanh", normalization_type="RMS",
            rotary_base=10000.0, positional_embedding_type="rotary", rotary_dim=c.head_dim,
            use_attn_scale=True, attn_scale=math.sqrt(c.query_pre_attn_scalar),
            n_key_value_heads=c.num_key_value_heads, window_size=c.sliding_window,
            use_local_attn=True,
            attn_types=["local" if t == "sliding_attention" else "global" for t in c.layer_types],
            attn_scores_soft_cap=c.attn_logit_softcapping,
            output_logits_soft_cap=c.final_logit_softcapping, gated_mlp=True, final_rms=True,
            use_normalization_before_and_after=True, original_architecture="Gemma2ForCausalLM",
            device="cpu", dtype=torch.float32, **flags)
        from transformer_lens.pretrained.weight_conversions.gemma import convert_gemma_weights
        sd = convert_gemma_weights(hf, cfg)
    else:
        # Its name-based branches match "llama" in a path: read the config from a neutral one.
        with tempfile.TemporaryDirectory() as tmp:
            neutral = Path(tmp) / "model"
            shutil.copytree(out_dir, neutral)
            cfg = lfp.get_pretrained_model_config(str(neutral), fold_ln=False, device="cpu",
                                                  dtype=torch.float32)
            for k, v in flags.items():
                setattr(cfg, k, v)
            cfg.tokenizer_name = None
            sd = lfp.get_pretrained_state_dict(str(neutral), cfg, hf_model=hf,
                                               dtype=torch.float32)
    model = HookedTransformer(cfg)
    model.load_and_process_state_dict(sd, fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False,
                                      refactor_factored_attn_matrices=False)
    model.eval()
    return model


@torch.no_grad()
def make(name: str, spec: dict) -> dict:
    out_dir = FIXTURES / name
    tok = build(name, spec, out_dir)
    hf = load_hf(out_dir)
    gen = torch.Generator().manual_seed(100 + spec["seed"])
    n_tok = tok.get_vocab_size()
    tokens = torch.randint(len(spec["specials"]), n_tok, (BATCH, SEQ), generator=gen)
    if spec["bos"]:
        tokens[:, 0] = tok.token_to_id(spec["bos"])
    logits = hf(tokens).logits.float()
    tl = load_tl(out_dir, hf, spec["arch"])
    tl_logits, cache = tl.run_with_cache(tokens)
    diff = (tl_logits - logits).abs().max().item()
    print(f"[{name}] max |TL - HF| logits = {diff:.3e}; logits {logits.min():.2f}..{logits.max():.2f}")
    assert diff < 1e-4, f"{name}: TransformerLens and Hugging Face differ by {diff}"
    tensors = {"tokens": tokens.contiguous(), "logits": logits.contiguous(),
               "tl_logits": tl_logits.float().contiguous()}
    for k, v in cache.items():
        tensors[k] = v.detach().float().contiguous().clone()
    save_file(tensors, str(out_dir / "expected.safetensors"))
    texts = ["Then, Mary and John went to the store.", " John gave a drink to Mary",
             "1 2 3 4 5", "When Alice and Bob got a ring at the park"]
    cases = {
        "bos_id": tok.token_to_id(spec["bos"]) if spec["bos"] else None,
        "cases": [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts],
        "single_tokens": [f" {n}" for n in NAMES if len(tok.encode(f" {n}", add_special_tokens=False).ids) == 1],
    }
    (out_dir / "tokenizer_cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    meta = {
        "model": name,
        "hf_architecture": hf.config.architectures[0],
        "max_abs_diff_tl_vs_hf_logits": diff,
        "batch": BATCH, "seq": SEQ,
        "notes": [
            "TransformerLens with ungroup_grouped_query_attention=True: hook_k, hook_v, "
            "hook_rot_k and hook_k_input / hook_v_input are per query head.",
            "gemma2-tiny: TransformerLens's Gemma-2 settings (its gemma-2-2b entry) with this "
            "shape; attn_scale = sqrt(query_pre_attn_scalar).",
        ],
        "tensors": {k: list(v.shape) for k, v in tensors.items()},
    }
    (out_dir / "expected.json").write_text(json.dumps(meta, indent=1) + "\n")
    for f in out_dir.iterdir():
        os.chmod(f, 0o644)
    return {"diff": diff}


def memory_shape(out: Path) -> None:
    """A random bf16 checkpoint with Qwen2.5-0.5B's shape (494M parameters), sharded in two."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                      num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                      max_position_embeddings=32768, rms_norm_eps=1e-6, tie_word_embeddings=True,
                      rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
                      bos_token_id=151643, eos_token_id=151643, dtype="bfloat16")
    torch.manual_seed(0)
    with torch.device("meta"):
        model = Qwen2ForCausalLM(cfg)
    model = model.to_empty(device="cpu").to(torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_((torch.randn(p.shape, generator=g) * 0.02).to(torch.bfloat16))
            if "norm" in n:
                p.fill_(1.0)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True, max_shard_size="600MB")
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {out}: {n / 1e6:.1f}M parameters, bf16, f32 size {4 * n / 2**30:.2f} GiB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", action="append")
    ap.add_argument("--memory-shape", type=Path)
    a = ap.parse_args()
    if a.memory_shape:
        memory_shape(a.memory_shape)
        return 0
    for name, spec in SPECS.items():
        if a.only and name not in a.only:
            continue
        make(name, spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
