"""Build a tiny, randomly initialised Qwen2.5-VL into a directory — no downloads.

Why: tests, the CLI demo and the pipeline benchmark must exercise the *same*
``from_pretrained`` code path as the 7B checkpoint (real model class, real processor,
real chat template, real tokenizer with Qwen's special tokens), on a CPU, offline.
The result weighs a few MB and generates garbage text — which is also useful: it
exercises the parser's failure counting.

Usage::

    python -m active_o3_ros.testing.tiny_qwen OUT_DIR [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

#: The Qwen2.5-VL chat template (system default, images as vision_start/pad/end).
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

#: Qwen2.5-VL's added special tokens, in the upstream order (ids follow the BPE vocab).
SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
)

#: A small corpus covering what the prompts and answers contain: digits, JSON punctuation,
#: the think/answer tags and bbox_2d.  Enough for a tokenizer that round-trips any answer.
_CORPUS = [
    "<think>The small objects are near the top left corner.</think>",
    '<answer>[{"bbox_2d": [12, 34, 567, 890], "label": "person"}]</answer>',
    '[{"bbox_2d": [0, 1, 2, 3], "label": "region that may contain text"}, {"point_2d": [4, 5]}]',
    "Find up to three different regions in the image that are most likely to contain {target}.",
    "Please find all person in the image and return the bounding box coordinates in JSON format.",
    "You are a helpful assistant. system user assistant",
    "0123456789 10 20 30 40 50 60 70 80 90 100 250 512 768 1024 -1.5e3 ```json ```",
    "person, car, traffic light, sign, text, cup, coffee, rocket, astronaut, cat, dog",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
]


def build_tokenizer(vocab_size: int = 512):
    """Byte-level BPE trained on :data:`_CORPUS`, wrapped as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS), clean_up_tokenization_spaces=False,
    )
    fast.padding_side = "left"
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_qwen(out_dir: str | Path, seed: int = 0, overwrite: bool = False) -> Path:
    """Write a tiny random Qwen2.5-VL (model + tokenizer + processor) to ``out_dir``.

    Returns the directory.  An existing complete build is reused unless ``overwrite``.
    """
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2VLImageProcessorPil

    out = Path(out_dir)
    marker = out / "tiny_qwen.json"
    if marker.is_file() and not overwrite:
        return out
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab = len(tokenizer)
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=4096,
            rope_parameters={"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [8, 12, 12]},
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=2, hidden_size=64, intermediate_size=128, num_heads=2, patch_size=14, spatial_merge_size=2,
            temporal_patch_size=2, out_hidden_size=128, window_size=112, fullatt_block_indexes=[1],
        ),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    # small pixel budget: the tiny model is for plumbing, not accuracy, and tests run on 2 CPUs
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=448 * 448)
    model.save_pretrained(out, safe_serialization=True)
    # Saved piecewise (tokenizer, image processor, chat template) with the processor class
    # recorded, as hub checkpoints are: a full Qwen2_5_VLProcessor cannot be constructed
    # here because its video processor needs torchvision.
    tokenizer.save_pretrained(out)
    image_processor.save_pretrained(out)
    (out / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen2_5_VLProcessor"}, indent=2))
    marker.write_text(json.dumps({"seed": seed, "vocab_size": vocab, "note": "random weights, tests only"}))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m active_o3_ros.testing.tiny_qwen",
                                     description="Build a tiny random Qwen2.5-VL (offline) for tests and demos.")
    parser.add_argument("out_dir", help="directory to write the model into")
    parser.add_argument("--seed", type=int, default=0, help="weight initialisation seed")
    parser.add_argument("--overwrite", action="store_true", help="rebuild even if the directory has a build")
    args = parser.parse_args(argv)
    path = build_tiny_qwen(args.out_dir, args.seed, args.overwrite)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
