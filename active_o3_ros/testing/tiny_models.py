"""Tiny, randomly initialised SAM and Grounding DINO built offline — no downloads.

Why: the task-module tests, the CLI demo and ``benchmarks/task_modules.py`` must run the
*same* loading code as the real checkpoints (``from_pretrained`` for transformers models,
a state-dict file for the ``segment_anything`` package) with the real model classes, on a
CPU, without network access.  The models weigh well under 2 MB and produce random masks
and boxes, which is all the geometry, batching and error-path tests need.

* :func:`build_tiny_grounding_dino` — ``GroundingDinoForObjectDetection`` with a Swin
  backbone from transformers' own classes (no timm) and a 2-layer BERT whose WordPiece
  vocabulary is written here; saved with its ``GroundingDinoProcessor`` (PIL image
  processor, so torchvision is not needed).
* :func:`build_tiny_hf_sam` — transformers ``SamModel`` + ``SamProcessor`` at 256 px.
* :func:`build_tiny_segment_anything` — the ``segment_anything`` package's own ``Sam``
  assembled from its modeling classes at 256 px; :func:`save_tiny_segment_anything`
  writes its state dict as safetensors.  The architecture itself is the SAM backend's
  ``model_type="tiny"`` (:func:`~active_o3_ros.backends.sam.build_tiny_sam`).

Usage::

    python -m active_o3_ros.testing.tiny_models OUT_DIR [--seed 0]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from active_o3_ros.backends.sam import TINY_SAM_IMAGE_SIZE, build_tiny_sam

#: Words the tiny BERT knows; enough for typical open-vocabulary prompts in tests/demos.
TINY_VOCAB = (
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "a", "an", "the", "and", "of",
    "cat", "dog", "person", "car", "remote", "control", "text", "sign", "object", "cup",
    "bottle", "traffic", "light", "screw", "cable", "tool", "box", "red", "blue", "small",
)

#: Input size of the tiny SAM variants (the real ones use 1024).


def _seed(seed: int) -> None:
    import torch

    torch.manual_seed(int(seed))


# -- Grounding DINO ---------------------------------------------------------------------
def tiny_grounding_dino_config() -> Any:
    """A ~0.4 M-parameter Grounding DINO config (Swin backbone, 2-layer BERT)."""
    from transformers import BertConfig, GroundingDinoConfig, SwinConfig

    backbone = SwinConfig(embed_dim=16, depths=[1, 1, 1, 1], num_heads=[1, 1, 2, 2], window_size=4,
                          image_size=128, out_indices=[2, 3, 4])
    text = BertConfig(vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64)
    # decoder_layers >= 2: the bbox-embedding tying rule needs a second decoder layer.
    return GroundingDinoConfig(
        backbone_config=backbone, text_config=text, num_queries=20, encoder_layers=1, decoder_layers=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
        d_model=32, max_text_len=32, num_feature_levels=4, encoder_n_points=2, decoder_n_points=2,
    )


def build_tiny_grounding_dino(out_dir: str | Path, seed: int = 0, image_short_side: int = 128,
                              image_long_side: int = 192) -> Path:
    """Write a tiny random Grounding DINO + processor to ``out_dir``; returns the directory."""
    from transformers import BertTokenizer, GroundingDinoForObjectDetection, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import (
        GroundingDinoImageProcessorPil,
    )

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _seed(seed)
    model = GroundingDinoForObjectDetection(tiny_grounding_dino_config()).eval()
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(TINY_VOCAB)})
    image_processor = GroundingDinoImageProcessorPil(
        size={"shortest_edge": int(image_short_side), "longest_edge": int(image_long_side)})
    processor = GroundingDinoProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    return out


# -- SAM (transformers) -------------------------------------------------------------------
def tiny_hf_sam_config() -> Any:
    """A ~0.1 M-parameter transformers ``SamConfig`` at 256 px input."""
    from transformers import SamConfig

    size = TINY_SAM_IMAGE_SIZE
    return SamConfig(
        vision_config=dict(hidden_size=32, output_channels=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=size, global_attn_indexes=[1], window_size=8, num_pos_feats=16,
                           mlp_dim=64),
        prompt_encoder_config=dict(hidden_size=32, image_size=size),
        mask_decoder_config=dict(hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32),
    )


def build_tiny_hf_sam(out_dir: str | Path, seed: int = 0) -> Path:
    """Write a tiny random transformers SAM + ``SamProcessor`` (PIL backend) to ``out_dir``."""
    from transformers import SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _seed(seed)
    model = SamModel(tiny_hf_sam_config()).eval()
    size = TINY_SAM_IMAGE_SIZE
    low = size // 4
    image_processor = SamImageProcessorPil(
        size={"longest_edge": size}, pad_size={"height": size, "width": size},
        mask_size={"longest_edge": low}, mask_pad_size={"height": low, "width": low})
    model.save_pretrained(out)
    SamProcessor(image_processor=image_processor).save_pretrained(out)
    return out


# -- SAM (segment_anything package) -----------------------------------------------------
def build_tiny_segment_anything(seed: int = 0) -> Any:
    """The ``tiny`` architecture of the SAM backend (``model_type="tiny"``), seeded weights."""
    _seed(seed)
    return build_tiny_sam()


def save_tiny_segment_anything(path: str | Path, seed: int = 0) -> Path:
    """Save :func:`build_tiny_segment_anything`'s weights as a safetensors checkpoint."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sam = build_tiny_segment_anything(seed)
    save_file({k: v.contiguous() for k, v in sam.state_dict().items()}, str(path))
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="Writes OUT_DIR/grounding_dino, OUT_DIR/sam_hf, OUT_DIR/sam_tiny.safetensors")
    ap.add_argument("out_dir", type=Path, help="directory to write the tiny models into")
    ap.add_argument("--seed", type=int, default=0, help="torch seed for the random weights")
    args = ap.parse_args(argv)
    print(build_tiny_grounding_dino(args.out_dir / "grounding_dino", args.seed))
    print(build_tiny_hf_sam(args.out_dir / "sam_hf", args.seed))
    print(save_tiny_segment_anything(args.out_dir / "sam_tiny.safetensors", args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
