"""SAM task module: interactive segmentation inside the zoomed crops (paper, Sec. 4.3).

The sensing policy proposes regions; each region is ResizeCropped; here every crop gets
prompts (points or a box) and SAM turns each prompt into a mask **in crop pixels**.  The
mask is returned cropped to its tight box (``Detection.mask``) with its top-left corner
at ``Detection.mask_offset``; :class:`~active_o3_ros.core.pipeline.ActivePerception`
maps it to frame pixels.  The image encoder — SAM's whole cost — runs ONCE over the K
crops as one batch; the prompt encoder and mask decoder are cheap and run per prompt.

Two implementations of the same model behind one class (``implementation`` option):

* ``segment_anything`` — Meta's package (``sam_model_registry[vit_b|vit_l|vit_h]`` and
  checkpoints ``sam_vit_*.pth``).  Its ``SamPredictor`` needs torchvision only for
  ``ResizeLongestSide.apply_image`` (a PIL bilinear resize); so we load the package's
  model modules *without* its ``__init__`` (which imports the predictor) and do that
  resize with PIL ourselves, then call the real ``Sam.image_encoder`` /
  ``prompt_encoder`` / ``mask_decoder`` / ``postprocess_masks`` as ``SamPredictor`` does.
* ``transformers`` — ``SamModel`` + ``SamProcessor`` (PIL image processor) from a local
  directory or hub id (e.g. ``facebook/sam-vit-base``).

``implementation="auto"`` picks by what ``model`` points at: a weights *file* →
``segment_anything``; a *directory* or hub id → ``transformers``.

Prompts (``prompter`` option):

* ``"points"`` (default): ``points_per_crop`` single-point prompts on a grid centred in
  the crop (1 = the crop centre, i.e. the region centre); one mask per point.
* ``"box"``: the central ``box_fraction`` of the crop as a box prompt (the region box
  when ResizeCrop did not grow it: use ``1 / crop_context``).
* any task backend name (``"qwen_vl"``, ``"grounding_dino"``...): that model runs on the
  same crop batch first (one extra model call) and each of its detections becomes a
  prompt — its points when it gave points (the MLLM's ``point_2d`` answers), else its box.
  This is the paper's pairing: the MLLM points, SAM segments.

Scores: with the built-in prompts, SAM's own predicted IoU; with a prompter, the
prompter's detection score.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import sys
import threading
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

import numpy as np

from active_o3_ros.backends.hf import is_hub_id, torch_dtype
from active_o3_ros.backends.base import TaskModel, TaskOutput, build_task, options_from_kwargs
from active_o3_ros.core.geometry import validate_image
from active_o3_ros.core.prompts import normalize_instruction
from active_o3_ros.core.types import Box, Detection, ParseStatus

log = logging.getLogger(__name__)

SAM_IMPLEMENTATIONS = ("auto", "segment_anything", "transformers")
BUILTIN_PROMPTERS = ("points", "box")
SA_MODEL_TYPES = ("auto", "vit_b", "vit_l", "vit_h", "tiny")
#: Encoder width -> registry name, to recognise a checkpoint's model type from its weights.
_SA_WIDTHS = {768: "vit_b", 1024: "vit_l", 1280: "vit_h", 32: "tiny"}
_SA_ALIAS = "_active_o3_segment_anything"
_SA_LOCK = threading.Lock()


# -- segment_anything without its torchvision-importing __init__ -------------------------
def segment_anything_modules() -> SimpleNamespace:
    """Return ``segment_anything``'s ``modeling`` and ``build_sam`` modules.

    Why not ``import segment_anything``: its ``__init__`` imports ``SamPredictor`` →
    ``utils.transforms`` → torchvision, which this torch build cannot import.  The model
    code itself needs only torch, so the submodules are loaded under a private package
    alias whose ``__path__`` is the real package directory; the real name
    ``segment_anything`` is left untouched in ``sys.modules``.
    """
    with _SA_LOCK:
        if _SA_ALIAS not in sys.modules:
            spec = importlib.util.find_spec("segment_anything")
            if spec is None or not spec.submodule_search_locations:
                raise RuntimeError("the 'segment-anything' package is not installed; "
                                   "pip install segment-anything, or use implementation='transformers'")
            alias = importlib.util.spec_from_file_location(
                _SA_ALIAS, spec.origin, submodule_search_locations=list(spec.submodule_search_locations))
            pkg = importlib.util.module_from_spec(alias)  # NOT executed: no predictor import
            sys.modules[_SA_ALIAS] = pkg
        return SimpleNamespace(modeling=importlib.import_module(f"{_SA_ALIAS}.modeling"),
                               build_sam=importlib.import_module(f"{_SA_ALIAS}.build_sam"))


def preprocess_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """SAM's ``ResizeLongestSide.get_preprocess_shape``: ``(new_h, new_w)``."""
    scale = long_side * 1.0 / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


