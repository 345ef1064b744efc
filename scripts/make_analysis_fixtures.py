#!/usr/bin/env python3
"""Reference numbers for circuitscope's exploration tools, computed with TransformerLens 3.9
on the gpt2-tiny fixture in float64, written to tests/fixtures/gpt2-tiny/analysis.json.

Usage:
    /work/pyenv/bin/python scripts/make_analysis_fixtures.py

Needs the fixture made by scripts/make_fixtures.py (model + patching.safetensors, whose clean
and corrupted tokens and answers are reused). Offline, CPU, deterministic. Computes:

- copying scores as in ARENA's IOI replication (`get_copying_scores`): for token ids 2..41 as
  the "names", resid = W_E[name] + MLP0(LN2(W_E[name])), through ±W_V W_O, ln_final, unembed;
  the fraction of names whose own token is in the top 5;
- value-weighted attention patterns (REMIX): pattern[q, k] * ||v_k|| for chosen heads and rows;
- mean ablation (ARENA's minimal circuit): hook_z replaced by per-group means over the
  corrupted tokens, except chosen heads at chosen positions (per row), metric = mean logit
  difference at the last position; plus M minus K (K's heads ablated everywhere) and C minus K;
- ARENA's path patching (senders' z corrupted, other heads frozen, MLPs recomputed) to the
  logits and to receivers' q / v.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_fixtures as mf  # noqa: E402

from safetensors.torch import load_file  # noqa: E402

OUT = mf.FIXTURES / "gpt2-tiny" / "analysis.json"


def main() -> int:
    d = mf.FIXTURES / "gpt2-tiny"
    hf = mf.load_hf(d)
    tl = mf.load_tl(d, hf).to(torch.float64, print_details=False)
    tl.eval()
    t = load_file(str(d / "patching.safetensors"))
    clean, corrupted, answers = t["clean_tokens"], t["corrupted_tokens"], t["answers"]
    batch = clean.shape[0]
    rows = torch.arange(batch)

    def metric(logits):
        last = logits[:, -1, :]
        return (last[rows, answers[:, 0]] - last[rows, answers[:, 1]]).mean().item()

    out: dict = {"notes": __doc__}

    # copying scores (ARENA get_copying_scores, k = 5)
    k = 5
    names = list(range(2, 42))
    with torch.no_grad():
        name_tokens = torch.tensor(names).unsqueeze(1)  # [N, 1]
        emb = tl.embed(name_tokens)  # [N, 1, D]
        resid = emb + tl.blocks[0].mlp(tl.blocks[0].ln2(emb))
        res = torch.zeros(2, tl.cfg.n_layers, tl.cfg.n_heads, dtype=torch.float64)
        for layer in range(tl.cfg.n_layers):
            for head in range(tl.cfg.n_heads):
                ov = tl.W_V[layer, head] @ tl.W_O[layer, head]
                for s, sign in enumerate([1.0, -1.0]):
                    logits = tl.unembed(tl.ln_final(resid @ (sign * ov))).squeeze(1)
                    top = torch.topk(logits, dim=-1, k=k).indices
                    res[s, layer, head] = (top == name_tokens).any(-1).double().mean()
    out["copying"] = {"names": names, "k": k, "scores": res.tolist()}

    # value-weighted attention
    heads = [(0, 1), (2, 3)]
    sel = [0, 2]
    with torch.no_grad():
        _, cache = tl.run_with_cache(clean)
    vw = []
    plain = []
    for r in sel:
        vr, pr = [], []
        for (layer, head) in heads:
            pat = cache[f"blocks.{layer}.attn.hook_pattern"][r, head]  # [q, k]
            v = cache[f"blocks.{layer}.attn.hook_v"][r, :, head]  # [k, dh]
            vr.append((pat * v.norm(dim=-1)[None, :]).tolist())
            pr.append(pat.tolist())
        vw.append(vr)
        plain.append(pr)
    out["attention"] = {"heads": heads, "rows": sel, "value_weighted": vw, "pattern": plain}

    # mean ablation with two groups of rows
    groups = ["t0", "t0", "t1", "t1"]
    circuit = {(1, 2): [7], (2, 0): [7, 6], (0, 1): [3]}
    seq = clean.shape[1]
    with torch.no_grad():
        _, mcache = tl.run_with_cache(corrupted)
    means = {}
    for layer in range(tl.cfg.n_layers):
        z = mcache[f"blocks.{layer}.attn.hook_z"]
        m = torch.zeros_like(z)
        for g in sorted(set(groups)):
            idx = [i for i, x in enumerate(groups) if x == g]
            m[idx] = z[idx].mean(0)
        means[layer] = m

    def run_keep(keep):  # keep[layer]: bool [batch, seq, heads]
        def hook(z, hook):
            layer = hook.layer()
            return torch.where(keep[layer].unsqueeze(-1), z, means[layer])

        with torch.no_grad():
            logits = tl.run_with_hooks(
                clean, fwd_hooks=[(lambda n: n.endswith("hook_z"), hook)]
            )
        return metric(logits)

    def circuit_keep(c):
        keep = {}
        for layer in range(tl.cfg.n_layers):
            m = torch.zeros(batch, seq, tl.cfg.n_heads, dtype=torch.bool)
            for (l, h), pos in c.items():
                if l == layer:
                    for p in pos:
                        m[:, p, h] = True
            keep[layer] = m
        return keep

    def model_minus(kset):
        keep = {}
        for layer in range(tl.cfg.n_layers):
            m = torch.ones(batch, seq, tl.cfg.n_heads, dtype=torch.bool)
            for (l, h) in kset:
                if l == layer:
                    m[:, :, h] = False
            keep[layer] = m
        return keep

    kset = [(1, 2)]
    c_minus_k = {hh: p for hh, p in circuit.items() if hh not in kset}
    out["ablation"] = {
        "groups": groups,
        "circuit": [[l, h, p] for (l, h), p in sorted(circuit.items())],
        "k": kset,
        "model": metric(tl(clean)),
        "circuit_metric": run_keep(circuit_keep(circuit)),
        "nothing": run_keep(circuit_keep({})),
        "circuit_minus_k": run_keep(circuit_keep(c_minus_k)),
        "model_minus_k": run_keep(model_minus(kset)),
    }
    # ARENA's path patching (get_path_patch_head_to_final_resid_post / _head_to_heads): the
    # sender's z from the corrupted run, every other head's z frozen to the clean run, MLPs
    # recomputed; for heads, the receivers' q (or v) from that run patched into the clean run
    # at every position.
    with torch.no_grad():
        _, clean_cache = tl.run_with_cache(clean)
        _, corr_cache = tl.run_with_cache(corrupted)

    def freeze_hook(sender):
        def hook(z, hook):
            layer = hook.layer()
            out = clean_cache[hook.name].clone()
            if sender[0] == layer:
                out[:, :, sender[1]] = corr_cache[hook.name][:, :, sender[1]]
            return out

        return hook

    def arena(sender, receivers, letter):
        hooks = [(lambda n: n.endswith("hook_z"), freeze_hook(sender))]
        if not receivers:
            with torch.no_grad():
                return metric(tl.run_with_hooks(clean, fwd_hooks=hooks))
        names = sorted({f"blocks.{l}.attn.hook_{letter}" for (l, _) in receivers})
        with torch.no_grad():
            with tl.hooks(fwd_hooks=hooks):
                _, pc = tl.run_with_cache(clean, names_filter=lambda n: n in names)

        def patch(act, hook):
            for (l, h) in receivers:
                if hook.layer() == l:
                    act[:, :, h] = pc[hook.name][:, :, h]
            return act

        with torch.no_grad():
            logits = tl.run_with_hooks(clean, fwd_hooks=[(lambda n: n in names, patch)])
        return metric(logits)

    nl, nh = tl.cfg.n_layers, tl.cfg.n_heads
    out["path_through_mlps"] = {
        "to_logits": [[arena((l, h), [], "q") for h in range(nh)] for l in range(nl)],
        "to_q": {
            "receivers": [[2, 3], [2, 0]],
            "values": [[arena((l, h), [(2, 3), (2, 0)], "q") for h in range(nh)] for l in range(2)],
        },
        "to_v": {
            "receivers": [[1, 1]],
            "values": [[arena((0, h), [(1, 1)], "v") for h in range(nh)]],
        },
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")
    for key in ["model", "circuit_metric", "nothing", "circuit_minus_k", "model_minus_k"]:
        print(f"  {key}: {out['ablation'][key]:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
