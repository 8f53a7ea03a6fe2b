"""Every registered trainer's compiled loss terms trace into graphs that Inductor's CUDA backend can lower.

nnU-Net compiles the Dice term on CUDA by default (`loss.dc = torch.compile(loss.dc)`) and nothing on CPU,
and CPU Inductor lowers graphs that CUDA Inductor refuses: a CPU-green suite proved nothing about the GPU
path (region-based SurgeryTrainer crashed at its first CUDA step on a dtype view of nnU-Net's bool target).
So each trainer's loss is built as nnU-Net builds it when it compiles (`_do_i_compile` true), every term
its `compiled` wraps is traced by dynamo with `fullgraph=True` (any graph break fails) and by AOTAutograd
with Inductor's own decompositions (forward and backward graphs, as Inductor receives them), and every
node of those graphs is checked against `cuda_hazards`. The targets are what nnU-Net 2.8's data pipeline
hands over: region tensors from its `ConvertSegmentationToRegionsTransform` (bool, the ignore channel
last), label maps as int16 or float, downsampled by its `DownsampleSegForDSTransform`; with and without
an ignore label; float32 logits and float16 ones (autocast's output on CUDA).

The graphs then run eagerly (the backend returns them uncompiled), so the test also checks that the traced
loss and gradient equal the eager ones.
"""

from __future__ import annotations

import pytest
import torch
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd
from torch._inductor.decomposition import select_decomp_table
from trainer_builders import deep_supervision_inputs, make_trainer, with_ignore_label

from nnunet_surgery.trainers import TRAINERS, BaselineTrainerCE

#: ops whose output shape depends on tensor values: a host sync, and no static graph for Inductor
DATA_DEPENDENT_OPS = {
    torch.ops.aten.nonzero.default,
    torch.ops.aten.masked_select.default,
    torch.ops.aten._unique2.default,
    torch.ops.aten.unique_dim.default,
    torch.ops.aten.unique_consecutive.default,
}
FLOAT64 = torch.float64
#: torch.compile itself (the test puts the recorder's compile in its place, where the trainers call it)
TORCH_COMPILE = torch.compile


def _dtype(node: torch.fx.Node) -> torch.dtype | None:
    value = node.meta.get("val")
    return value.dtype if isinstance(value, torch.Tensor) else None


def cuda_hazards(graph: torch.fx.Graph, float64_inputs: bool) -> list[str]:
    """What in an AOTAutograd graph (Inductor's decompositions applied) CUDA Inductor cannot lower or should
    not run, one line per node:

    - a dtype view of or to bool (`aten.view.dtype`): CUDA Inductor's lowering asks for the dtype's bit
      width, which bool does not have (`torch.iinfo(torch.bool)` raises);
    - a host sync (`aten._local_scalar_dense`, i.e. `.item()` or a Python branch on a value);
    - an op whose output shape depends on values (`DATA_DEPENDENT_OPS`), or a boolean-mask index;
    - float64 arithmetic where no input is float64 (slow on most GPUs; the loss math is float32);
    - a write into a graph input (`copy_` onto a placeholder after functionalization: an in-place update
      of a tensor the caller or autograd still holds).
    """
    found = []
    placeholders = {node for node in graph.nodes if node.op == "placeholder"}
    for node in graph.nodes:
        if node.op != "call_function":
            continue
        target, args = node.target, [a for a in node.args if isinstance(a, torch.fx.Node)]
        if target is torch.ops.aten.view.dtype and torch.bool in (_dtype(args[0]), node.args[1]):
            found.append(f"{node.format_node()}: dtype view of bool")
        elif target is torch.ops.aten._local_scalar_dense.default:
            found.append(f"{node.format_node()}: host sync")
        elif target in DATA_DEPENDENT_OPS:
            found.append(f"{node.format_node()}: data-dependent output shape")
        elif target is torch.ops.aten.index.Tensor and any(
            isinstance(i, torch.fx.Node) and _dtype(i) == torch.bool for i in node.args[1]
        ):
            found.append(f"{node.format_node()}: boolean-mask index")
        elif target is torch.ops.aten.copy_.default and args and args[0] in placeholders:
            found.append(f"{node.format_node()}: write into a graph input")
        if not float64_inputs and _dtype(node) == FLOAT64:
            found.append(f"{node.format_node()}: float64 on float32/float16 inputs")
    return found


