#!/usr/bin/env python3
"""Run the reference ACDC (ArthurConmy/Automatic-Circuit-Discovery) on a tiny fixture model and
save what it decides, for tests/acdc_reference.rs to compare circuitscope's sweep against.

The reference is imported from a checkout given with --reference (the folder holding its `acdc`
package); nothing of it is copied here. Its plotting modules (pygraphviz, plotly) are replaced
by empty stand-ins, and its per-node picture is switched off.

    git clone https://github.com/ArthurConmy/Automatic-Circuit-Discovery /tmp/acdc-ref
    /work/pyenv/bin/python scripts/acdc_reference.py --reference /tmp/acdc-ref \
        --out tests/fixtures/acdc/reference-gpt2-tiny.json

Runs in float64 so that the comparison is not at the mercy of float32 rounding near tau.

Benchmark mode (used by benches/acdc.rs): `--bench SPEC.json --out RESULT.json` runs one
reference sweep on the model folder, tokens and ablation tokens the spec names (float64, one
thread, KL divergence at the last position), optionally only until `max_tested` edges are
tested (whole nodes), and writes the sweep's wall time (set-up excluded) and the kept edges.
"""
import argparse
import json
import sys
import types
from functools import partial
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_fixtures import load_hf, load_tl  # noqa: E402


def stub_modules() -> None:
    # TransformerLens 3.x moved HookedTransformerConfig; the reference imports the old path.
    if "transformer_lens.HookedTransformerConfig" not in sys.modules:
        import transformer_lens

        alias = types.ModuleType("transformer_lens.HookedTransformerConfig")
        alias.HookedTransformerConfig = transformer_lens.HookedTransformerConfig
        sys.modules["transformer_lens.HookedTransformerConfig"] = alias
    for name in ["pygraphviz", "plotly", "plotly.graph_objects"]:
        if name not in sys.modules:
            try:
                __import__(name)
            except ImportError:
                m = types.ModuleType(name)
                m.AGraph = object  # only used in type annotations of the plotting code
                sys.modules[name] = m


def our_name(child, cidx, parent, pidx, n_layers):
    """The reference's (child, index, parent, index) as circuitscope's edge name."""

    def head(idx):
        return idx.hashable_tuple[2]

    def layer(name):
        return int(name.split(".")[1])

    def receiver(name, idx):
        if name == f"blocks.{n_layers - 1}.hook_resid_post":
            return "logits"
        if name.endswith("hook_mlp_in"):
            return f"m{layer(name)}"
        for x in "qkv":
            if name.endswith(f"hook_{x}_input"):
                return f"a{layer(name)}.h{head(idx)}.{x}"
        raise ValueError(name)

    def sender(name, idx):
        if name == "blocks.0.hook_resid_pre":
            return "embed"
        if name.endswith("hook_mlp_out"):
            return f"m{layer(name)}"
        if name.endswith("attn.hook_result"):
            return f"a{layer(name)}.h{head(idx)}"
        raise ValueError(name)

    for x in "qkv":
        if child.endswith(f"attn.hook_{x}") and parent.endswith(f"hook_{x}_input"):
            l, h = layer(child), head(cidx)
            return f"a{l}.h{h}.{x} -> a{l}.h{h}"
    return f"{sender(parent, pidx)} -> {receiver(child, cidx)}"


def run_reference(model, clean, corrupted, tau, zero, order):
    from acdc import TLACDCExperiment as texp
    from acdc.acdc_utils import kl_divergence

    texp.show = lambda *a, **k: None  # no per-node pictures
    with torch.no_grad():
        base = torch.log_softmax(model(clean)[:, -1, :], dim=-1)
    metric = partial(kl_divergence, base_model_logprobs=base, last_seq_element_only=True)
    exp = texp.TLACDCExperiment(
        model=model,
        threshold=tau,
        ds=clean,
        ref_ds=None if zero else corrupted,
        metric=metric,
        zero_ablation=zero,
        indices_mode=order,
        names_mode=order,
        verbose=False,
        online_cache_cpu=True,
        corrupted_cache_cpu=True,
        add_sender_hooks=True,
        add_receiver_hooks=False,
        remove_redundant=False,
    )
    for _ in range(100_000):
        exp.step(testing=False)
        if exp.current_node is None:
            break
    return exp


