#!/usr/bin/env python3
"""Reference edge-attribution scores for tests/attribution_parity.rs.

On tests/fixtures/gpt2-tiny in float64, with seeded random clean / corrupted token rows and
[answer, wrong] pairs, the metric being the mean logit difference at the last position:

- EAP from PyPI's auto-circuit 1.0.1 (UFO-101/auto-circuit): `mask_gradient_prune_scores`
  (gradient of the loss −logit diff w.r.t. every edge mask at mask = 0) and
  `edge_attribution_patching_prune_scores` (the EAP paper's formula with TransformerLens
  caches). auto-circuit needs TransformerLens 2.x, so this script runs in its own virtualenv:

      python3 -m venv ~/.venvs/autocircuit
      ~/.venvs/autocircuit/bin/pip install auto-circuit==1.0.1 "transformer-lens>=2,<3" \
          "transformers<5" "numpy<2"
      ~/.venvs/autocircuit/bin/python scripts/attribution_reference.py

  (To avoid downloading torch a second time, the virtualenv may see the torch of
  ~/.venvs/circuitscope through a .pth file naming a folder of symlinks to torch and its
  dependencies; pip then treats torch as installed.)
- EAP-IG (inputs) written directly on TransformerLens from Hanna et al. (2024), eq. 2:
  score(u → v) = (z'_u − z_u) · (1/m) Σ_{k=1..m} ∂L/∂input_v at the embedding
  e' + (k/m)(e − e'), and the same with k = 0..m−1 (the authors' current code).

Conventions written into the fixture (and checked by the test): auto-circuit's scores are the
gradient of the *loss* (−logit diff), i.e. −1 × ours; positions are summed; scores are not
divided by the number of rows (the metric is already a mean over rows). The graph is
auto-circuit's, which is ACDC's graph without the q/k/v edges (circuitscope's
`--no-split-qkv`).

Writes tests/fixtures/attribution/gpt2-tiny.json.
"""

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
FX = ROOT / "tests" / "fixtures" / "gpt2-tiny"
OUT = ROOT / "tests" / "fixtures" / "attribution" / "gpt2-tiny.json"