# -- options and prompts -----------------------------------------------------------------
@dataclass
class SamOptions:
    """``task_options`` of the ``sam`` task module (validated here, once)."""

    implementation: str = "auto"
    #: segment_anything only: registry name; "auto" reads it from the checkpoint's weights.
    model_type: str = "auto"
    #: Alias of the ``model`` / ``task_model`` parameter (a checkpoint file or HF dir/id).
    checkpoint: str = ""
    #: Ask SAM for 3 candidate masks per prompt and keep the best predicted IoU.
    multimask: bool = True
    prompter: str = "points"
    points_per_crop: int = 1
    box_fraction: float = 1.0
    prompter_model: str = ""
    prompter_options: dict[str, Any] = field(default_factory=dict)
    #: Upper bound on prompts per crop (a prompter gone wild must not stall the node).
    max_prompts_per_crop: int = 32
    #: Masks with fewer pixels are dropped (counted in ``extra['empty_masks']``).
    min_mask_pixels: int = 1
    #: Build ``model_type`` with random weights (benchmarks of the real architecture's cost).
    random_init: bool = False

    def __post_init__(self) -> None:
        if self.implementation not in SAM_IMPLEMENTATIONS:
            raise ValueError(f"sam implementation must be one of {SAM_IMPLEMENTATIONS}, got {self.implementation!r}")
        if self.model_type not in SA_MODEL_TYPES:
            raise ValueError(f"sam model_type must be one of {SA_MODEL_TYPES}, got {self.model_type!r}")
        if not isinstance(self.points_per_crop, int) or not 1 <= self.points_per_crop <= 64:
            raise ValueError(f"points_per_crop must be an integer in [1, 64], got {self.points_per_crop!r}")
        if not 0.0 < float(self.box_fraction) <= 1.0:
            raise ValueError(f"box_fraction must be in (0, 1], got {self.box_fraction!r}")
        if not isinstance(self.max_prompts_per_crop, int) or self.max_prompts_per_crop < 1:
            raise ValueError(f"max_prompts_per_crop must be a positive integer, got {self.max_prompts_per_crop!r}")
        if not isinstance(self.prompter, str) or not self.prompter:
            raise ValueError("prompter must be 'points', 'box' or a task backend name")
        if self.prompter == "sam":
            raise ValueError("prompter cannot be 'sam' itself; use 'points', 'box' or a detector backend")
        if not isinstance(self.prompter_options, dict):
            raise ValueError("prompter_options must be a mapping")

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> "SamOptions":
        return options_from_kwargs(cls, options, "sam")


@dataclass
class SamPrompt:
    """One SAM prompt in crop pixels: positive/negative points and/or a box."""

    points: np.ndarray | None = None        # (n, 2) float x, y
    point_labels: np.ndarray | None = None  # (n,) int 1 = foreground, 0 = background
    box: np.ndarray | None = None           # (4,) float x1, y1, x2, y2
    label: str = ""
    score: float | None = None              # None: use SAM's predicted IoU


def grid_points(width: int, height: int, n: int) -> np.ndarray:
    """``n`` points on the cell centres of a ``ceil(sqrt(n))`` grid, nearest the centre
    first (so ``n=1`` is exactly the crop centre)."""
    g = int(math.ceil(math.sqrt(n)))
    xs = (np.arange(g) + 0.5) * width / g
    ys = (np.arange(g) + 0.5) * height / g
    pts = np.array([(x, y) for y in ys for x in xs], dtype=np.float64)
    d = np.hypot(pts[:, 0] - width / 2, pts[:, 1] - height / 2)
    return pts[np.argsort(d, kind="stable")[:n]]


