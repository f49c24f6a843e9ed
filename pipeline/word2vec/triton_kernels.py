"""Fused Triton kernels for the NS and HS steps of the batched torch path.

Selected with ``torch_kernel: triton`` (:class:`pipeline.word2vec.config.SkipGramConfig`)
for ``output: ns`` or ``hs`` with ``torch_damping: cap`` (skip-gram and CBOW). The full
softmax has no kernel here: it is (B, D) x (D, V) matmuls already.

Shared negatives (``torch_negatives: shared``): the same step as
:func:`pipeline.word2vec.torch_backend.sg_shared_step` (skip-gram) and
:meth:`~pipeline.word2vec.torch_backend.TorchTrainer._ns_shared` (CBOW), in two kernel
launches per step instead of some thirty torch ops:

1. :func:`_hits_kernel`: the damping counts of the step (how many weighted updates each
   input and output row gets), reduced per block on chip: one atomic add per example and
   one per shared negative of a block (not one per (example, negative) term).
2. :func:`_ns_shared_kernel`: one program per block of ``Bb`` examples that share ``N``
   negatives. It gathers the N negative rows once, then walks the block in tiles of
   ``BLOCK_M`` examples: gathers their input and target rows, scores them (row dot
   products for the targets, one (M, D) x (D, N) ``tl.dot`` for the negatives), takes the
   sigmoids, the loss and the gradients, and adds the damped steps of the input and
   target rows. The negatives' steps of all the block's examples are summed in on-chip
   memory ((N, D), ``tl.dot`` of the gradient tile with the inputs) and added once per
   block: N row updates per block instead of Bb N, so the most frequent words (drawn as
   negatives by nearly every block) are not hit by every example. The input and target
   rows that occur several times in a tile (skip-gram pairs come centre by centre, up to
   2 x window pairs with one target in a row; frequent words as contexts) are summed in
   the tile first too (an (M, M) x (M, D) matmul of the equal-row mask), so each
   distinct row of a tile is added once.

Independent logistic terms (:func:`_logistic_kernel`; ``torch_negatives: pair``: a
target and k own negatives per example; HS: the nodes of the Huffman path pieces of
:class:`pipeline.word2vec.torch_backend.HsPieces`): one program per tile of 32 rows
gathers their input vectors and their K output rows column by column, scores them, and
adds the damped output steps with the repeated rows of the tile (the nodes near the
root are on every path) merged on chip as above; the input gradients are summed per
example the same way. The per-row damping factors are one scalar ``index_add_`` before
the launch (:func:`pipeline.word2vec.torch_backend.row_damping`).

Reads and writes: ``direct`` (the default) adds each block's steps straight into the
weights while later blocks may still be reading them, as word2vec's lock-free threads
do; ``staged`` adds them to zeroed buffers and the weights are updated after the
launch, so the step equals the torch path's (all blocks read the weights as they were
before the step): what the tests compare, on CPU with ``TRITON_INTERPRET=1``.

Shapes: B examples per step (a multiple of Bb), D dims, G = B / Bb blocks, N negatives
per block, V rows.
"""

from __future__ import annotations

import os

import torch

try:  # triton comes with the CUDA builds of torch; CPU-only installs lack it
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is missing
    triton = None
    tl = None


def available() -> bool:
    """True when triton is importable."""
    return triton is not None


