"""LSTA (Long Short-Term Attention) and class-activation pooling, batch-first and for any H x W.

This is the RGB LSTA cell of Sudhakaran et al. (CVPR 2019) as its paper and released code define it, plus the
class-activation pooling (CAP) family that EgoACO builds on (reconstructed here: no EgoACO code was released).
Everything works on frame features ``(B, T, C, H, W)`` (batch-first; the reference loops over a time-major
``(T, B, ...)`` tensor).

Pieces, in reading order:

    Dictionary                K learnable class vectors over C channels (LSTA: the ImageNet fc); it scores a
                              pooled feature, picks a class (hard top-1, or a soft mixture) and turns that
                              class vector into a 1 x H x W class-activation map (CAM).
    class_activation_pooling  CAP: softmax over H*W of the CAM, then attention-weighted spatial pooling.
    AttentionRecurrence       the 1-channel ConvLSTM that smooths the CAM over time (LSTA's attention memory).
    LSTACell                  one LSTA step: attention recurrence, attention-pooled input, ConvLSTM memory with
                              the output-pooling ("re-designed") output gate.
    LSTA                      the cell unrolled over T with a dictionary; descriptor GAP(c_T).
    TemporallyCoherentAttention  the attention recurrence alone, pooling X_t with it, mean over T (EgoACO d_obj).
    ClassActivationPooling    per-frame CAP, mean over T (EgoACO d_ctx).

Deviations from the released LSTA code, all deliberate:
    * any H x W (softmax over H*W, global average pooling instead of ``AvgPool2d(7)``);
    * input channels C and memory channels M may differ: the output-gate conv on the re-weighted memory maps
      M -> M and the coupling dictionary D' maps C -> K (the reference declares them the other way round,
      which only works when C = M = 512);
    * D' (coupling) is a fixed random buffer rather than a parameter: it only feeds an argmax, so it never
      receives a gradient in the reference either; a buffer says so (and it stays in the state dict);
    * the dictionary bias only shifts the class selection; under hard selection (the default) it gets no
      gradient, so it is a fixed buffer (loaded from the pretrained fc), also under the soft option;
    * the CAM and the LSTA input are computed from the same feature map (the reference takes the CAM from the
      post-BN/ReLU layer4 output and feeds the pre-BN variant of the last block to the cell);
    * the gate kernel size of the memory ConvLSTM is an option (``kernel_size``; the reference uses 3; a 1 x 1
      kernel avoids a slow oneDNN path on the CPU when the final map is 3 x 3 or smaller).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

SELECTIONS = ("hard", "soft")

# --------------------------------------------------------------------------------------------------
# Dictionary and class-activation pooling


class Dictionary(nn.Module):
    """A dictionary of K class vectors over C channels that turns a feature map into a class-activation map.

    Scores ``p = W GAP(X) + b``; hard selection takes ``k* = argmax p`` and the map ``m = sum_c W[k*, c] X[c]``
    (LSTA's CAM: only the selected row receives a gradient); soft selection uses ``softmax(p) @ W`` as the class
    vector (the EgoACO report does not say which: an open choice, offered as a flag, default hard as in LSTA).

    Args:
        in_channels: C, the channels of the feature maps it reads.
        size: K, the number of class vectors.
        selection: ``"hard"`` (top-1, as LSTA) or ``"soft"``.
    """

    def __init__(self, in_channels: int, size: int, *, selection: str = "hard") -> None:
        super().__init__()
        if selection not in SELECTIONS:
            raise ValueError(f"unknown dictionary selection {selection!r}; choose one of {', '.join(SELECTIONS)}")
        self.selection = selection
        self.weight = nn.Parameter(torch.empty(size, in_channels))
        # The bias only shifts which class wins: no gradient under hard selection, kept fixed under soft (buffer).
        self.register_buffer("bias", torch.zeros(size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # as nn.Linear

    @torch.no_grad()
    def copy_from_linear(self, fc: nn.Linear) -> None:
        """Initialise from a pretrained classifier (LSTA: the ImageNet fc is the CAM dictionary)."""
        if fc.weight.shape != self.weight.shape:
            raise ValueError(f"dictionary is {tuple(self.weight.shape)} but the classifier is {tuple(fc.weight.shape)}")
        self.weight.copy_(fc.weight)
        self.bias.copy_(fc.bias if fc.bias is not None else torch.zeros_like(self.bias))

    def class_vector(self, x: Tensor) -> Tensor:
        """The selected class vector of each sample.

        Args:
            x: features ``(N, C, H, W)``.

        Returns:
            ``(N, C)``: row ``argmax p`` of the dictionary (hard) or ``softmax(p) @ W`` (soft).
        """
        p = x.mean((2, 3)) @ self.weight.t() + self.bias  # (N, C) -> (N, K)
        if self.selection == "hard":
            return self.weight[p.argmax(1)]  # (N, C); gradient only into the selected rows
        return p.softmax(1) @ self.weight  # (N, K) @ (K, C) -> (N, C)

    def forward(self, x: Tensor) -> Tensor:
        """Class-activation map.

        Args:
            x: features ``(N, C, H, W)``.

        Returns:
            ``(N, 1, H, W)``: ``sum_c w[c] x[c]`` with ``w`` the selected class vector.
        """
        w = self.class_vector(x)
        return torch.einsum("nc,nchw->nhw", w, x).unsqueeze(1)  # (N, 1, H, W)


def spatial_softmax(m: Tensor) -> Tensor:
    """Softmax over the H*W positions of a one-channel map ``(N, 1, H, W)``; each map sums to 1."""
    return m.flatten(1).softmax(1).view_as(m)


def class_activation_pooling(x: Tensor, dictionary: Dictionary) -> tuple[Tensor, Tensor]:
    """CAP: attention-weighted spatial pooling with the dictionary's class-activation map as attention.

    Args:
        x: features ``(N, C, H, W)``.
        dictionary: a ``Dictionary`` over C channels.

    Returns:
        ``(descriptor (N, C), attention (N, 1, H, W))``; the attention is non-negative and sums to 1 over
        H*W, so the descriptor lies in the convex hull of the spatial feature vectors.
    """
    alpha = spatial_softmax(dictionary(x))  # (N, 1, H, W)
    return (x * alpha).sum((2, 3)), alpha  # (N, C, H, W) -> (N, C)


# --------------------------------------------------------------------------------------------------
# Attention recurrence (LSTA's attention memory)


class AttentionRecurrence(nn.Module):
    """One-channel ConvLSTM over attention maps, driven by a class-activation map (LSTA's attention memory).

    ::

        i, f, o, g = K_s * s_{t-1} + b + K_c * cam_t       (four 1-channel gates, 3x3 convs)
        a_t = sigmoid(f) a_{t-1} + sigmoid(i) tanh(g)      s_t = sigmoid(o) tanh(a_t)
        u_t = softmax_{H*W}(s_t + cam_t)

    The four gate convolutions of each input are fused into one conv with 4 output channels (same
    parameters: 4 x (9 + 1) on ``s`` and 4 x 9 on ``cam`` = 76, as the reference).
    """

    def __init__(self, kernel_size: int = 3) -> None:
        super().__init__()
        self.conv_state = nn.Conv2d(1, 4, kernel_size, padding=kernel_size // 2, bias=True)
        self.conv_cam = nn.Conv2d(1, 4, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, cam: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """One step.

        Args:
            cam: class-activation map ``(N, 1, H, W)``.
            state: ``(a, s)``, each ``(N, 1, H, W)`` (zeros at t = 0).

        Returns:
            ``(u, (a, s))``: attention ``u`` ``(N, 1, H, W)`` summing to 1 over H*W, and the new state.
        """
        a, s = state
        i, f, o, g = (self.conv_state(s) + self.conv_cam(cam)).chunk(4, 1)  # 4 x (N, 1, H, W)
        a = torch.sigmoid(f) * a + torch.sigmoid(i) * torch.tanh(g)
        s = torch.sigmoid(o) * torch.tanh(a)
        return spatial_softmax(s + cam), (a, s)


# --------------------------------------------------------------------------------------------------
# LSTA cell


class LSTACell(nn.Module):
    """One LSTA step: attention recurrence, attention-pooled input, ConvLSTM memory with output pooling.

    ::

        u_t, (a_t, s_t) = AttentionRecurrence(cam_t, (a, s))      X^_t = X_t * u_t   (broadcast over C)
        h = o_{t-1} tanh(c_{t-1})
        i, f, g = sigmoid/sigmoid/tanh(W_h * h + W_x * X^_t + b)    c_t = f c_{t-1} + i g
        p_t = D GAP(c_t) + D' GAP(X^_t)        k* = argmax p_t        c^_t = D[k*] * c_t   (channel re-weighting)
        o_t = sigmoid(W_oh * h + W_oc * c^_t + b_o)

    Args:
        input_dim: C, channels of the frame features.
        memory_dim: M, channels of the memory ``c`` and output gate ``o`` (the report: 512).
        pool_size: K, rows of the output-pooling dictionary D (the report: 300 "output-pooling classes").
        kernel_size: gate kernel of the memory ConvLSTM (reference 3; 1 is the cheap option for maps <= 3x3).
    """

    def __init__(self, input_dim: int, memory_dim: int = 512, pool_size: int = 300, *, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"LSTA kernel_size must be odd, got {kernel_size}")
        self.input_dim, self.memory_dim, self.pool_size = input_dim, memory_dim, pool_size
        pad = kernel_size // 2
        self.attention = AttentionRecurrence()
        self.conv_x = nn.Conv2d(input_dim, 3 * memory_dim, kernel_size, padding=pad, bias=True)  # i, f, g
        self.conv_h = nn.Conv2d(memory_dim, 4 * memory_dim, kernel_size, padding=pad, bias=False)  # i, f, g, o
        self.conv_oc = nn.Conv2d(memory_dim, memory_dim, kernel_size, padding=pad, bias=True)  # o from c^
        self.pool_dict = nn.Parameter(torch.empty(pool_size, memory_dim))  # D
        self.register_buffer("coupling", torch.empty(pool_size, input_dim))  # D' (never receives a gradient)
        nn.init.kaiming_uniform_(self.pool_dict, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.coupling, a=math.sqrt(5))

    def initial_state(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Zero state ``(a, s, c, o)`` for a batch of frame features ``x`` ``(N, C, H, W)``."""
        N, _, H, W = x.shape
        a = x.new_zeros(N, 1, H, W)
        c = x.new_zeros(N, self.memory_dim, H, W)
        return a, a.clone(), c, c.clone()

    def forward(
        self, x: Tensor, cam: Tensor, state: tuple[Tensor, Tensor, Tensor, Tensor]
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor, Tensor]]:
        """One step.

        Args:
            x: frame features ``(N, C, H, W)``.
            cam: class-activation map of this frame ``(N, 1, H, W)``.
            state: ``(a, s, c, o)``: ``(N, 1, H, W)`` x 2 and ``(N, M, H, W)`` x 2.

        Returns:
            ``(u, state)``: attention ``(N, 1, H, W)`` and the new state.
        """
        a, s, c, o = state
        u, (a, s) = self.attention(cam, (a, s))
        x_att = x * u  # (N, C, H, W); scaled by ~1/(H*W) as in the reference (no re-scaling)
        h = o * torch.tanh(c)
        hi, hf, hg, ho = self.conv_h(h).chunk(4, 1)  # 4 x (N, M, H, W)
        xi, xf, xg = self.conv_x(x_att).chunk(3, 1)  # 3 x (N, M, H, W)
        c = torch.sigmoid(hf + xf) * c + torch.sigmoid(hi + xi) * torch.tanh(hg + xg)
        # Output pooling: pick one of K latent classes per sample, re-weight the memory's channels by it.
        p = c.mean((2, 3)) @ self.pool_dict.t() + x_att.mean((2, 3)) @ self.coupling.t()  # (N, K)
        c_hat = self.pool_dict[p.argmax(1)][:, :, None, None] * c  # (N, M, 1, 1) * (N, M, H, W)
        o = torch.sigmoid(ho + self.conv_oc(c_hat))
        return u, (a, s, c, o)


# --------------------------------------------------------------------------------------------------
# Temporal modules over (B, T, C, H, W)


class LSTA(nn.Module):
    """LSTA unrolled over a clip: the dictionary gives each frame's CAM, the cell runs T steps.

    ::

        x (B, T, C, H, W) --per t--> Dictionary -> cam_t (B, 1, H, W) --+
                          \\---------------------------------------------> LSTACell -> c_T -> GAP -> d (B, M)

    The descriptor is ``GAP(c_T)``, the raw final memory (``o_T`` is computed and unused, as in the reference).

    Args:
        cell: the ``LSTACell``.
        dictionary: the CAM dictionary over the cell's ``input_dim`` channels.
    """

    def __init__(self, cell: LSTACell, dictionary: Dictionary) -> None:
        super().__init__()
        self.cell = cell
        self.dictionary = dictionary

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Run the clip.

        Args:
            x: frame features ``(B, T, C, H, W)``.

        Returns:
            ``(descriptor (B, M), attention (B, T, H, W))``.
        """
        B, T, C, H, W = x.shape
        state = self.cell.initial_state(x[:, 0])
        attention = []
        for t in range(T):
            u, state = self.cell(x[:, t], self.dictionary(x[:, t]), state)
            attention.append(u[:, 0])  # (B, H, W)
        c = state[2]
        return c.mean((2, 3)), torch.stack(attention, 1)  # (B, M), (B, T, H, W)


class TemporallyCoherentAttention(nn.Module):
    """Attention pooling whose maps follow LSTA's attention recurrence; mean over time (EgoACO d_obj).

    ``d = mean_t sum_hw alpha_t X_t`` with ``alpha_t = softmax(s_t + m_t)`` and ``m_t`` the dictionary's CAM
    driving the recurrence of ``AttentionRecurrence``. A reconstruction: no EgoACO
    code was released.

    Args:
        dictionary: the CAM dictionary over C channels.
        attention: the attention recurrence.
    """

    def __init__(self, dictionary: Dictionary, attention: AttentionRecurrence) -> None:
        super().__init__()
        self.dictionary = dictionary
        self.attention = attention

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pool a clip.

        Args:
            x: frame features ``(B, T, C, H, W)``.

        Returns:
            ``(descriptor (B, C), attention (B, T, H, W))``.
        """
        B, T, C, H, W = x.shape
        a = x.new_zeros(B, 1, H, W)
        state = (a, a.clone())
        pooled, attention = [], []
        for t in range(T):
            u, state = self.attention(self.dictionary(x[:, t]), state)  # (B, 1, H, W)
            pooled.append((x[:, t] * u).sum((2, 3)))  # (B, C)
            attention.append(u[:, 0])
        return torch.stack(pooled, 1).mean(1), torch.stack(attention, 1)  # (B, T, C) -> (B, C), (B, T, H, W)


class ClassActivationPooling(nn.Module):
    """Per-frame CAP, then the mean over time (EgoACO d_ctx). A reconstruction: no EgoACO code was released.

    Args:
        dictionary: the CAM dictionary over C channels.
    """

    def __init__(self, dictionary: Dictionary) -> None:
        super().__init__()
        self.dictionary = dictionary

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Pool a clip.

        Args:
            x: frame features ``(B, T, C, H, W)``.

        Returns:
            ``(descriptor (B, C), attention (B, T, H, W))``.
        """
        B, T, C, H, W = x.shape
        d, alpha = class_activation_pooling(x.reshape(B * T, C, H, W), self.dictionary)  # (B*T, C), (B*T, 1, H, W)
        return d.view(B, T, C).mean(1), alpha.view(B, T, H, W)