def prompts_from_detections(dets: Sequence[Detection]) -> list[SamPrompt]:
    """Turn a prompter's detections (crop pixels) into SAM prompts: points if any, else box."""
    out = []
    for d in dets:
        if d.points:
            pts = np.asarray(d.points, dtype=np.float64).reshape(-1, 2)
            out.append(SamPrompt(points=pts, point_labels=np.ones(len(pts), np.int64), label=d.label, score=d.score))
        elif d.box.width >= 1 and d.box.height >= 1:
            out.append(SamPrompt(box=np.asarray(d.box.as_list(), np.float64), label=d.label, score=d.score))
        else:
            cx, cy = d.box.center
            out.append(SamPrompt(points=np.array([[cx, cy]]), point_labels=np.ones(1, np.int64), label=d.label,
                                 score=d.score))
    return out


def mask_to_detection(mask: np.ndarray, label: str, score: float,
                      points: Sequence[tuple[float, float]] = ()) -> Detection | None:
    """Full-crop boolean mask → Detection with the mask cropped to its tight box."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    x1, y1, x2, y2 = int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
    return Detection(Box(float(x1), float(y1), float(x2), float(y2)), label, float(score),
                     mask=np.ascontiguousarray(mask[y1:y2, x1:x2]), mask_offset=(x1, y1),
                     points=[(float(x), float(y)) for x, y in points])


# -- engines -----------------------------------------------------------------------------
@dataclass
class _Embedded:
    """Image embeddings of one batch plus each image's original and resized size."""

    embeddings: Any
    original_sizes: list[tuple[int, int]]
    input_sizes: list[tuple[int, int]]


class _SamEngine:
    """One SAM implementation: batched encoder, per-prompt decoder."""

    implementation = ""
    image_size = 1024
    model: Any = None

    def embed(self, images: Sequence[np.ndarray]) -> _Embedded:
        raise NotImplementedError

    def decode(self, emb: _Embedded, index: int, prompt: SamPrompt, multimask: bool) -> tuple[np.ndarray, np.ndarray]:
        """Masks ``(M, H, W)`` bool in the original crop's pixels and their predicted IoUs."""
        raise NotImplementedError

    def scale_coords(self, coords: np.ndarray, emb: _Embedded, index: int) -> np.ndarray:
        (h, w), (nh, nw) = emb.original_sizes[index], emb.input_sizes[index]
        out = np.asarray(coords, dtype=np.float64).reshape(-1, 2).copy()
        out[:, 0] *= nw / w
        out[:, 1] *= nh / h
        return out


def _load_state_dict(path: Path) -> dict[str, Any]:
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling error means "not a SAM state dict"
        raise RuntimeError(f"cannot read SAM checkpoint {path}: {exc}") from exc
    if not isinstance(sd, dict):
        raise RuntimeError(f"SAM checkpoint {path} holds a {type(sd).__name__}, expected a state dict")
    return sd


def _infer_model_type(sd: dict[str, Any], path: Path) -> str:
    w = sd.get("image_encoder.patch_embed.proj.weight")
    if w is not None and int(w.shape[0]) in _SA_WIDTHS:
        return _SA_WIDTHS[int(w.shape[0])]
    for t in ("vit_b", "vit_l", "vit_h"):
        if t in path.name:
            return t
    raise RuntimeError(f"cannot tell the SAM model type of {path}; set task option model_type to vit_b, vit_l or vit_h")


