"""One process of a distributed GRPO run, started by ``accelerate launch`` from
``test_distributed.py`` (not collected by pytest: no ``test_`` prefix).

Trains with the product's own ``build_trainer`` / ``save_policy`` (the code ``active-o3-train
grpo`` runs), then gathers the trained weights by the engine's own collective, independently
of the save path: ``DTensor.full_tensor()`` for FSDP2, ``deepspeed.zero.GatheredParameters``
for ZeRO-3, the replicated parameters for DDP.  Rank 0 writes them to ``gathered.safetensors``
and what the run was (engine, world size, sharded parameters) to ``run.json``, for the test
to compare against the saved directory loaded with ``from_pretrained``.

Usage: accelerate launch --config_file CFG tests/training/dist_worker.py OUT_DIR --set key=value ...
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import conftest  # noqa: E402,F401  (makes active_o3_training importable from the source tree)


def gathered_state(model) -> tuple[dict, dict]:
    """Full tensors of every named parameter/buffer of the (wrapped) model, and facts about
    how they were held.  Collective: every rank must call it."""
    import torch
    from torch.distributed.tensor import DTensor

    facts = {"dtensor_params": 0, "sharded_params": 0, "zero3_params": 0, "params": 0}
    state: dict[str, torch.Tensor] = {}
    named = list(model.named_parameters()) + list(model.named_buffers())
    zero3 = [p for _, p in named if hasattr(p, "ds_id")]
    if zero3:
        import deepspeed

        with deepspeed.zero.GatheredParameters(zero3, modifier_rank=None):
            for name, p in named:
                facts["params"] += 1
                facts["zero3_params"] += int(hasattr(p, "ds_id"))
                state[name] = p.detach().clone().cpu()
        return state, facts
    for name, p in named:
        facts["params"] += 1
        if isinstance(p, DTensor):
            facts["dtensor_params"] += 1
            local = p.to_local()
            facts["sharded_params"] += int(local.numel() < p.numel())
            state[name] = p.full_tensor().detach().clone().cpu()
        else:
            state[name] = p.detach().clone().cpu()
    return state, facts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    args = ap.parse_args()

    from safetensors.torch import save_file

    from active_o3_training.config import load_config
    from active_o3_training.grpo_mllm import build_trainer, save_policy

    cfg = load_config(None, args.overrides)
    trainer, processor, rewards = build_trainer(cfg)
    trainer.train()
    final = save_policy(trainer, processor, args.out / "final", cfg.model.policy)
    acc = trainer.accelerator
    state, facts = gathered_state(trainer.model)
    task_net = getattr(getattr(rewards.task_model, "qwen", None), "model", None)
    facts["task_zero3_params"] = sum(hasattr(p, "ds_id") for p in task_net.parameters()) if task_net is not None else -1
    if acc.is_main_process:
        prefix = "module."
        clean = {(k[len(prefix):] if k.startswith(prefix) else k): v.contiguous() for k, v in state.items()}
        save_file(clean, str(args.out / "gathered.safetensors"))
        (args.out / "run.json").write_text(json.dumps({
            "distributed_type": str(acc.distributed_type), "num_processes": acc.num_processes,
            "final": str(final), "steps": trainer.state.global_step, **facts}))
    acc.wait_for_everyone()
    if rewards.task_model is not None:
        rewards.task_model.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
