"""The per-layer cell step equals running the whole recurrent module on one time step."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from chainrule.core.nn.recurrent import recurrent_step


@pytest.mark.parametrize("kind", ["rnn", "rnn_relu", "gru", "lstm"])
@pytest.mark.parametrize("layers", [1, 3])
def test_recurrent_step_matches_module(kind: str, layers: int) -> None:
    torch.manual_seed(0)
    if kind == "lstm":
        rnn = nn.LSTM(5, 7, num_layers=layers, batch_first=True)
    elif kind == "gru":
        rnn = nn.GRU(5, 7, num_layers=layers, batch_first=True)
    else:
        rnn = nn.RNN(5, 7, num_layers=layers, batch_first=True, nonlinearity="relu" if kind == "rnn_relu" else "tanh")
    rnn.eval()
    x = torch.randn(3, 4, 5)
    ref_state, state = None, None
    for t in range(x.shape[1]):  # state carried over several steps, starting from None (zeros)
        ref_out, ref_state = rnn(x[:, t:t + 1], ref_state)
        out, state = recurrent_step(rnn, x[:, t:t + 1], state)
        assert out.shape == ref_out.shape == (3, 1, 7)
        torch.testing.assert_close(out, ref_out, atol=1e-6, rtol=1e-5)
        for a, b in zip(state if kind == "lstm" else (state,), ref_state if kind == "lstm" else (ref_state,),
                        strict=True):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
