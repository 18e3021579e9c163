"""CNN encoder + Transformer decoder captioner, with greedy and beam-search decoding.

The encoder turns an image into a grid of feature tokens (stride 8: 8x8 = 64 tokens at
64 px) with a learned 2-D position embedding, so the decoder can attend to *where* things
are (the spatial relations). The decoder is ``nn.TransformerDecoder`` (pre-norm) with a
causal mask, trained by teacher forcing.
"""

from __future__ import annotations

import torch
from torch import nn

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIALS = ["<pad>", "<unk>", "<bos>", "<eos>"]


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Encoder(nn.Module):
    """Three stride-2 stages of two 3x3 convs each, then a 1x1 projection to the decoder width."""

    def __init__(self, width: int, dim: int, image_size: int):
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _conv(3, w, 1),
            _conv(w, w, 2),
            _conv(w, 2 * w, 1),
            _conv(2 * w, 2 * w, 2),
            _conv(2 * w, 4 * w, 1),
            _conv(4 * w, 4 * w, 2),
            _conv(4 * w, 4 * w, 1),
        )
        self.proj = nn.Conv2d(4 * w, dim, 1)
        side = (image_size + 7) // 8
        self.pos = nn.Parameter(torch.randn(1, side * side, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """uint8-scaled float images Bx3xHxW in [0, 1] -> tokens B x (H/8 * W/8) x dim."""
        f = self.proj(self.body(x))
        return f.flatten(2).transpose(1, 2) + self.pos[:, : f.shape[2] * f.shape[3]]


class Captioner(nn.Module):
    def __init__(
        self,
        vocab: list[str],
        max_len: int,
        image_size: int,
        width: int = 32,
        dim: int = 128,
        layers: int = 3,
        heads: int = 4,
        dropout: float = 0.1,
        beam_size: int = 3,
        length_penalty: float = 0.0,
    ):
        super().__init__()
        vocab_size = len(vocab)
        self.vocab = vocab  # words by id (plain attribute, not state: the bundle's info holds it)
        self.beam_size, self.length_penalty = beam_size, length_penalty  # decoding defaults
        self.max_len = max_len  # tokens of the longest caption, without <bos>/<eos>
        self.encoder = Encoder(width, dim, image_size)
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=PAD_ID)
        self.pos = nn.Parameter(torch.randn(1, max_len + 2, dim) * 0.02)
        layer = nn.TransformerDecoderLayer(dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab_size)
        self.register_buffer("mean", torch.tensor([0.5, 0.5, 0.5]).view(1, 3, 1, 1), persistent=False)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 BxHxWx3 (or float in 0-255) -> memory tokens."""
        x = images.permute(0, 3, 1, 2).float().div(255) - self.mean
        return self.encoder(x)

    def decode(self, memory: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits B x T x V for every prefix of ``tokens`` (B x T, starting with <bos>)."""
        t = tokens.shape[1]
        mask = torch.ones(t, t, dtype=torch.bool, device=tokens.device).triu(1)  # True = may not attend
        h = self.embed(tokens) + self.pos[:, :t]
        h = self.decoder(h, memory, tgt_mask=mask, tgt_is_causal=True, tgt_key_padding_mask=tokens == PAD_ID)
        return self.head(self.norm(h))

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: logits for ``tokens`` given the images."""
        return self.decode(self.encode(images), tokens)

    @torch.no_grad()
    def generate(self, images: torch.Tensor, beam_size: int = 1, length_penalty: float = 0.0) -> tuple:
        """(token ids B x max_len+1 ending in <eos> then <pad>, total log-probability B) by beam search.

        ``beam_size`` 1 is greedy decoding. Finished beams keep their score; the best beam
        is the one with the highest ``log p / len ** length_penalty``.
        """
        memory = self.encode(images)
        b, k, steps = memory.shape[0], max(1, beam_size), self.max_len + 1
        dev = memory.device
        memory = memory.repeat_interleave(k, dim=0)
        seqs = torch.full((b * k, 1), BOS_ID, dtype=torch.long, device=dev)
        scores = torch.zeros(b, k, device=dev)
        scores[:, 1:] = float("-inf")  # all beams start identical: keep one alive at first
        done = torch.zeros(b * k, dtype=torch.bool, device=dev)
        for _ in range(steps):
            logp = self.decode(memory, seqs)[:, -1].float().log_softmax(-1)  # (b*k) x V
            logp[:, PAD_ID] = float("-inf")
            logp[:, BOS_ID] = float("-inf")
            v = logp.shape[1]
            # a finished beam can only continue with <pad>, at no cost
            logp[done] = float("-inf")
            logp[done, PAD_ID] = 0.0
            cand = (scores.view(-1, 1) + logp).view(b, k * v)
            top, idx = cand.topk(k, dim=1)
            beam = idx // v
            tok = idx % v
            rows = (torch.arange(b, device=dev).view(-1, 1) * k + beam).view(-1)
            seqs = torch.cat([seqs[rows], tok.view(-1, 1)], dim=1)
            done = done[rows] | (tok.view(-1) == EOS_ID) | (tok.view(-1) == PAD_ID)
            scores = top
            if bool(done.all()):
                break
        out = seqs[:, 1:]
        if out.shape[1] < steps:
            out = torch.cat([out, torch.full((b * k, steps - out.shape[1]), PAD_ID, device=dev)], dim=1)
        lengths = ((out != PAD_ID).sum(1).clamp_min(1)).float().view(b, k)
        ranked = scores / lengths**length_penalty if length_penalty else scores
        best = ranked.argmax(1)
        pick = torch.arange(b, device=dev) * k + best
        return out[pick], scores.gather(1, best.view(-1, 1)).view(-1)
