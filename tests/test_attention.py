"""The one attention implementation: its three entry points compute the same causal function.

On a tiny random block stack, the full causal pass, the cached step-by-step decode (from scratch and after a
prefill that stores keys/values) and the static-shape export step agree position by position, and changing a
later position never changes an earlier output.
"""

import pytest
import torch
from torch import nn

from chainrule.core.nn.attention import Block, kv_buffers, run_blocks, static_step_blocks, step_blocks

BATCH, LENGTH, CAPACITY, DIM, HEADS, LAYERS = 2, 7, 10, 16, 2, 2


def tiny_stack(rotary: bool) -> nn.ModuleList:
    torch.manual_seed(0)
    blocks = nn.ModuleList([Block(DIM, HEADS, 2.0, 0.0, True, rotary, 1e-5) for _ in range(LAYERS)])
    with torch.no_grad():  # default init leaves LayerNorm at identity; random affine exercises it too
        for p in blocks.parameters():
            p.normal_(0.0, 0.3)
    return blocks.eval()


def inputs() -> torch.Tensor:
    return torch.randn(BATCH, LENGTH, DIM, generator=torch.Generator().manual_seed(1))


def cached_decode(blocks: nn.ModuleList, h: torch.Tensor, prefill: int) -> torch.Tensor:
    """Outputs at every position: the first ``prefill`` by the full pass storing K/V, the rest one at a time."""
    cache = {"pos": 0, **kv_buffers(blocks, BATCH, CAPACITY, h)}
    outs = [run_blocks(blocks, h[:, :prefill], cache)] if prefill else []
    for t in range(prefill, LENGTH):
        cache["pos"] = t
        outs.append(step_blocks(blocks, h[:, t], cache)[:, None])
    return torch.cat(outs, dim=1)


def static_decode(blocks: nn.ModuleList, h: torch.Tensor) -> torch.Tensor:
    """Outputs at every position from the static-shape step; the buffers start as junk (never-written slots
    must stay invisible, whatever they hold)."""
    shape = (LAYERS, BATCH, HEADS, CAPACITY, DIM // HEADS)
    keys, values = torch.randn(shape) * 10, torch.randn(shape) * 10
    outs = []
    for t in range(LENGTH):
        out, keys, values = static_step_blocks(blocks, h[:, t:t + 1], torch.tensor(t), keys, values)
        outs.append(out)
    return torch.cat(outs, dim=1)


@pytest.mark.parametrize("rotary", [False, True])
@torch.no_grad()
def test_full_pass_equals_cached_decode(rotary):
    blocks, h = tiny_stack(rotary), inputs()
    full = run_blocks(blocks, h, None)
    for prefill in (0, 1, 4):
        torch.testing.assert_close(cached_decode(blocks, h, prefill), full, atol=1e-5, rtol=0)


@pytest.mark.parametrize("rotary", [False, True])
@torch.no_grad()
def test_full_pass_equals_static_step(rotary):
    blocks, h = tiny_stack(rotary), inputs()
    torch.testing.assert_close(static_decode(blocks, h), run_blocks(blocks, h, None), atol=1e-5, rtol=0)


class StaticStep(nn.Module):
    def __init__(self, blocks: nn.ModuleList) -> None:
        super().__init__()
        self.blocks = blocks

    def forward(self, h: torch.Tensor, position: torch.Tensor, keys: torch.Tensor, values: torch.Tensor):
        return static_step_blocks(self.blocks, h, position, keys, values)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
@torch.no_grad()
def test_static_step_has_no_data_dependent_shapes():
    """Traced at one position (as the exporter does), the static step is right at every other position."""
    blocks, h = tiny_stack(True), inputs()
    shape = (LAYERS, BATCH, HEADS, CAPACITY, DIM // HEADS)
    keys, values = torch.zeros(shape), torch.zeros(shape)
    traced = torch.jit.trace(StaticStep(blocks), (h[:, :1], torch.tensor(2), keys, values))
    full = run_blocks(blocks, h, None)
    for t in range(LENGTH):
        out, keys, values = traced(h[:, t:t + 1], torch.tensor(t), keys, values)
        torch.testing.assert_close(out[:, 0], full[:, t], atol=1e-5, rtol=0)


@pytest.mark.parametrize("rotary", [False, True])
@torch.no_grad()
def test_later_positions_do_not_change_earlier_outputs(rotary):
    blocks, h = tiny_stack(rotary), inputs()
    changed = h.clone()
    changed[:, 4:] += torch.randn(BATCH, LENGTH - 4, DIM)
    before, after = run_blocks(blocks, h, None), run_blocks(blocks, changed, None)
    torch.testing.assert_close(after[:, :4], before[:, :4], atol=1e-6, rtol=0)
    assert not torch.allclose(after[:, 4:], before[:, 4:], atol=1e-3)
