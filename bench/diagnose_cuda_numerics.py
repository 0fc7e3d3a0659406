"""Where does the plain model on CUDA (fp32) part from the same model on the CPU? Layer by layer.

A diagnostic for tests/test_model_cuda.py: prints the matmul precision settings, then the largest
difference of each block's attention and MLP output between the CPU and CUDA runs.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from codexpc.checkpoint import open_checkpoint
from codexpc.checkpoint.hf import write_hf
from codexpc.checkpoint.random_weights import random_tensors
from codexpc.engine.model_config import TINY
from codexpc.engine.weights import load_model


def capture(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    for name, module in model.named_modules():
        if name.count(".") == 2 and name.split(".")[-1] in ("attn", "mlp"):
            module.register_forward_hook(lambda _m, _i, out, n=name: seen.__setitem__(n, out.detach().float().cpu()))
    return seen


def main() -> None:
    print("float32 matmul precision:", torch.get_float32_matmul_precision(),
          "allow_tf32:", torch.backends.cuda.matmul.allow_tf32,
          "fp32_precision:", getattr(torch.backends.cuda.matmul, "fp32_precision", "n/a"))
    out = Path(tempfile.mkdtemp()) / "tiny-hf"
    write_hf(TINY, random_tensors(TINY, seed=0), out)
    tokens = torch.randint(0, TINY.vocab_size, (43,), generator=torch.Generator().manual_seed(0))
    cpu = load_model(open_checkpoint(out), torch.device("cpu"), torch.float32)
    for precision in ("highest", "high"):
        torch.set_float32_matmul_precision(precision)
        gpu = load_model(open_checkpoint(out), torch.device("cuda"), torch.float32)
        a, b = capture(cpu), capture(gpu)
        la, lb = cpu(tokens, all_logits=True), gpu(tokens.cuda(), all_logits=True).cpu()
        print(f"precision={precision}: logits max |diff| {float((la - lb).abs().max()):.3g}")
        for name in a:
            print(f"  {name}: {float((a[name] - b[name]).abs().max()):.3g} (scale {float(a[name].abs().max()):.3g})")
        w_cpu = dict(cpu.named_parameters()) | dict(cpu.named_buffers())
        w_gpu = dict(gpu.named_parameters()) | dict(gpu.named_buffers())
        bad = [n for n in w_cpu if not torch.equal(w_cpu[n].cpu(), w_gpu[n].cpu())]
        print("  weights that differ after loading:", bad[:5], len(bad))


if __name__ == "__main__":
    main()
