"""Driver of ``test_grpo_vllm.py``'s weight-sync check, run in a process of its own.

argv: OUT_JSON, then ``section.key=value`` overrides of training/configs/cpu_smoke.yaml.
Builds the trainer exactly as ``active-o3-train grpo`` does (TRL builds the colocated vLLM
engine), perturbs the policy weights, runs TRL's ``sync_weights`` and reports whether the
engine's parameters and outputs followed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
SUFFIXES = ("self_attn.o_proj.weight", "mlp.down_proj.weight")


def _key(name: str) -> str | None:
    """A name both models share: lm_head, or language-model layer N's unfused projections."""
    if name.endswith("lm_head.weight"):
        return "lm_head.weight"
    if "language_model" in name and "layers." in name and name.endswith(SUFFIXES):
        return name[name.index("layers."):]
    return None


def main() -> int:
    from vllm import SamplingParams

    from active_o3_training.config import load_config
    from active_o3_training.grpo_mllm import build_trainer

    out, overrides = Path(sys.argv[1]), sys.argv[2:]
    cfg = load_config(str(ROOT / "training/configs/cpu_smoke.yaml"), overrides)
    trainer, _, rewards = build_trainer(cfg)
    try:
        gen = trainer.vllm_generation
        engine_model = gen.llm.llm_engine.model_executor.driver_worker.model_runner.model
        policy = trainer.accelerator.unwrap_model(trainer.model)
        mine = {k: p for n, p in policy.named_parameters() if (k := _key(n))}
        theirs = {k: p for n, p in engine_model.named_parameters() if (k := _key(n))}
        keys = sorted(set(mine) & set(theirs))
        params = SamplingParams(temperature=0.0, max_tokens=4, logprobs=1)

        def logprobs() -> list[float]:
            comp = gen.llm.generate(["<|im_start|>user\nfind the box<|im_end|>\n<|im_start|>assistant\n"], params,
                                    use_tqdm=False)[0].outputs[0]
            return [round(float(pos[t].logprob), 6) for t, pos in zip(comp.token_ids, comp.logprobs)]

        def same(k: str) -> bool:
            # vLLM pads the vocabulary rows of lm_head (to a multiple of 64): compare the real rows
            t = theirs[k].data[: mine[k].shape[0]]
            return torch.equal(t, mine[k].data.to(t.dtype))

        def equal() -> int:
            return sum(same(k) for k in keys)

        before = {k: theirs[k].data.clone() for k in keys}
        res = {"compared": len(keys), "equal_before": equal(), "logprobs_before": logprobs()}
        torch.manual_seed(0)
        with torch.no_grad():
            for p in policy.parameters():
                p.add_(torch.randn_like(p) * 0.5)
        gen.sync_weights()
        res.update(equal_after=equal(), differ_after=[k for k in keys if not same(k)], changed_after=sum(not torch.equal(theirs[k].data, before[k]) for k in keys),
                   logprobs_after=logprobs(), engine_dtype=str(next(iter(theirs.values())).dtype))
    finally:
        if rewards.task_model is not None:
            rewards.task_model.close()
    out.write_text(json.dumps(res))
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