def load_tl():
    from transformers import GPT2LMHeadModel
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights

    hf = GPT2LMHeadModel.from_pretrained(str(FX), dtype=torch.float64)
    c = json.loads((FX / "config.json").read_text())
    d = c["n_embd"]
    cfg = HookedTransformerConfig(
        n_layers=c["n_layer"],
        d_model=d,
        n_heads=c["n_head"],
        d_head=d // c["n_head"],
        d_mlp=c.get("n_inner") or 4 * d,
        d_vocab=c["vocab_size"],
        n_ctx=c["n_positions"],
        act_fn="gelu_new",
        normalization_type="LN",
        eps=c["layer_norm_epsilon"],
        positional_embedding_type="standard",
        default_prepend_bos=False,
        dtype=torch.float64,
        device="cpu",
    )
    model = HookedTransformer(cfg)
    sd = convert_gpt2_weights(hf, cfg)
    model.load_and_process_state_dict(
        sd,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    model.set_use_attn_result(True)
    model.set_use_split_qkv_input(True)
    model.set_use_hook_mlp_in(True)
    model.eval()
    return model


def rows(gen, n, p, vocab):
    return torch.randint(0, vocab, (n, p), generator=gen)


def node_names(model, src, dest):
    """(sender, receiver) in circuitscope's names for an auto-circuit edge."""
    s = src.module_name
    if s == "blocks.0.hook_resid_pre":
        a = "embed"
    elif s.endswith("attn.hook_result"):
        a = f"a{s.split('.')[1]}.h{src.head_idx}"
    elif s.endswith("hook_mlp_out"):
        a = f"m{s.split('.')[1]}"
    else:
        raise ValueError(s)
    d = dest.module_name
    if d == f"blocks.{model.cfg.n_layers - 1}.hook_resid_post":
        b = "logits"
    elif d.endswith("_input"):
        letter = d.split("hook_")[1][0]
        b = f"a{d.split('.')[1]}.h{dest.head_idx}.{letter}"
    elif d.endswith("hook_mlp_in"):
        b = f"m{d.split('.')[1]}"
    else:
        raise ValueError(d)
    return a, b


def logit_diff(logits, answers, wrong):
    last = logits[:, -1, :]
    idx = torch.arange(last.shape[0])
    return (last[idx, answers] - last[idx, wrong]).mean()


def autocircuit_scores(model, clean, corrupt, answers, wrong):
    from auto_circuit.data import PromptDataLoader, PromptDataset
    from auto_circuit.prune_algos.edge_attribution_patching import (
        edge_attribution_patching_prune_scores,
    )
    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores
    from auto_circuit.utils.graph_utils import patchable_model

    n = clean.shape[0]
    ds = PromptDataset(
        list(clean),
        list(corrupt),
        [answers[i : i + 1] for i in range(n)],
        [wrong[i : i + 1] for i in range(n)],
    )
    loader = PromptDataLoader(ds, seq_len=None, diverge_idx=0, batch_size=n, shuffle=False)
    pm = patchable_model(
        model, factorized=True, slice_output="last_seq", separate_qkv=True, device=torch.device("cpu")
    )

    out = {}
    mg = mask_gradient_prune_scores(
        pm, loader, None, grad_function="logit", answer_function="avg_diff", mask_val=0.0
    )
    out["mask_gradient"] = {}
    for e in pm.edges:
        a, b = node_names(model, e.src, e.dest)
        out["mask_gradient"][f"{a} -> {b}"] = float(e.prune_score(mg))
    pm.zero_grad()
    eap = edge_attribution_patching_prune_scores(pm, loader, None)
    out["edge_attribution_patching"] = {}
    for e in pm.edges:
        a, b = node_names(model, e.src, e.dest)
        v = e.prune_score(eap) if isinstance(eap, dict) and e.dest.module_name in eap else eap[e]
        out["edge_attribution_patching"][f"{a} -> {b}"] = float(v)
    return out, pm


def receiver_hooks(model):
    names = []
    for l in range(model.cfg.n_layers):
        for x in "qkv":
            names.append(f"blocks.{l}.hook_{x}_input")
        names.append(f"blocks.{l}.hook_mlp_in")
    names.append(f"blocks.{model.cfg.n_layers - 1}.hook_resid_post")
    return names


def sender_outputs(model, tokens):
    _, cache = model.run_with_cache(tokens)
    out = {"embed": cache["blocks.0.hook_resid_pre"]}
    for l in range(model.cfg.n_layers):
        for h in range(model.cfg.n_heads):
            out[f"a{l}.h{h}"] = cache[f"blocks.{l}.attn.hook_result"][:, :, h]
        out[f"m{l}"] = cache[f"blocks.{l}.hook_mlp_out"]
    return out


def receiver_grads_at(model, clean, embed_value, answers, wrong):
    """Gradients of the logit diff w.r.t. every receiver input, with resid_pre[0] replaced."""
    grads = {}

    def bwd(g, hook):
        grads[hook.name] = g.detach().clone()

    def fwd(act, hook):
        v = embed_value.clone().requires_grad_(True)
        return v

    hooks = [("blocks.0.hook_resid_pre", fwd)]
    with model.hooks(fwd_hooks=hooks, bwd_hooks=[(n, bwd) for n in receiver_hooks(model)]):
        logits = model(clean)
        m = logit_diff(logits, answers, wrong)
        m.backward()
    return grads


def receiver_grad(grads, model, b):
    last = model.cfg.n_layers - 1
    if b == "logits":
        return grads[f"blocks.{last}.hook_resid_post"]
    if b.startswith("m"):
        return grads[f"blocks.{b[1:]}.hook_mlp_in"]
    layer, head, letter = b[1:].split(".")
    return grads[f"blocks.{layer}.hook_{letter}_input"][:, :, int(head[1:])]


def eap_ig_scores(model, clean, corrupt, answers, wrong, edges, steps, points):
    with torch.no_grad():
        s_clean = sender_outputs(model, clean)
        s_corr = sender_outputs(model, corrupt)
    e, e_corr = s_clean["embed"], s_corr["embed"]
    ks = range(1, steps + 1) if points == "paper" else range(0, steps)
    acc = None
    for k in ks:
        g = receiver_grads_at(model, clean, e_corr + (k / steps) * (e - e_corr), answers, wrong)
        acc = g if acc is None else {n: acc[n] + g[n] for n in acc}
    avg = {n: v / len(ks) for n, v in acc.items()}
    out = {}
    for name in edges:
        a, b = name.split(" -> ")
        diff = s_corr[a] - s_clean[a]
        out[name] = float((diff * receiver_grad(avg, model, b)).sum())
    return out


def main() -> int:
    torch.manual_seed(0)
    model = load_tl()
    gen = torch.Generator().manual_seed(1234)
    n, p = 4, 7
    vocab = model.cfg.d_vocab
    clean = rows(gen, n, p, vocab)
    corrupt = rows(gen, n, p, vocab)
    answers = torch.randint(0, vocab, (n,), generator=gen)
    wrong = torch.randint(0, vocab, (n,), generator=gen)
    with torch.no_grad():
        clean_ld = float(logit_diff(model(clean), answers, wrong))
    ac, _pm = autocircuit_scores(model, clean, corrupt, answers, wrong)
    # auto-circuit wrapped the model in place; a fresh one for the direct implementation.
    model = load_tl()
    edges = sorted(ac["mask_gradient"].keys())
    ig = {
        f"eap_ig_{pts}_{m}": eap_ig_scores(model, clean, corrupt, answers, wrong, edges, m, pts)
        for pts in ("paper", "from_zero")
        for m in (1, 3)
    }
    out = {
        "about": "scripts/attribution_reference.py: auto-circuit 1.0.1 EAP (mask_gradient, "
        "edge_attribution_patching; scores of the loss −logit diff) and EAP-IG written on "
        "TransformerLens (scores of +logit diff), gpt2-tiny, float64",
        "versions": {
            "torch": torch.__version__,
            "transformer_lens": __import__("importlib.metadata").metadata.version("transformer-lens"),
            "auto_circuit": "1.0.1",
        },
        "tokens": clean.tolist(),
        "corrupted": corrupt.tolist(),
        "answers": [[int(a), int(w)] for a, w in zip(answers, wrong)],
        "clean_logit_diff": clean_ld,
        "autocircuit_sign": -1,
        "mask_gradient": ac["mask_gradient"],
        "edge_attribution_patching": ac["edge_attribution_patching"],
        **ig,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} ({len(edges)} edges)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