class HazardRecorder:
    """A `torch.compile` backend: AOTAutograd with Inductor's decompositions, graphs recorded and run eagerly."""

    def __init__(self) -> None:
        self.graphs: list[torch.fx.GraphModule] = []

    def _record(self, gm: torch.fx.GraphModule, example_inputs):
        self.graphs.append(gm)
        return make_boxed_func(gm.forward)

    @property
    def backend(self):
        return aot_autograd(
            fw_compiler=self._record, bw_compiler=self._record, decompositions=select_decomp_table()
        )

    def compile(self, module: torch.nn.Module) -> torch.nn.Module:
        """What the trainers call as `torch.compile(module)`: a full graph (a graph break raises)."""
        return TORCH_COMPILE(module, backend=self.backend, fullgraph=True)


def _loss_and_grads(loss: torch.nn.Module, logits, targets):
    leaves = [x.detach().clone().requires_grad_() for x in logits]
    value = loss(leaves, targets)
    value.backward()
    return value.detach(), [x.grad for x in leaves]


#: (region-based, label-map dtype before region conversion, ignore label, logits dtype): every target kind
#: with and without an ignore label, and each logits dtype twice (tracing costs seconds per case)
TARGET_CASES = {
    "labels-int16-fp16": (False, torch.int16, False, torch.float16),
    "labels-float-ignore-fp32": (False, torch.float32, True, torch.float32),
    "regions-bool-fp32": (True, torch.float32, False, torch.float32),
    "regions-bool-ignore-fp16": (True, torch.float32, True, torch.float16),
}


@pytest.mark.parametrize(
    ("regions", "map_dtype", "ignore", "logits_dtype"), TARGET_CASES.values(), ids=TARGET_CASES.keys()
)
@pytest.mark.parametrize("trainer_class", TRAINERS, ids=lambda c: c.__name__)
def test_compiled_loss_terms_trace_without_graph_breaks_or_cuda_hazards(
    trainer_class: type,
    regions: bool,
    map_dtype: torch.dtype,
    ignore: bool,
    logits_dtype: torch.dtype,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    fresh_dynamo,
) -> None:
    dataset = request.getfixturevalue("region_dataset" if regions else "label_dataset")
    trainer = make_trainer(
        trainer_class,
        dataset,
        monkeypatch,
        dataset_json=with_ignore_label(dataset.dataset_json(), ignore),
    )
    assert (trainer.label_manager.ignore_label is not None) == ignore
    logits, targets = deep_supervision_inputs(trainer, map_dtype, logits_dtype)
    if regions:
        assert all(t.dtype == torch.bool for t in targets)  # what nnU-Net 2.8 hands over

    monkeypatch.setattr(trainer, "_do_i_compile", lambda: False)
    eager_value, eager_grads = _loss_and_grads(trainer._build_loss(), logits, targets)

    recorder = HazardRecorder()
    monkeypatch.setattr(trainer, "_do_i_compile", lambda: True)
    monkeypatch.setattr(torch, "compile", recorder.compile)
    traced_value, traced_grads = _loss_and_grads(trainer._build_loss(), logits, targets)

    # every term that nnU-Net compiles went through dynamo and AOTAutograd, forward and backward; the CE
    # baseline's Dice term on label maps is compiled but never called (nnU-Net skips a term of weight 0)
    skipped = trainer_class is BaselineTrainerCE and not regions
    assert len(recorder.graphs) >= (0 if skipped else 2)
    hazards = [line for gm in recorder.graphs for line in cuda_hazards(gm.graph, float64_inputs=False)]
    assert not hazards, "\n".join(hazards)
    torch.testing.assert_close(traced_value, eager_value, rtol=1e-5, atol=1e-6)
    for traced, eager in zip(traced_grads, eager_grads):
        assert (traced is None) == (eager is None)  # the lowest output has weight 0: no gradient
        if eager is None:
            continue
        # a few roundings of the gradient's dtype, relative to the largest gradient
        scale = (eager.abs().max().item() or 1.0) * 4 * torch.finfo(eager.dtype).eps
        torch.testing.assert_close(traced, eager, rtol=0, atol=scale)


def test_hazard_check_flags_the_dtype_view_of_a_bool_target(fresh_dynamo) -> None:
    """The check itself: the conversion that crashed CUDA Inductor is found, its replacement is not."""

    def viewed(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x * y.view(torch.uint8).to(x.dtype)).sum()

    def converted(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return (x * y.to(x.dtype)).sum()

    x, y = torch.randn(4, 3, requires_grad=True), torch.rand(4, 3) > 0.5
    found = {}
    for fn in (viewed, converted):
        recorder = HazardRecorder()
        torch._dynamo.reset()
        recorder.compile(fn)(x, y).backward()
        found[fn.__name__] = [line for gm in recorder.graphs for line in cuda_hazards(gm.graph, False)]
    assert len(found["viewed"]) == 1 and "dtype view of bool" in found["viewed"][0]
    assert found["converted"] == []