def bench(spec_path: Path, out_path: Path, reference: Path) -> int:
    """Time one reference sweep described by a JSON spec (see the module docstring)."""
    import time

    spec = json.loads(spec_path.read_text())
    sys.path.insert(0, str(reference))
    stub_modules()
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    from acdc import TLACDCExperiment as texp
    from acdc.acdc_utils import kl_divergence
    from acdc.TLACDCEdge import EdgeType

    model_dir = Path(spec["model"])
    hf = load_hf(model_dir, dtype=torch.float64)
    n_inner = getattr(hf.config, "n_inner", None)
    if n_inner is not None and n_inner != 4 * hf.config.n_embd:
        # TransformerLens 3.9 reads GPT-2's MLP width as 4 · d_model; take n_inner instead.
        import transformer_lens.loading_from_pretrained as lfp

        orig = lfp.get_pretrained_model_config

        def with_n_inner(*a, **k):
            cfg = orig(*a, **k)
            cfg.d_mlp = n_inner
            return cfg

        lfp.get_pretrained_model_config = with_n_inner
    model = load_tl(model_dir, hf, dtype=torch.float64)
    clean = torch.tensor(spec["tokens"], dtype=torch.int64)
    ref = torch.tensor(spec["ref_tokens"], dtype=torch.int64)
    texp.show = lambda *a, **k: None
    with torch.no_grad():
        base = torch.log_softmax(model(clean)[:, -1, :], dim=-1)
    metric = partial(kl_divergence, base_model_logprobs=base, last_seq_element_only=True)
    exp = texp.TLACDCExperiment(
        model=model,
        threshold=spec["tau"],
        ds=clean,
        ref_ds=ref,
        metric=metric,
        zero_ablation=False,
        indices_mode="normal",
        names_mode="normal",
        verbose=False,
        online_cache_cpu=True,
        corrupted_cache_cpu=True,
        add_sender_hooks=True,
        add_receiver_hooks=False,
        remove_redundant=False,
    )
    max_tested = spec.get("max_tested")

    def count_tested():
        return sum(
            1
            for e in exp.corr.all_edges().values()
            if e.edge_type != EdgeType.PLACEHOLDER and e.effect_size is not None
        )

    seconds, done = 0.0, 0
    for _ in range(100_000):
        t0 = time.perf_counter()
        exp.step(testing=False)
        seconds += time.perf_counter() - t0
        done += 1
        if exp.current_node is None:
            break
        if max_tested is not None and count_tested() >= max_tested:
            break
    kept, tested = [], 0
    for (child, cidx, parent, pidx), edge in exp.corr.all_edges().items():
        if edge.edge_type == EdgeType.PLACEHOLDER:
            continue
        if edge.effect_size is not None:
            tested += 1
        if edge.present:
            kept.append(our_name(child, cidx, parent, pidx, model.cfg.n_layers))
    out = {"seconds": seconds, "steps": done, "tested": tested, "kept": sorted(kept)}
    out_path.write_text(json.dumps(out) + "\n")
    print(f"reference: {done} steps, {tested} edges tested in {seconds:.2f} s")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True, type=Path)
    ap.add_argument("--bench", type=Path, help="benchmark mode: a JSON spec (see above)")
    ap.add_argument("--model", default=str(HERE.parent / "tests/fixtures/gpt2-tiny"))
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--seq", type=int, default=9)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--runs",
        default="0.005:corrupted,0.02:corrupted,0.05:zero,0.01:corrupted:reverse",
        help="TAU:ABLATION[:ORDER],... (ablation corrupted or zero; order normal or reverse, "
        "for both names_mode and indices_mode)",
    )
    args = ap.parse_args()
    if args.bench is not None:
        return bench(args.bench, args.out, args.reference)
    sys.path.insert(0, str(args.reference))
    stub_modules()
    torch.set_grad_enabled(False)

    hf = load_hf(Path(args.model), dtype=torch.float64)
    model = load_tl(Path(args.model), hf, dtype=torch.float64)
    gen = torch.Generator().manual_seed(args.seed)
    vocab = model.cfg.d_vocab
    clean = torch.randint(2, vocab, (args.n, args.seq), generator=gen)
    clean[:, 0] = 0
    corrupted = torch.randint(2, vocab, (args.n, args.seq), generator=gen)
    corrupted[:, 0] = 0

    from acdc.TLACDCEdge import EdgeType
    from acdc.TLACDCCorrespondence import TLACDCCorrespondence

    runs = []
    todo = []
    for part in args.runs.split(","):
        t, a, *o = part.split(":")
        todo.append((float(t), a == "zero", o[0] if o else "normal"))
    for tau, zero, order in todo:
        # A fresh model per run: hooks left by one experiment must not leak into the next.
        model = load_tl(Path(args.model), hf, dtype=torch.float64)
        # The edge objects of a fresh correspondence keep their effect sizes after removal.
        seen = {}
        orig_setup = TLACDCCorrespondence.setup_from_model

        def setup(model_, use_pos_embed=False):
            corr = orig_setup(model_, use_pos_embed=use_pos_embed)
            for key, edge in corr.all_edges().items():
                seen[key] = edge
            return corr

        TLACDCCorrespondence.setup_from_model = staticmethod(setup)
        try:
            exp = run_reference(model, clean, corrupted, tau, zero, order)
        finally:
            TLACDCCorrespondence.setup_from_model = orig_setup
        kept, effects, total = [], {}, 0
        for (child, cidx, parent, pidx), edge in seen.items():
            if edge.edge_type == EdgeType.PLACEHOLDER:
                continue
            total += 1
            name = our_name(child, cidx, parent, pidx, model.cfg.n_layers)
            if edge.effect_size is not None:
                effects[name] = float(edge.effect_size)
            if edge.present:
                kept.append(name)
        runs.append(
            {
                "tau": tau,
                "ablation": "Zero" if zero else "Corrupted",
                "order": order,
                "edges_total": total,
                "kept": sorted(kept),
                "effects": effects,
                "final_metric": float(exp.cur_metric),
            }
        )
        print(f"tau {tau} zero {zero} {order}: {len(kept)} of {total} kept, {len(effects)} tested")

    out = {
        "notes": "Reference ACDC (ArthurConmy/Automatic-Circuit-Discovery, TLACDCExperiment) in "
        "float64 on tests/fixtures/gpt2-tiny through TransformerLens 3.9 (use_attn_result, "
        "use_split_qkv_input, use_hook_mlp_in, no folding); KL divergence at the last position; "
        "names_mode = indices_mode = each run's order. Made by scripts/acdc_reference.py.",
        "tokens": clean.tolist(),
        "corrupted": corrupted.tolist(),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