class SegmentAnythingEngine(_SamEngine):
    """Meta's ``segment_anything`` model classes with our PIL ResizeLongestSide."""

    implementation = "segment_anything"

    def __init__(self, checkpoint: str, model_type: str = "auto", device: str = "cpu", dtype: str = "auto",
                 random_init: bool = False) -> None:
        import torch

        sa = segment_anything_modules()
        sd = None
        if checkpoint:
            path = Path(checkpoint).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"SAM checkpoint not found: {path}")
            sd = _load_state_dict(path)
            if model_type == "auto":
                model_type = _infer_model_type(sd, path)
        elif not random_init:
            raise ValueError("segment_anything SAM needs a checkpoint file (or random_init=true for benchmarks)")
        if model_type == "auto":
            model_type = "vit_b"
        if model_type == "tiny":
            sam = build_tiny_sam()
        else:
            sam = sa.build_sam.sam_model_registry[model_type](checkpoint=None)
        if sd is not None:
            try:
                sam.load_state_dict(sd, strict=True)
            except RuntimeError as exc:
                raise RuntimeError(f"SAM checkpoint {checkpoint} does not fit model_type {model_type!r}: "
                                   f"{str(exc)[:400]}") from exc
        self.model_type = model_type
        self.device = torch.device(device)
        self.dtype = torch_dtype(dtype)
        self.model = sam.to(self.device, self.dtype).eval()
        self.image_size = int(sam.image_encoder.img_size)

    def embed(self, images: Sequence[np.ndarray]) -> _Embedded:
        import torch
        from PIL import Image

        batch, orig, sizes = [], [], []
        for img in images:
            h, w = img.shape[:2]
            nh, nw = preprocess_shape(h, w, self.image_size)
            # == torchvision.transforms.functional.resize(to_pil_image(img), (nh, nw)): PIL bilinear
            resized = np.asarray(Image.fromarray(img).resize((nw, nh), Image.BILINEAR))
            x = torch.from_numpy(np.array(resized)).to(self.device).permute(2, 0, 1).contiguous()[None].float()
            batch.append(self.model.preprocess(x))  # normalise + pad to image_size (Sam's own code)
            orig.append((h, w))
            sizes.append((nh, nw))
        with torch.inference_mode():
            emb = self.model.image_encoder(torch.cat(batch).to(self.dtype))
        return _Embedded(emb, orig, sizes)

    def decode(self, emb: _Embedded, index: int, prompt: SamPrompt, multimask: bool) -> tuple[np.ndarray, np.ndarray]:
        import torch

        m = self.model
        points = boxes = None
        if prompt.points is not None:
            coords = torch.as_tensor(self.scale_coords(prompt.points, emb, index), dtype=torch.float, device=self.device)
            labels = torch.as_tensor(prompt.point_labels, dtype=torch.int, device=self.device)
            points = (coords[None], labels[None])
        if prompt.box is not None:
            b = self.scale_coords(prompt.box.reshape(2, 2), emb, index).reshape(1, 4)
            boxes = torch.as_tensor(b, dtype=torch.float, device=self.device)
        with torch.inference_mode():
            sparse, dense = m.prompt_encoder(points=points, boxes=boxes, masks=None)
            low_res, iou = m.mask_decoder(
                image_embeddings=emb.embeddings[index:index + 1], image_pe=m.prompt_encoder.get_dense_pe().to(self.dtype),
                sparse_prompt_embeddings=sparse.to(self.dtype), dense_prompt_embeddings=dense.to(self.dtype),
                multimask_output=multimask)
            masks = m.postprocess_masks(low_res.float(), emb.input_sizes[index], emb.original_sizes[index])
        return (masks[0] > m.mask_threshold).cpu().numpy(), iou[0].float().cpu().numpy()


