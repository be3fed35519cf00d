"""A small Tacotron-style text-to-mel model (Wang et al. 2017; Shen et al. 2018), autoregressive over mel frames.

Encoder: character embedding, convolutions and a bidirectional LSTM. Decoder: a prenet (dropout kept on at
synthesis, as in Tacotron 2), an attention LSTM, location-sensitive attention (Chorowski et al. 2015: the energies
also see convolved previous and cumulative alignments) and a decoder LSTM that emits ``reduction`` frames per
step and a stop logit. The input of decoder step k is the last frame of step k-1, so frame t depends only on
frames < t (teacher forcing in training, its own frames at synthesis).

An optional post-net (Tacotron 2: ``postnet`` channels, 5 convolutions over the whole predicted spectrogram)
adds a residual that sharpens the decoder's frames at synthesis. It looks at neighbouring frames on both sides, so
it is not part of the likelihood: it is a deterministic refiner, trained on the decoder's (detached) teacher-forced
frames with its own L1 term, and ``log_prob`` stays the decoder's exact density.

The distribution is explicit, so the objective is a likelihood: each normalised log-mel value is Laplace with
unit scale around the predicted frame (NLL = L1 distance + log 2) and the stop flag of each step is Bernoulli.
``log_prob`` is the exact log-density (nats) of a prompt's frames and stop flags given its text under teacher
forcing. ``loss`` is that NLL per frame plus two training aids that are not part of the likelihood:

- a guided-attention penalty (Tachibana et al. 2018, :func:`guided_attention_penalty`) that pulls alignments
  towards the diagonal so they form within minutes of CPU training. It is scaled by ``n_mels``: the frame NLL is
  a sum over the bands, so ``guided_attention = 1`` weighs the penalty like Tachibana's (a mean per value);
- the stop flag's positive (the last step of a prompt, one step in dozens) weighed ``stop_weight`` times, so
  the rare "stop now" is not drowned by the "go on" steps;
- with a post-net, the L1 distance of the refined frames to the recorded ones (per frame, summed over the bands,
  the frame NLL's scale); no gradient reaches the decoder through it.

The decoder is a Python loop over frames even in training: each alignment depends on the previous one, which no
parallel form gives. The encoder and every per-step operation are batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from chainrule.core.contract import Condition
from chainrule.core.errors import InputError

LOG2 = math.log(2.0)


@dataclass
class Synthesis:
    """What :meth:`Tacotron.synthesise` returns: frames ``(T, n_mels)`` (refined by the post-net if the model has
    one), alignment ``(steps, characters)``, whether the stop flag fired before ``max_steps``, and the decoder's
    own frames before the post-net."""

    frames: Tensor
    alignment: Tensor
    stopped: bool
    decoder_frames: Tensor | None = None


def guided_attention_penalty(alignments: Tensor, step_mask: Tensor, char_mask: Tensor,
                             width: float = 0.2) -> Tensor:
    """Mean over real decoder steps of the attention mass placed off the diagonal, in [0, 1].

    Tachibana et al. (2018): ``W[k, c] = 1 - exp(-(k/K - c/C)^2 / (2 width^2))`` with ``K`` the prompt's real
    decoder steps and ``C`` its real characters; the penalty is ``sum_c A[k, c] W[k, c]`` averaged over the real
    steps ``k`` (Tachibana's mean over all ``(k, c)`` cells times ``C``: one scale whatever the text's length).
    Cells of padded steps or padded characters never count. ``alignments`` ``(B, steps, L)``, ``step_mask``
    ``(B, steps)`` and ``char_mask`` ``(B, L)`` (True = real)."""
    steps = step_mask.sum(1).clamp(min=1)
    chars = char_mask.sum(1).clamp(min=1)
    k = torch.arange(alignments.shape[1], device=alignments.device)[None, :, None] / steps[:, None, None]
    c = torch.arange(alignments.shape[2], device=alignments.device)[None, None, :] / chars[:, None, None]
    weight = 1 - torch.exp(-((k - c) ** 2) / (2 * width ** 2))
    cells = step_mask[:, :, None] & char_mask[:, None, :]
    return (alignments * weight * cells).sum() / step_mask.sum().clamp(min=1)


class LocationSensitiveAttention(nn.Module):
    """Additive attention whose energies also see the previous and the cumulative alignment (convolved)."""

    def __init__(self, query_dim: int, memory_dim: int, dim: int, filters: int, kernel: int) -> None:
        super().__init__()
        self.query = nn.Linear(query_dim, dim, bias=False)
        self.memory = nn.Linear(memory_dim, dim, bias=False)
        self.location_conv = nn.Conv1d(2, filters, kernel, padding=kernel // 2, bias=False)
        self.location = nn.Linear(filters, dim, bias=False)
        self.energy = nn.Linear(dim, 1)

    def forward(self, query: Tensor, keys: Tensor, memory: Tensor, mask: Tensor, previous: Tensor,
                cumulative: Tensor) -> tuple[Tensor, Tensor]:
        """-> (context ``(B, memory_dim)``, alignment ``(B, L)``); ``keys`` = ``self.memory(memory)``."""
        where = self.location_conv(torch.stack([previous, cumulative], dim=1)).transpose(1, 2)
        energies = self.energy(torch.tanh(self.query(query)[:, None] + keys + self.location(where))).squeeze(-1)
        alignment = torch.softmax(energies.masked_fill(~mask, float("-inf")), dim=-1)
        return torch.bmm(alignment[:, None], memory).squeeze(1), alignment


class PostNet(nn.Module):
    """Tacotron 2's post-net: 1-D convolutions over frames (tanh between them) whose output is added to the
    frames; the last convolution starts at zero, so an untrained post-net leaves the frames as they are."""

    def __init__(self, n_mels: int, channels: int, layers: int = 5, kernel: int = 5, dropout: float = 0.2) -> None:
        super().__init__()
        sizes = [n_mels] + [channels] * (layers - 1) + [n_mels]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, kernel, padding=kernel // 2)
                                   for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        nn.init.zeros_(self.convs[-1].weight)
        nn.init.zeros_(self.convs[-1].bias)
        self.dropout = dropout

    def forward(self, frames: Tensor) -> Tensor:
        """``(B, T, n_mels)`` -> refined ``(B, T, n_mels)``."""
        h = frames.transpose(1, 2)
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i < len(self.convs) - 1:
                h = F.dropout(torch.tanh(h), self.dropout, self.training)
        return frames + h.transpose(1, 2)


class Tacotron(nn.Module):
    """Text -> normalised log-mel frames. ``x``: frames ``(B, T, n_mels)``; ``cond``: a :class:`Condition` with
    the character ids as ``labels`` ``(B, L)`` (0 = padding) and the real frames as ``observed`` ``(B, T)``."""

    name = "tacotron"
    modality = "audio"
    likelihood = "exact"
    num_classes = 0
    TINY: ClassVar[dict[str, Any]] = {"embed": 16, "encoder": 16, "prenet": 16, "attention_rnn": 32,
                                      "decoder_rnn": 32, "attention": 16, "location_filters": 4,
                                      "location_kernel": 5}

    def __init__(self, n_mels: int, vocab: int, reduction: int = 2, embed: int = 64, encoder: int = 64,
                 prenet: int = 64, attention_rnn: int = 128, decoder_rnn: int = 128, attention: int = 64,
                 location_filters: int = 16, location_kernel: int = 15, guided_attention: float = 1.0,
                 guided_width: float = 0.2, stop_weight: float = 1.0, postnet: int = 0) -> None:
        super().__init__()
        if min(n_mels, vocab, reduction, embed, encoder, prenet, attention_rnn, decoder_rnn, attention) < 1:
            raise ValueError("every size of the model must be at least 1")
        if guided_attention < 0 or guided_width <= 0 or stop_weight <= 0:
            raise ValueError("guided_attention must be >= 0, guided_width and stop_weight > 0")
        if postnet < 0:
            raise ValueError("postnet (its channels; 0 = none) must be >= 0")
        self.n_mels, self.vocab, self.reduction = n_mels, vocab, reduction
        self.guided_attention, self.guided_width, self.stop_weight = guided_attention, guided_width, stop_weight
        self.embedding = nn.Embedding(vocab, embed, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(embed if i == 0 else encoder, encoder, 5, padding=2) for i in range(3))
        self.bilstm = nn.LSTM(encoder, encoder // 2 + encoder % 2, batch_first=True, bidirectional=True)
        memory = 2 * (encoder // 2 + encoder % 2)
        self.prenet = nn.ModuleList([nn.Linear(n_mels, prenet), nn.Linear(prenet, prenet)])
        self.attention_rnn = nn.LSTMCell(prenet + memory, attention_rnn)
        self.attention = LocationSensitiveAttention(attention_rnn, memory, attention, location_filters,
                                                    location_kernel)
        self.decoder_rnn = nn.LSTMCell(attention_rnn + memory, decoder_rnn)
        self.frame_out = nn.Linear(decoder_rnn + memory, reduction * n_mels)
        self.stop_out = nn.Linear(decoder_rnn + memory, 1)
        self.postnet = PostNet(n_mels, postnet) if postnet else None

    @property
    def num_dims(self) -> int:
        """Values per frame (the trainer's bits/dim divide a prompt's NLL by it: read them as per-frame units)."""
        return self.n_mels

    @property
    def device(self) -> torch.device:
        return self.embedding.weight.device

    # ------------------------------------------------------------------ checks
    def check_input(self, x: Tensor, cond: Any) -> tuple[Tensor, Tensor]:
        """The text ids ``(B, L)`` and the observed frames ``(B, T)``; :class:`InputError` naming what is wrong."""
        if not isinstance(cond, Condition) or cond.labels is None:
            raise InputError(f"{self.name}: give the text as Condition(labels=character ids (B, L))")
        ids = cond.labels
        if ids.dim() != 2 or ids.dtype not in (torch.int64, torch.int32) or ids.shape[0] != x.shape[0]:
            raise InputError(f"{self.name}: character ids must be integers (B, L) with B = {x.shape[0]}; "
                             f"got {tuple(ids.shape)} {ids.dtype}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab):
            raise InputError(f"{self.name}: character ids must be in 0..{self.vocab - 1}")
        if x.dim() != 3 or x.shape[2] != self.n_mels or not torch.isfinite(x).all():
            raise InputError(f"{self.name}: frames must be finite (B, T, {self.n_mels}); got {tuple(x.shape)}")
        observed = cond.observed if cond.observed is not None else torch.ones(x.shape[:2], dtype=torch.bool,
                                                                              device=x.device)
        return ids.long(), observed.bool()

    # ------------------------------------------------------------------ encoder
    def encode_text(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Character ids ``(B, L)`` -> memory ``(B, L, memory)`` and its mask (True = a real character)."""
        mask = ids != 0
        mask[:, 0] = True  # an empty text still attends somewhere
        h = self.embedding(ids).transpose(1, 2)
        for conv in self.convs:
            h = F.dropout(F.relu(conv(h)), 0.1, self.training) * mask[:, None]
        lengths = mask.sum(1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(h.transpose(1, 2), lengths, batch_first=True, enforce_sorted=False)
        out, _ = self.bilstm(packed)
        memory, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        return memory, mask

    # ------------------------------------------------------------------ decoder
    def _prenet(self, frame: Tensor) -> Tensor:
        for layer in self.prenet:
            frame = F.dropout(F.relu(layer(frame)), 0.5, training=True)  # always on, as in Tacotron 2
        return frame

    def init_state(self, memory: Tensor, mask: Tensor) -> dict[str, Tensor]:
        b, length, dim = memory.shape
        z = memory.new_zeros
        return {"memory": memory, "keys": self.attention.memory(memory), "mask": mask,
                "att": (z(b, self.attention_rnn.hidden_size), z(b, self.attention_rnn.hidden_size)),
                "dec": (z(b, self.decoder_rnn.hidden_size), z(b, self.decoder_rnn.hidden_size)),
                "context": z(b, dim), "alignment": z(b, length), "cumulative": z(b, length)}

    def decoder_step(self, previous_frame: Tensor, state: dict[str, Any]) -> tuple[Tensor, Tensor, Tensor]:
        """One decoder step from the last frame of the previous step ``(B, n_mels)`` -> (``reduction`` frames
        ``(B, r, n_mels)``, stop logit ``(B,)``, alignment ``(B, L)``); ``state`` is updated in place."""
        att_h, att_c = self.attention_rnn(torch.cat([self._prenet(previous_frame), state["context"]], -1),
                                          state["att"])
        context, alignment = self.attention(att_h, state["keys"], state["memory"], state["mask"],
                                            state["alignment"], state["cumulative"])
        dec_h, dec_c = self.decoder_rnn(torch.cat([att_h, context], -1), state["dec"])
        out = torch.cat([dec_h, context], -1)
        state.update(att=(att_h, att_c), dec=(dec_h, dec_c), context=context, alignment=alignment,
                     cumulative=state["cumulative"] + alignment)
        return self.frame_out(out).view(-1, self.reduction, self.n_mels), self.stop_out(out).squeeze(-1), alignment

    def network(self, frames: Tensor, ids: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Teacher forcing: frames ``(B, T, n_mels)`` (float) -> predicted frames ``(B, T, n_mels)``, stop logits
        ``(B, steps)`` and alignments ``(B, steps, L)``, ``steps = ceil(T / reduction)``. Step k reads frame
        ``k * reduction - 1`` (zeros for k = 0)."""
        b, t, m = frames.shape
        r = self.reduction
        steps = -(-t // r)
        padded = F.pad(frames, (0, 0, 0, steps * r - t))
        inputs = torch.cat([padded.new_zeros(b, 1, m), padded[:, r - 1::r][:, :steps - 1]], dim=1)
        state = self.init_state(*self.encode_text(ids))
        outs, stops, aligns = [], [], []
        for k in range(steps):
            out, stop, alignment = self.decoder_step(inputs[:, k], state)
            outs.append(out)
            stops.append(stop)
            aligns.append(alignment)
        predicted = torch.cat(outs, dim=1)[:, :t]
        return predicted, torch.stack(stops, 1), torch.stack(aligns, 1)

    # ------------------------------------------------------------------ likelihood
    def _scores(self, x: Tensor, cond: Any) -> dict[str, Tensor]:
        """Per-example log p (``lp``, nats), observed frames per example (``frames``), the observed mask, the
        teacher-forced predictions, alignments, the step mask and the per-example log p of the stop flag's
        positive (the last real step)."""
        ids, observed = self.check_input(x, cond)
        predicted, stop_logits, alignments = self.network(x.float(), ids)
        frame_lp = (-(x - predicted).abs() - LOG2).sum(-1)  # Laplace, unit scale, per frame
        frame_lp = (frame_lp * observed).sum(1)
        r = self.reduction
        frames_per_example = observed.sum(1)
        steps = -(-frames_per_example // r)  # decoder steps holding real frames
        k = torch.arange(stop_logits.shape[1], device=x.device)[None]
        step_mask = k < steps[:, None]
        stop_target = (k == steps[:, None] - 1).float()
        stop_lp = -F.binary_cross_entropy_with_logits(stop_logits, stop_target, reduction="none")
        positive_lp = (stop_lp * stop_target * step_mask).sum(1)
        return {"lp": frame_lp + (stop_lp * step_mask).sum(1), "frames": frames_per_example, "observed": observed,
                "predicted": predicted, "alignments": alignments, "step_mask": step_mask, "positive_lp": positive_lp}

    def log_prob(self, x: Tensor, cond: Any = None) -> Tensor:
        """Nats per prompt: its frames (Laplace) and its stop flags (Bernoulli) given its text."""
        return self._scores(x, cond)["lp"]

    def loss(self, x: Tensor, cond: Any = None) -> Tensor:
        """NLL per frame (nats) with the stop positives weighed ``stop_weight`` times, plus ``guided_attention
        * n_mels`` times the guided-attention penalty, plus the post-net's L1 per frame (if it has one)."""
        s = self._scores(x, cond)
        frames = s["frames"].sum().clamp(min=1)
        loss = -(s["lp"] + (self.stop_weight - 1) * s["positive_lp"]).sum() / frames
        if self.postnet is not None:
            observed = s["observed"][..., None]
            refined = self.postnet(s["predicted"].detach() * observed)
            loss = loss + ((refined - x).abs() * observed).sum() / frames
        if self.guided_attention > 0:
            penalty = guided_attention_penalty(s["alignments"], s["step_mask"], (cond.labels != 0).to(x.device),
                                               self.guided_width)
            loss = loss + self.guided_attention * self.n_mels * penalty
        return loss

    # ------------------------------------------------------------------ synthesis
    @torch.no_grad()
    def synthesise(self, ids: Tensor, max_steps: int = 400, stop_threshold: float = 0.5,
                   window: int = 0) -> Synthesis:
        """Frames for one text ``(L,)``, fed back step by step until the stop probability passes the threshold.

        ``window > 0`` constrains attention to move forward: each step may only attend to the characters from the
        previous step's most attended one to ``window`` characters after it (off by default; it cannot repair a
        model that has not learnt to align, only keep a learnt alignment from skipping back or jumping ahead)."""
        if ids.dim() != 1 or not len(ids):
            raise InputError(f"{self.name}: give one text as character ids (L,)")
        if window < 0:
            raise InputError(f"{self.name}: the attention window must be >= 0 characters; got {window}")
        state = self.init_state(*self.encode_text(ids[None].to(self.device)))
        frame = torch.zeros(1, self.n_mels, device=self.device)
        outs, aligns, stopped = [], [], False
        real, position = state["mask"], torch.arange(len(ids), device=self.device)[None]
        for _ in range(max_steps):
            if window:
                last = state["alignment"].argmax(-1, keepdim=True)
                state["mask"] = real & (position >= last) & (position <= last + window)
            out, stop, alignment = self.decoder_step(frame, state)
            outs.append(out[0])
            aligns.append(alignment[0])
            frame = out[:, -1]
            if torch.sigmoid(stop).item() > stop_threshold:
                stopped = True
                break
        frames = torch.cat(outs)
        refined = self.postnet(frames[None])[0] if self.postnet is not None else frames
        return Synthesis(refined.cpu(), torch.stack(aligns).cpu(), stopped, frames.cpu())
