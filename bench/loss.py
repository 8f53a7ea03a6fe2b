"""Benchmark: surgical losses against nnU-Net's stock losses, forward + backward with deep supervision.

For each configuration (2D batch 12, 2 classes, 512^2; 3D batch 2, 2 and 4 classes, 128^3) and each loss
(CE + Dice, Dice alone, BCE + Dice on regions) this builds the logits of every deep-supervision output of
nnU-Net's U-Net (full resolution, then /2, /4, ... down to 8 voxels, as `pool_op_kernel_sizes` give them),
the targets downsampled by nearest-exact (nnU-Net's `DownsampleSegForDSTransform`), and compares

    stock:   DeepSupervisionWrapper(DC_and_CE_loss(..., dice_class=MemoryEfficientSoftDiceLoss))
    surgery: DeepSupervisionWrapper(DC_and_CE_loss(..., dice_class=SoftTverskyLoss, surgery=True))

with nnU-Net's Dice settings (smooth 1e-5, no background for softmax, batch Dice in 2D) and weights 1/2^i
(lowest output 0, normalised). Stock and surgery run interleaved (alternating which goes first) on the
same tensors; times are medians over the repetitions.

torch.compile follows nnU-Net: on CUDA the Dice term is compiled (`loss.dc = torch.compile(loss.dc)`,
nnU-Net's default there) unless `--no-compile`; on CPU nothing is compiled unless `--compile`. On CUDA
without compile the surgery runs its fused Triton kernels; the variant `surgery-aten` is the same loss with
them off (`NNUNET_SURGERY_FUSED=0`), the ATen operators it falls back to.

Memory, on CPU: `peak` is the largest number of bytes held by allocations made during one forward +
backward (torch.profiler's allocator events, deterministic); the logits and targets, allocated before,
are not counted, their gradients are. `saved` is the size of the distinct storages saved for backward
(`torch.autograd.graph.saved_tensors_hooks`), leaving out the logits and targets themselves. On CUDA,
`peak` is `torch.cuda.max_memory_allocated()` above the memory allocated before the step. `extra` is
(surgery peak - stock peak) / size of the full-resolution logits.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from _common import format_table, machine_info, median, verdict
from nnunetv2.training.loss.compound_losses import DC_and_BCE_loss, DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.utilities.helpers import softmax_helper_dim1
from torch import nn

from nnunet_surgery.losses import SoftTverskyLoss
from nnunet_surgery.surgery.fused import ENV_SWITCH

#: surgery / stock wall time: CPU (eager, as nnU-Net runs there), CUDA with nnU-Net's compile, CUDA eager
TIME_TARGET = {"cpu": 1.15, "cuda-compile": 1.05, "cuda-eager": 1.3}
MEMORY_TARGET = 0.5  # extra peak / full-resolution logits
LOSSES = ("ce+dice", "dice", "bce+dice")


@dataclass(frozen=True)
class Config:
    name: str
    batch: int
    classes: int
    spatial: tuple[int, ...]
    batch_dice: bool  # nnU-Net's plans: True for 2d, False for 3d_fullres

    @property
    def levels(self) -> int:
        """Deep-supervision outputs of nnU-Net's U-Net: pooling down to 4, the bottleneck has no output."""
        size, n = min(self.spatial), 0
        while size >= 8:
            size //= 2
            n += 1
        return n


FULL_CONFIGS = (
    Config("2D b12 c2 512^2", 12, 2, (512, 512), True),
    Config("3D b2 c2 128^3", 2, 2, (128, 128, 128), False),
    Config("3D b2 c4 128^3", 2, 4, (128, 128, 128), False),
)
QUICK_CONFIGS = (
    Config("2D b2 c2 128^2", 2, 2, (128, 128), True),
    Config("3D b1 c2 32^3", 1, 2, (32, 32, 32), False),
    Config("3D b1 c4 32^3", 1, 4, (32, 32, 32), False),
)


def ds_weights(levels: int) -> list[float]:
    """nnU-Net's deep-supervision weights: 1/2^i, the lowest output 0, normalised to sum 1."""
    w = [1 / 2**i for i in range(levels)]
    w[-1] = 0.0
    return [x / sum(w) for x in w]