class TransformersSamEngine(_SamEngine):
    """transformers ``SamModel`` + ``SamProcessor`` (PIL image processor, no torchvision)."""

    implementation = "transformers"

    def __init__(self, path: str, device: str = "cpu", dtype: str = "auto", random_init: bool = False) -> None:
        import torch
        from transformers import SamModel, SamProcessor

        if not path:
            raise ValueError("transformers SAM needs a model directory or hub id (e.g. facebook/sam-vit-base)")
        local = Path(path).expanduser()
        if local.is_dir() and not (local / "config.json").is_file():
            raise FileNotFoundError(f"{local} has no config.json: not a transformers SAM directory")
        if not local.exists() and not is_hub_id(path):
            raise FileNotFoundError(f"SAM model not found: {path} (neither a directory nor a hub id)")
        self.device = torch.device(device)
        self.dtype = torch_dtype(dtype)
        try:
            self.processor = SamProcessor.from_pretrained(str(local) if local.exists() else path)
            self.model = SamModel.from_pretrained(str(local) if local.exists() else path, dtype=self.dtype)
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot load transformers SAM from {path!r}: {exc}") from exc
        self.model.to(self.device).eval()
        self.image_size = int(self.processor.image_processor.size["longest_edge"])

    def embed(self, images: Sequence[np.ndarray]) -> _Embedded:
        import torch

        enc = self.processor(images=list(images), return_tensors="pt")
        with torch.inference_mode():
            emb = self.model.get_image_embeddings(enc["pixel_values"].to(self.device, self.dtype))
        orig = [tuple(int(v) for v in s) for s in enc["original_sizes"].tolist()]
        sizes = [tuple(int(v) for v in s) for s in enc["reshaped_input_sizes"].tolist()]
        return _Embedded(emb, orig, sizes)

    def decode(self, emb: _Embedded, index: int, prompt: SamPrompt, multimask: bool) -> tuple[np.ndarray, np.ndarray]:
        import torch

        kw: dict[str, Any] = {}
        if prompt.points is not None:
            pts = self.scale_coords(prompt.points, emb, index)
            kw["input_points"] = torch.as_tensor(pts, dtype=self.dtype, device=self.device)[None, None]
            kw["input_labels"] = torch.as_tensor(prompt.point_labels, dtype=torch.long, device=self.device)[None, None]
        if prompt.box is not None:
            b = self.scale_coords(prompt.box.reshape(2, 2), emb, index).reshape(4)
            kw["input_boxes"] = torch.as_tensor(b, dtype=self.dtype, device=self.device)[None, None]
        with torch.inference_mode():
            out = self.model(image_embeddings=emb.embeddings[index:index + 1], multimask_output=multimask, **kw)
        masks = self.processor.image_processor.post_process_masks(
            out.pred_masks.float().cpu(), [emb.original_sizes[index]], [emb.input_sizes[index]])[0][0]
        return masks.numpy().astype(bool), out.iou_scores[0, 0].float().cpu().numpy()


def resolve_implementation(implementation: str, path: str, random_init: bool = False) -> str:
    """``auto``: a file → segment_anything; a directory or hub id → transformers."""
    if implementation != "auto":
        return implementation
    if not path:
        if random_init:
            return "segment_anything"
        raise ValueError(
            "the sam task module needs weights: set task_model (or task option checkpoint) to a SAM checkpoint "
            "file (sam_vit_b_01ec64.pth / .safetensors, segment_anything) or a transformers SAM directory / hub id")
    p = Path(path).expanduser()
    if p.is_file():
        return "segment_anything"
    if p.is_dir() or is_hub_id(path):
        return "transformers"
    raise FileNotFoundError(f"SAM weights not found: {path} (expected a checkpoint file, a directory or a hub id)")


