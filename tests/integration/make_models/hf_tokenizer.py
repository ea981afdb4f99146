"""An offline Hugging Face hub cache holding `openai/clip-vit-large-patch14`'s tokenizer and config files.

    python hf_tokenizer.py HF_HOME        (with the host's python: open_clip and transformers)

vocab.json and merges.txt are generated from open_clip's `bpe_simple_vocab_16e6.txt.gz` the way CLIP's
SimpleTokenizer builds its vocabulary (merges are lines 1..48894; vocab: 256 byte symbols, the same with `</w>`,
the merges, the two specials: 49408). config.json holds CLIP ViT-L/14's text and vision configs. No weights.
Then run with HF_HOME=HF_HOME HF_HUB_OFFLINE=1; the script checks that transformers' CLIPTokenizer gives
open_clip's ids.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
from pathlib import Path

REPO_ID = "openai/clip-vit-large-patch14"
SNAPSHOT = "32bd64288804d66eefd0ccbe215aa642df71cc41"
"""Any 40-hex name does; `refs/main` points at it."""
MERGES = 49152 - 256 - 2
SPECIALS = ["<|startoftext|>", "<|endoftext|>"]
SAMPLE = "a photograph of an astronaut riding a horse, 4k, Highly-detailed!"

TEXT_CONFIG = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
    "model_type": "clip_text_model",
}
VISION_CONFIG = {
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_attention_heads": 16,
    "num_hidden_layers": 24,
    "image_size": 224,
    "patch_size": 14,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-05,
    "projection_dim": 768,
    "model_type": "clip_vision_model",
}
MODEL_CONFIG = {
    "architectures": ["CLIPModel"],
    "model_type": "clip",
    "projection_dim": 768,
    "logit_scale_init_value": 2.6592,
    "initializer_factor": 1.0,
    "text_config": TEXT_CONFIG,
    "vision_config": VISION_CONFIG,
    "torch_dtype": "float32",
}
SPECIAL_TOKENS = {
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "unk_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
}
TOKENIZER_CONFIG = {
    **SPECIAL_TOKENS,
    "add_prefix_space": False,
    "errors": "replace",
    "do_lower_case": True,
    "model_max_length": 77,
    "name_or_path": REPO_ID,
    "tokenizer_class": "CLIPTokenizer",
}


def bpe_merges() -> list[str]:
    from open_clip.tokenizer import default_bpe

    with gzip.open(default_bpe()) as file:
        lines = file.read().decode("utf-8").split("\n")
    return lines[1 : MERGES + 1]


def vocabulary(merges: list[str]) -> dict[str, int]:
    from open_clip.tokenizer import bytes_to_unicode

    symbols = list(bytes_to_unicode().values())
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + ["".join(m.split()) for m in merges] + SPECIALS
    return {token: index for index, token in enumerate(tokens)}


def write_cache(hf_home: Path) -> Path:
    hub = hf_home / "hub"
    repo = hub / ("models--" + REPO_ID.replace("/", "--"))
    snapshot = repo / "snapshots" / SNAPSHOT
    snapshot.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(SNAPSHOT)
    (hub / "version.txt").write_text("1")
    merges = bpe_merges()
    files = {
        "vocab.json": json.dumps(vocabulary(merges), ensure_ascii=False),
        "merges.txt": "#version: 0.2\n" + "\n".join(merges) + "\n",
        "config.json": json.dumps(MODEL_CONFIG, indent=2),
        "tokenizer_config.json": json.dumps(TOKENIZER_CONFIG, indent=2),
        "special_tokens_map.json": json.dumps(SPECIAL_TOKENS, indent=2),
    }
    for name, text in files.items():
        (snapshot / name).write_text(text, encoding="utf-8")
    return snapshot


def verify() -> None:
    """transformers' CLIPTokenizer from the cache, offline, against open_clip's tokenizer (`main` sets HF_HOME and
    HF_HUB_OFFLINE before anything imports huggingface_hub, which reads them once)."""
    import open_clip
    from transformers import CLIPTokenizer

    ours = CLIPTokenizer.from_pretrained(REPO_ID)(SAMPLE)["input_ids"]
    theirs = [int(i) for i in open_clip.tokenize([SAMPLE])[0] if int(i)]
    if ours != theirs:
        raise SystemExit(f"token ids differ:\n  transformers {ours}\n  open_clip    {theirs}")
    print(f"tokenizer OK: {len(ours)} ids equal open_clip's ({ours[:6]}…)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("hf_home", type=Path)
    args = parser.parse_args()
    os.environ["HF_HOME"] = str(args.hf_home.resolve())
    os.environ["HF_HUB_OFFLINE"] = "1"
    print(f"wrote {write_cache(args.hf_home)}")
    verify()


if __name__ == "__main__":
    main()