def make_inputs(
    cfg: Config, loss_kind: str, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Leaf logits per deep-supervision output and targets (label maps, or nested regions for BCE)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = tuple(max(1, s // 16) for s in cfg.spatial)
    noise = torch.rand((cfg.batch, 1, *coarse), generator=gen)
    smooth = F.interpolate(noise, size=cfg.spatial, mode="bilinear" if len(cfg.spatial) == 2 else "trilinear")
    labels = (smooth * cfg.classes).clamp_max(cfg.classes - 1).to(torch.int16)  # blobs of every class
    channels = cfg.classes - 1 if loss_kind == "bce+dice" else cfg.classes
    logits, targets = [], []
    for level in range(cfg.levels):
        shape = tuple(s // 2**level for s in cfg.spatial)
        seg = labels if level == 0 else F.interpolate(labels.float(), size=shape, mode="nearest-exact")
        seg = seg.to(torch.int16)
        if loss_kind == "bce+dice":
            target = torch.cat([seg >= k for k in range(1, cfg.classes)], 1)  # nested regions, bool
        else:
            target = seg
        # a network in training: logits favour the reference by a margin of 4, with noise of 2 (most
        # voxels right and confident, some wrong); the error weights then underflow often, as in practice
        x = 2 * torch.randn((cfg.batch, channels, *shape), generator=gen)
        if loss_kind == "bce+dice":
            x += 4 * (2 * target.float() - 1)
        else:
            x.scatter_add_(1, seg.long(), torch.full(seg.shape, 4.0))
        logits.append(x.to(device=device, dtype=dtype).requires_grad_(True))
        targets.append(target.to(device))
    return logits, targets


class FusedOff(DeepSupervisionWrapper):
    """A loss whose surgery runs on ATen operators: `step` turns the fused kernels off around it."""


@contextlib.contextmanager
def _fused_switch(loss: nn.Module):
    """`NNUNET_SURGERY_FUSED=0` for a `FusedOff` loss (forward and backward), the environment as it was otherwise."""
    if not isinstance(loss, FusedOff):
        yield
        return
    before = os.environ.get(ENV_SWITCH)
    os.environ[ENV_SWITCH] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_SWITCH)
        else:
            os.environ[ENV_SWITCH] = before


def build_losses(
    cfg: Config, loss_kind: str, compile_dice: bool, exponent: float, aten_variant: bool = False
) -> dict[str, nn.Module]:
    """{stock, surgery[, surgery-aten]} losses, each wrapped for deep supervision as nnU-Net's `_build_loss`
    does; `surgery-aten` (with `aten_variant`) is the surgery with its fused kernels off."""
    regions = loss_kind == "bce+dice"
    dice_kwargs = {"batch_dice": cfg.batch_dice, "smooth": 1e-5, "do_bg": regions, "ddp": False}
    surgery_kwargs = {**dice_kwargs, "alpha": 0.5, "surgery": True, "exponent": exponent}
    classes = {"stock": MemoryEfficientSoftDiceLoss, "surgery": SoftTverskyLoss}
    losses: dict[str, nn.Module] = {}
    for name, dice_class in classes.items():
        kwargs = dice_kwargs if name == "stock" else surgery_kwargs
        if loss_kind == "ce+dice":
            loss = DC_and_CE_loss(kwargs, {}, 1, 1, None, dice_class=dice_class)
        elif loss_kind == "bce+dice":
            loss = DC_and_BCE_loss({}, kwargs, dice_class=dice_class)
        elif loss_kind == "dice":
            loss = dice_class(apply_nonlin=softmax_helper_dim1, **kwargs)
        else:
            raise ValueError(f"loss must be one of {LOSSES}, but got {loss_kind!r}")
        if compile_dice:  # as nnU-Net: only the Dice term is compiled
            if hasattr(loss, "dc"):
                loss.dc = torch.compile(loss.dc)
            else:
                loss = torch.compile(loss)
        losses[name] = DeepSupervisionWrapper(loss, ds_weights(cfg.levels))
        if name == "surgery" and aten_variant:
            losses["surgery-aten"] = FusedOff(loss, ds_weights(cfg.levels))
    return losses


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step(
    loss: nn.Module, logits: list[torch.Tensor], targets: list[torch.Tensor], amp_dtype
) -> tuple[float, float]:
    """One forward + backward; returns (wall seconds, CPU seconds of this process)."""
    for x in logits:
        x.grad = None
    device = logits[0].device
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    _sync(device)
    with _fused_switch(loss):
        start, cpu = time.perf_counter(), time.process_time()
        with ctx:
            value = loss(logits, targets)
        value.backward()
        _sync(device)
        return time.perf_counter() - start, time.process_time() - cpu


def _storage_key(t: torch.Tensor) -> tuple[int, int]:
    s = t.untyped_storage()
    return s.data_ptr(), s.nbytes()


def saved_bytes(loss, logits, targets, amp_dtype) -> int:
    """Bytes of the distinct storages saved for backward, leaving out the inputs themselves."""
    inputs = {_storage_key(t)[0] for t in (*logits, *targets)}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr, nbytes = _storage_key(t)
        if ptr not in inputs and nbytes > 0:
            seen[ptr] = nbytes
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step(loss, logits, targets, amp_dtype)
    return sum(seen.values())


def peak_bytes(loss, logits, targets, amp_dtype) -> int:
    """Peak bytes held by allocations made during one forward + backward."""
    device = logits[0].device
    if device.type == "cuda":
        for x in logits:
            x.grad = None
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(loss, logits, targets, amp_dtype)
        return torch.cuda.max_memory_allocated(device) - base
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile

    for x in logits:
        x.grad = None
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step(loss, logits, targets, amp_dtype)
    events: list[tuple[int, int, int]] = []
    stack = list(prof.profiler.kineto_results.experimental_event_tree())
    while stack:
        node = stack.pop()
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            fields = node.extra_fields
            events.append((node.start_time_ns, fields.total_allocated, fields.alloc_size))
        stack.extend(node.children)
    if not events:
        return 0
    events.sort()
    # `total_allocated` is the CPU allocator's running total of profiled allocations; it keeps bytes that an
    # earlier profiling session allocated and that were freed outside any session, so count from the start
    start = events[0][1] - events[0][2]
    return max(total for _, total, _ in events) - start


def profile_table(loss, logits, targets, amp_dtype, title: str, rows: int = 15) -> str:
    from torch.profiler import ProfilerActivity, profile

    step(loss, logits, targets, amp_dtype)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if logits[0].is_cuda else [])
    with profile(activities=acts) as prof:
        step(loss, logits, targets, amp_dtype)
    key = "device_time_total" if logits[0].is_cuda else "self_cpu_time_total"
    return f"--- profile: {title}\n" + prof.key_averages().table(sort_by=key, row_limit=rows)


def bench_one(cfg: Config, loss_kind: str, args, device: torch.device) -> dict:
    amp_dtype = None
    if args.amp:
        amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    logits, targets = make_inputs(cfg, loss_kind, device, amp_dtype or torch.float32)
    losses = build_losses(cfg, loss_kind, args.compile, args.exponent, aten_variant=args.aten_variant)
    names = list(losses)
    for _ in range(args.warmup):
        for loss in losses.values():
            step(loss, logits, targets, amp_dtype)
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(args.reps):
        shift = rep % len(names)
        order = names[shift:] + names[:shift]
        for name in order if rep % 2 == 0 else order[::-1]:
            w, c = step(losses[name], logits, targets, amp_dtype)
            wall[name].append(w)
            cpu[name].append(c)
    result = {"logits_bytes": logits[0].numel() * logits[0].element_size(), "names": names}
    for name, loss in losses.items():
        result[name] = {
            "wall": median(wall[name]),
            "cpu": median(cpu[name]),
            # per repetition the variants run back to back: their ratio is robust to a slow phase of the machine
            "ratio": median([a / b for a, b in zip(wall[name], wall["stock"])]),
            "cpu_ratio": median([a / b for a, b in zip(cpu[name], cpu["stock"])]),
            "peak": peak_bytes(loss, logits, targets, amp_dtype),
            "saved": saved_bytes(loss, logits, targets, amp_dtype),
        }
        if args.profile:
            print(profile_table(loss, logits, targets, amp_dtype, f"{cfg.name} {loss_kind} {name}"))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:i] (default cpu)")
    parser.add_argument("--amp", action="store_true", help="autocast: float16 on CUDA, bfloat16 on CPU")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the Dice term (default: as nnU-Net, on for CUDA, off for CPU)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test, not a benchmark)")
    parser.add_argument(
        "--reps", type=int, default=None, help="timed repetitions per loss (default 10, 3D: 6)"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed repetitions per loss (default 1)")
    parser.add_argument("--exponent", type=float, default=20, help="surgery's decline exponent (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on CPU (default 2)")
    parser.add_argument("--configs", nargs="*", default=None, help="substrings of configuration names to run")
    parser.add_argument("--losses", nargs="*", default=list(LOSSES), choices=LOSSES, help="losses to run")
    parser.add_argument("--profile", action="store_true", help="also print torch.profiler's top operators")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda given, but torch.cuda.is_available() is False")
    torch.set_num_threads(args.threads)
    configs = QUICK_CONFIGS if args.quick else FULL_CONFIGS
    if args.configs:
        configs = tuple(c for c in configs if any(s in c.name for s in args.configs))
    if args.compile is None:
        args.compile = device.type == "cuda"  # nnU-Net's _do_i_compile: CUDA, unless nnUNet_compile is off
    time_target = TIME_TARGET[
        "cpu" if device.type != "cuda" else "cuda-compile" if args.compile else "cuda-eager"
    ]
    args.aten_variant = device.type == "cuda" and not args.compile

    print(machine_info(str(device)))
    compile_note = "nnU-Net's default" if args.compile == (device.type == "cuda") else "not nnU-Net's default"
    print(
        f"options: amp={args.amp} compile={args.compile} ({compile_note} on {device.type}) quick={args.quick} "
        f"exponent={args.exponent}"
    )
    variants = ["surgery", "surgery-aten"] if args.aten_variant else ["surgery"]
    time_rows, memory_rows = [], []
    mb = 2**20
    for cfg in configs:
        reps = args.reps or (10 if len(cfg.spatial) == 2 else 6)
        for loss_kind in args.losses:
            start = time.perf_counter()
            r = bench_one(cfg, loss_kind, argparse.Namespace(**{**vars(args), "reps": reps}), device)
            label = [cfg.name, f"{loss_kind} (DS {cfg.levels})"]
            time_row = [*label, f"{1e3 * r['stock']['wall']:.0f}"]
            memory_row = [*label, f"{r['logits_bytes'] / mb:.1f}", f"{r['stock']['peak'] / mb:.1f}"]
            for v in variants:
                ratio = r[v]["ratio"]
                extra = (r[v]["peak"] - r["stock"]["peak"]) / r["logits_bytes"]
                time_row += [
                    f"{1e3 * r[v]['wall']:.0f}",
                    f"{ratio:.2f} {verdict(ratio, time_target)}",
                    f"{r[v]['cpu_ratio']:.2f}",
                ]
                memory_row += [f"{r[v]['peak'] / mb:.1f}", f"{extra:+.2f} {verdict(extra, MEMORY_TARGET)}"]
            memory_row += [f"{r[name]['saved'] / mb:.1f}" for name in ["stock", *variants]]
            time_rows.append(time_row)
            memory_rows.append(memory_row)
            print(f"  {cfg.name} {loss_kind}: {reps} reps in {time.perf_counter() - start:.0f} s")
            sys.stdout.flush()
    time_headers = ["config", "loss", "stock ms"]
    memory_headers = ["config", "loss", "logits MB", "stock peak MB"]
    for v in variants:
        time_headers += [f"{v} ms", f"{v} ratio (<= {time_target})", f"{v} cpu ratio"]
        memory_headers += [f"{v} peak MB", f"{v} extra (<= {MEMORY_TARGET})"]
    memory_headers += [f"{name} saved MB" for name in ["stock", *variants]]
    print("\nTime: median forward + backward over all deep-supervision outputs")
    print(format_table(time_headers, time_rows))
    print(
        "\nMemory: allocator peak during forward + backward (logits' gradients included); extra = (peak - stock peak) / logits"
    )
    print(format_table(memory_headers, memory_rows))
    print(
        "\nratio: median over repetitions of (variant wall time / stock wall time), the variants run back to back "
        "in rotating order; cpu ratio: the same with this process's CPU time. logits MB: the full-resolution "
        "output. saved: distinct storages saved for backward."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