def interpreted() -> bool:
    """True when triton runs its kernels in the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def unsupported(architecture: str, output: str, damping: str) -> str | None:
    """Why ``torch_kernel: triton`` cannot run these settings (None: it can)."""
    if output not in ("ns", "hs"):
        return f"output {output!r} (the full softmax is batched matmuls already: use torch)"
    if damping != "cap":
        return f"torch_damping {damping!r} (the kernel damps with the fixed cap: use cap)"
    if architecture not in ("sg", "cbow"):
        return f"architecture {architecture!r}"
    return None


if triton is not None:

    @triton.jit
    def _hits_kernel(
        in_rows, tgt, neg, wt, hits_in, hits_out, scale,
        N, BB: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        HAS_IN: tl.constexpr,
    ):  # fmt: skip
        """hits_out[tgt] += wt, hits_in[in_rows] += wt, hits_out[neg] += the block's
        summed valid weights of each negative times ``scale`` (= k / N)."""
        g = tl.program_id(0)
        offs_n = tl.arange(0, BLOCK_N)
        nmask = offs_n < N
        negs = tl.load(neg + g * N + offs_n, mask=nmask, other=0)
        vsum = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for m0 in range(0, BB, BLOCK_M):
            rel = m0 + tl.arange(0, BLOCK_M)
            mmask = rel < BB
            offs_m = g * BB + rel
            t = tl.load(tgt + offs_m, mask=mmask, other=0)
            w = tl.load(wt + offs_m, mask=mmask, other=0.0)
            tl.atomic_add(hits_out + t, w, mask=mmask)
            if HAS_IN:
                r = tl.load(in_rows + offs_m, mask=mmask, other=0)
                tl.atomic_add(hits_in + r, w, mask=mmask)
            # word2vec skips a negative equal to the target
            keep = (negs[None, :] != t[:, None]) & nmask[None, :]
            vsum += tl.sum(tl.where(keep, w[:, None], 0.0), axis=0)
        tl.atomic_add(hits_out + negs, vsum * scale, mask=nmask)

    @triton.jit
    def _damp(hits_ptr, rows, mask, cap):
        """1 / max(1, hits / cap) of ``rows`` (as row_damping)."""
        h = tl.load(hits_ptr + rows, mask=mask, other=0.0)
        return 1.0 / tl.maximum(h / cap, 1.0)

    @triton.jit
    def _mm(a, b, LOW: tl.constexpr, IEEE: tl.constexpr):
        """a @ b in fp32 (``IEEE``), tf32, or bf16 operands (``LOW``), fp32 result."""
        if LOW:
            return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16), out_dtype=tl.float32)
        elif IEEE:
            return tl.dot(a, b, input_precision="ieee")
        else:
            return tl.dot(a, b, input_precision="tf32")

    @triton.jit
    def _log_sigmoid(x):
        return tl.minimum(x, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(x)))

    @triton.jit
    def _merge_rows(rows, steps, BLOCK_M: tl.constexpr):
        """Sum the steps (M, D) of equal ``rows`` (M,) of a tile: returns the sums (each
        row gets the sum of its id's steps, one (M, M) x (M, D) matmul, fp32) and a mask
        of the last occurrence of each id, the one row that adds it."""
        same = rows[:, None] == rows[None, :]  # (M, M)
        later = same & (tl.arange(0, BLOCK_M)[None, :] > tl.arange(0, BLOCK_M)[:, None])
        last = tl.max(tl.where(later, 1, 0), axis=1) == 0
        sums = tl.dot(tl.where(same, 1.0, 0.0), steps, input_precision="ieee")
        return sums, last

    @triton.jit
    def _ns_shared_kernel(
        src_in, in_rows, dst_in, dst_rows, w_out, dst_out, tgt, neg, wt, lr_ptr,
        hits_in, hits_out, loss_ptr, scale, cap, N, D,
        BB: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        BLOCK_D: tl.constexpr, DAMP: tl.constexpr, DAMP_IN: tl.constexpr,
        LOW: tl.constexpr, IEEE: tl.constexpr,
    ):  # fmt: skip
        """One block of the step (see the module docstring); rows are contiguous (D,)."""
        g = tl.program_id(0)
        lr = tl.load(lr_ptr)
        offs_d = tl.arange(0, BLOCK_D)
        dmask = offs_d < D
        offs_n = tl.arange(0, BLOCK_N)
        nmask = offs_n < N
        negs = tl.load(neg + g * N + offs_n, mask=nmask, other=0)
        nd = nmask[:, None] & dmask[None, :]
        vn = tl.load(w_out + negs[:, None] * D + offs_d[None, :], mask=nd, other=0.0)  # (N, D)
        acc_n = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)  # the negatives' steps
        loss = tl.sum(tl.zeros((BLOCK_M,), dtype=tl.float32), axis=0)  # fp32 scalar
        for m0 in range(0, BB, BLOCK_M):
            rel = m0 + tl.arange(0, BLOCK_M)
            mmask = rel < BB
            offs_m = g * BB + rel
            md = mmask[:, None] & dmask[None, :]
            r_in = tl.load(in_rows + offs_m, mask=mmask, other=0)
            t = tl.load(tgt + offs_m, mask=mmask, other=0)
            w = tl.load(wt + offs_m, mask=mmask, other=0.0)
            u = tl.load(src_in + r_in[:, None] * D + offs_d[None, :], mask=md, other=0.0)
            vp = tl.load(w_out + t[:, None] * D + offs_d[None, :], mask=md, other=0.0)
            sp = tl.sum(u * vp, axis=1)  # (M,)
            sn = _mm(u, tl.trans(vn), LOW, IEEE)  # (M, N)
            keep = (negs[None, :] != t[:, None]) & nmask[None, :]
            valid = tl.where(keep, (w * scale)[:, None], 0.0)  # (M, N)
            loss -= tl.sum(_log_sigmoid(sp) * w) + tl.sum(_log_sigmoid(-sn) * valid)
            gp = (1.0 - tl.sigmoid(sp)) * w * lr  # (M,)
            gn = tl.sigmoid(sn) * valid * -lr  # (M, N)
            grad_u = gp[:, None] * vp + _mm(gn, vn, LOW, IEEE)  # (M, D)
            acc_n += _mm(tl.trans(gn), u, LOW, IEEE)  # (N, D) summed on chip
            if DAMP_IN:
                grad_u = grad_u * _damp(hits_in, r_in, mmask, cap)[:, None]
            step_p = gp[:, None] * u  # (M, D)
            if DAMP:
                step_p = step_p * _damp(hits_out, t, mmask, cap)[:, None]
            # rows hit several times in the tile (frequent contexts, the runs of one centre
            # word) are summed on chip first and added once
            r_dst = tl.load(dst_rows + offs_m, mask=mmask, other=-1)
            grad_u, last = _merge_rows(r_dst, grad_u, BLOCK_M)
            keep_in = (mmask & last)[:, None] & dmask[None, :]
            tl.atomic_add(dst_in + r_dst[:, None] * D + offs_d[None, :], grad_u, mask=keep_in)
            step_p, last = _merge_rows(tl.where(mmask, t, -1), step_p, BLOCK_M)
            keep_out = (mmask & last)[:, None] & dmask[None, :]
            tl.atomic_add(dst_out + t[:, None] * D + offs_d[None, :], step_p, mask=keep_out)
        if DAMP:
            acc_n = acc_n * _damp(hits_out, negs, nmask, cap)[:, None]
        tl.atomic_add(dst_out + negs[:, None] * D + offs_d[None, :], acc_n, mask=nd)
        tl.store(loss_ptr + g, loss)

    @triton.jit
    def _logistic_kernel(
        u, row_of, ids, valid, label, w_out, dst_out, grad_u, damp, loss_ptr, lr_ptr, R, D,
        K: tl.constexpr, KP: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
        DAMP: tl.constexpr,
    ):  # fmt: skip
        """BLOCK_M rows of independent logistic terms (see :func:`logistic_update_`)."""
        pid = tl.program_id(0)
        lr = tl.load(lr_ptr)
        offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
        mmask = offs_m < R
        offs_d = tl.arange(0, BLOCK_D)
        dmask = offs_d < D
        md = mmask[:, None] & dmask[None, :]
        ex = tl.load(row_of + offs_m, mask=mmask, other=0)
        ur = tl.load(u + ex[:, None] * D + offs_d[None, :], mask=md, other=0.0)  # (M, D)
        gu = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
        cols = tl.arange(0, KP)[None, :]
        gs = tl.zeros((BLOCK_M, KP), dtype=tl.float32)  # the terms' gradients g
        loss = tl.sum(tl.zeros((BLOCK_M,), dtype=tl.float32), axis=0)  # fp32 scalar
        # all reads of the tile before its writes (a negative may be another row's target)
        for k in tl.static_range(K):  # one column of terms: NS target / negative, HS node
            r = tl.load(ids + offs_m * K + k, mask=mmask, other=0)
            va = tl.load(valid + offs_m * K + k, mask=mmask, other=0.0)
            lab = tl.load(label + offs_m * K + k, mask=mmask, other=0.0)
            v = tl.load(w_out + r[:, None] * D + offs_d[None, :], mask=md, other=0.0)
            sc = tl.sum(ur * v, axis=1)  # (M,)
            loss -= tl.sum(_log_sigmoid(tl.where(lab > 0, sc, -sc)) * va)
            g = (lab - tl.sigmoid(sc)) * va * lr  # (M,)
            gu += g[:, None] * v
            gs = tl.where(cols == k, g[:, None], gs)
        for k in tl.static_range(K):
            r = tl.load(ids + offs_m * K + k, mask=mmask, other=0)
            step = tl.sum(tl.where(cols == k, gs, 0.0), axis=1)[:, None] * ur  # (M, D)
            if DAMP:
                step = step * tl.load(damp + r, mask=mmask, other=0.0)[:, None]
            # rows hit several times in the tile (the nodes near the root, frequent
            # targets and negatives) are summed on chip and added once
            step, last = _merge_rows(tl.where(mmask, r, -1), step, BLOCK_M)
            keep = (mmask & last)[:, None] & dmask[None, :]
            tl.atomic_add(dst_out + r[:, None] * D + offs_d[None, :], step, mask=keep)
        gu, last = _merge_rows(tl.where(mmask, ex, -1), gu, BLOCK_M)
        keep = (mmask & last)[:, None] & dmask[None, :]
        tl.atomic_add(grad_u + ex[:, None] * D + offs_d[None, :], gu, mask=keep)
        tl.store(loss_ptr + pid, loss)


def _pow2(n: int, least: int = 16) -> int:
    return max(least, 1 << max(int(n) - 1, 0).bit_length())


def ns_shared_update_(
    src_in: torch.Tensor,
    in_rows: torch.Tensor,
    dst_in: torch.Tensor,
    dst_rows: torch.Tensor,
    w_out: torch.Tensor,
    dst_out: torch.Tensor,
    tgt: torch.Tensor,
    neg: torch.Tensor,
    wt: torch.Tensor,
    lr: torch.Tensor,
    negative: int,
    cap: float,
    precision: str = "fp32",
    damp_in: bool = True,
) -> torch.Tensor:
    """The fused shared-negative step, in place; returns the loss (0-d float32).

    Example b scores ``src_in[in_rows[b]]`` (D,) against ``w_out[tgt[b]]`` and the N
    negatives ``neg[b // Bb]`` of its block (``neg`` (G, N), B = G Bb); ``wt`` (B,)
    weighs it (0 = padding), ``lr`` is 0-d. Its input step (damped by the input row's
    hits when ``damp_in``) is added to ``dst_in[dst_rows[b]]``, the output steps
    (damped by the output rows' hits) to ``dst_out``; ``cap`` 0 = no damping. All
    tensors on one device, rows contiguous float32, ids int64.
    """
    if triton is None:
        raise RuntimeError("torch_kernel triton: the triton package is not installed")
    g_blocks, n = neg.shape
    b = tgt.shape[0]
    bb = b // g_blocks
    if bb * g_blocks != b:
        raise ValueError(f"{b} examples are not whole blocks of the {g_blocks} negative draws")
    d = w_out.shape[1]
    dev = w_out.device
    damp = cap > 0
    hits_in = torch.zeros(src_in.shape[0] if damp and damp_in else 1, device=dev)
    hits_out = torch.zeros(w_out.shape[0] if damp else 1, device=dev)
    block_m = min(64, _pow2(bb))
    block_n = _pow2(n)
    scale = float(negative) / n
    if damp:
        _hits_kernel[(g_blocks,)](
            in_rows, tgt, neg, wt, hits_in, hits_out, scale, n,
            BB=bb, BLOCK_M=block_m, BLOCK_N=block_n, HAS_IN=damp_in,
        )  # fmt: skip
    loss = torch.empty(g_blocks, dtype=torch.float32, device=dev)
    _ns_shared_kernel[(g_blocks,)](
        src_in, in_rows, dst_in, dst_rows, w_out, dst_out, tgt, neg, wt, lr,
        hits_in, hits_out, loss, scale, float(cap) if damp else 1.0, n, d,
        BB=bb, BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_D=_pow2(d),
        DAMP=damp, DAMP_IN=damp and damp_in, LOW=precision == "bf16",
        IEEE=precision == "fp32",
    )  # fmt: skip
    return loss.sum()


def logistic_update_(
    u: torch.Tensor,
    row_of: torch.Tensor | None,
    ids: torch.Tensor,
    valid: torch.Tensor,
    label: torch.Tensor,
    lr: torch.Tensor,
    w_out: torch.Tensor,
    damp: torch.Tensor | None = None,
    staged: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent logistic terms (pair NS: a target and k negatives per example; HS:
    the nodes of a Huffman path piece), as ``TorchTrainer._logistic`` with cap damping.

    Row r of ``ids`` (R, K) scores ``u[row_of[r]]`` (``u`` (B, D); ``row_of`` None: R = B)
    against its K output rows, term weights ``valid`` (R, K), targets ``label`` (R, K).
    Adds the output steps, times ``damp[row]`` ((V,) per-row factors, None = 1), to
    ``w_out`` in place; returns the input gradient (B, D) and the loss (0-d).
    ``staged``: all rows read ``w_out`` as it was before the call.
    """
    if triton is None:
        raise RuntimeError("torch_kernel triton: the triton package is not installed")
    r, k = ids.shape
    b, d = u.shape
    dev = u.device
    if row_of is None:
        row_of = torch.arange(r, device=dev)
    block_m = 32
    grid = (max(1, -(-r // block_m)),)
    grad_u = torch.zeros_like(u)
    loss = torch.zeros(grid[0], dtype=torch.float32, device=dev)
    dst = torch.zeros_like(w_out) if staged else w_out
    lr = torch.as_tensor(lr, dtype=torch.float32, device=dev).reshape(())
    _logistic_kernel[grid](
        u.contiguous(), row_of.contiguous(), ids.contiguous(),
        valid.to(torch.float32).contiguous(), label.to(torch.float32).contiguous(), w_out,
        dst, grad_u, damp if damp is not None else loss, loss, lr, r, d,
        K=k, KP=_pow2(k, 2), BLOCK_M=block_m, BLOCK_D=_pow2(d), DAMP=damp is not None,
    )  # fmt: skip
    if staged:
        w_out += dst
    return grad_u, loss.sum()


def sg_ns_shared_step_(
    w_in: torch.Tensor,
    w_out: torch.Tensor,
    ctx: torch.Tensor,
    tgt: torch.Tensor,
    neg: torch.Tensor,
    wt: torch.Tensor,
    lr: torch.Tensor,
    negative: int,
    cap: float,
    precision: str = "fp32",
    staged: bool = False,
) -> torch.Tensor:
    """One skip-gram step with shared negatives, updating ``w_in`` and ``w_out`` in place
    (as :func:`pipeline.word2vec.torch_backend.sg_shared_step` + ``apply_step`` with
    ``torch_damping: cap``); returns the loss. ``staged``: every block reads the weights
    of before the step (see the module docstring)."""
    d_in, d_out = (torch.zeros_like(w_in), torch.zeros_like(w_out)) if staged else (w_in, w_out)
    lr = torch.as_tensor(lr, dtype=torch.float32, device=w_in.device).reshape(())
    loss = ns_shared_update_(
        w_in, ctx, d_in, ctx, w_out, d_out, tgt, neg, wt, lr, negative, cap, precision
    )
    if staged:
        w_in += d_in
        w_out += d_out
    return loss


def ns_shared_output_(
    u: torch.Tensor,
    w_out: torch.Tensor,
    tgt: torch.Tensor,
    neg: torch.Tensor,
    wt: torch.Tensor,
    lr: torch.Tensor,
    negative: int,
    cap: float,
    precision: str = "fp32",
    staged: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The output side of a shared-negative step for given inputs ``u`` (B, D) (CBOW's
    context means): updates ``w_out`` in place, returns the undamped input gradient
    (B, D) and the loss (as ``ns_shared_step`` + ``apply_step`` with ``cap``)."""
    rows = torch.arange(u.shape[0], device=u.device)
    grad_u = torch.zeros_like(u)
    d_out = torch.zeros_like(w_out) if staged else w_out
    lr = torch.as_tensor(lr, dtype=torch.float32, device=u.device).reshape(())
    loss = ns_shared_update_(
        u.contiguous(), rows, grad_u, rows, w_out, d_out, tgt, neg, wt, lr, negative, cap,
        precision, damp_in=False,
    )  # fmt: skip
    if staged:
        w_out += d_out
    return grad_u, loss