# -- the task module ---------------------------------------------------------------------
class SamTaskModel(TaskModel):
    """``task_module:=sam``: prompts per crop → SAM masks in crop pixels (see module doc)."""

    name = "sam"
    produces_masks = True

    def __init__(self, model: str = "", device: str = "cpu", dtype: str = "auto", trust_remote_code: bool = False,
                 **options: Any) -> None:
        self.options = SamOptions.from_kwargs(options)
        o = self.options
        path = o.checkpoint or model
        impl = resolve_implementation(o.implementation, path, o.random_init)
        if impl == "segment_anything":
            self.engine: _SamEngine = SegmentAnythingEngine(path, o.model_type, device, dtype, o.random_init)
        else:
            self.engine = TransformersSamEngine(path, device, dtype, o.random_init)
        self.prompter: TaskModel | None = None
        if o.prompter not in BUILTIN_PROMPTERS:
            self.prompter = build_task(o.prompter, model=o.prompter_model, device=device, dtype=dtype,
                                       trust_remote_code=trust_remote_code, **o.prompter_options)
        self.encoder_batches = 0  # image-encoder forwards so far (one per detect call with prompts)

    @property
    def implementation(self) -> str:
        return self.engine.implementation

    def _builtin_prompts(self, image: np.ndarray, label: str) -> list[SamPrompt]:
        h, w = image.shape[:2]
        o = self.options
        if o.prompter == "box":
            f = float(o.box_fraction)
            mx, my = w * (1 - f) / 2, h * (1 - f) / 2
            return [SamPrompt(box=np.array([mx, my, w - mx, h - my], np.float64), label=label)]
        return [SamPrompt(points=p[None], point_labels=np.ones(1, np.int64), label=label)
                for p in grid_points(w, h, o.points_per_crop)]

    def detect(self, images: Sequence[np.ndarray], instructions: Sequence[str]) -> list[TaskOutput]:
        if len(images) != len(instructions):
            raise ValueError(f"sam.detect got {len(images)} images but {len(instructions)} instructions")
        imgs = [validate_image(im, f"crop {i}") for i, im in enumerate(images)]
        texts = [normalize_instruction(t) for t in instructions]
        o = self.options
        if self.prompter is not None:
            pouts = self.prompter.detect(imgs, texts)
            prompts = [prompts_from_detections(p.detections) for p in pouts]
            ptexts, statuses = [p.text for p in pouts], [p.status for p in pouts]
        else:
            prompts = [self._builtin_prompts(im, t) for im, t in zip(imgs, texts)]
            ptexts, statuses = [""] * len(imgs), [ParseStatus.OK] * len(imgs)
        dropped = [max(0, len(p) - o.max_prompts_per_crop) for p in prompts]
        prompts = [p[: o.max_prompts_per_crop] for p in prompts]
        emb = None
        if any(prompts):
            emb = self.engine.embed(imgs)  # ONE batched encoder forward for all K crops
            self.encoder_batches += 1
        outs = []
        for i, plist in enumerate(prompts):
            dets, ious, empty = [], [], 0
            for p in plist:
                masks, iou = self.engine.decode(emb, i, p, o.multimask)
                j = int(np.argmax(iou)) if o.multimask else 0
                mask = masks[j]
                if int(mask.sum()) < o.min_mask_pixels:
                    empty += 1
                    continue
                score = float(np.clip(iou[j], 0.0, 1.0)) if p.score is None else float(p.score)
                pts = [] if p.points is None else [tuple(x) for x in p.points[np.asarray(p.point_labels) > 0]]
                d = mask_to_detection(mask, p.label or texts[i], score, pts)
                if d is not None:
                    dets.append(d)
                    ious.append(float(iou[j]))
            status = statuses[i]
            if status == ParseStatus.OK and plist and not dets:
                status = ParseStatus.EMPTY
            outs.append(TaskOutput(dets, ptexts[i], status, extra={
                "sam_iou": ious, "prompts": len(plist), "empty_masks": empty, "dropped_prompts": dropped[i],
                "model_calls": 1 + int(self.prompter is not None), "implementation": self.implementation}))
        return outs

    def close(self) -> None:
        if self.prompter is not None:
            self.prompter.close()
            self.prompter = None
        self.engine.model = None


#: Input size of the ``tiny`` architecture (tests, benchmarks of our overhead).
TINY_SAM_IMAGE_SIZE = 256


def build_tiny_sam() -> Any:
    """``model_type="tiny"``: the package's ``Sam`` from its own modeling classes, small widths,
    256 px; mirrors ``segment_anything.build_sam._build_sam`` (weights as initialised)."""
    import torch

    modeling = segment_anything_modules().modeling
    size, patch, dim = TINY_SAM_IMAGE_SIZE, 16, 32
    sam = modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            depth=2, embed_dim=32, img_size=size, mlp_ratio=2, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2, patch_size=patch, qkv_bias=True, use_rel_pos=True, global_attn_indexes=[1],
            window_size=8, out_chans=dim),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=dim, image_embedding_size=(size // patch, size // patch), input_image_size=(size, size),
            mask_in_chans=4),
        mask_decoder=modeling.MaskDecoder(
            num_multimask_outputs=3,
            transformer=modeling.TwoWayTransformer(depth=2, embedding_dim=dim, mlp_dim=64, num_heads=2),
            transformer_dim=dim, iou_head_depth=3, iou_head_hidden_dim=32),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )
    return sam.eval()


__all__ = ["SamTaskModel", "SamOptions", "SamPrompt", "SegmentAnythingEngine", "TransformersSamEngine",
           "TINY_SAM_IMAGE_SIZE", "build_tiny_sam", "grid_points", "mask_to_detection", "preprocess_shape", "prompts_from_detections",
           "resolve_implementation", "segment_anything_modules"]
