"""Fused Triton NS kernels against the torch path: one step, one epoch, the settings check.

Without CUDA the kernels run in Triton's CPU interpreter (``TRITON_INTERPRET=1``, set
here before triton is imported); with CUDA they are compiled and run on the GPU. Skipped
where triton is not installed.
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from pipeline.core.config import from_mapping  # noqa: E402
from pipeline.core.errors import ConfigError  # noqa: E402
from pipeline.word2vec import triton_kernels as T  # noqa: E402
from pipeline.word2vec.config import SkipGramConfig  # noqa: E402
from pipeline.word2vec.corpus import make_corpus  # noqa: E402
from pipeline.word2vec.torch_backend import (  # noqa: E402
    TorchTrainer,
    apply_step,
    ns_shared_step,
    row_damping,
    sg_shared_step,
)
from pipeline.word2vec.train import init_weights, train_word2vec  # noqa: E402
from tests.test_skipgram import GROUPS, cfg, planted_corpus, twins_found  # noqa: E402

DEV = "cuda" if torch.cuda.is_available() else "cpu"
TOL = 1e-5  # float32 sums in another order


def _batch(v=40, d=24, blocks=3, bb=96, n=20, seed=0):
    """Weights and one step's examples: targets in runs (as skip-gram's pairs), some
    negatives equal to their block's targets, padding examples of weight 0 at the end;
    ``bb`` above the kernel's 64-example tile and ``n``, ``d`` not powers of two, so that
    tiles and masks are exercised."""
    g = torch.Generator().manual_seed(seed)
    w_in = torch.randn(v, d, generator=g) * 0.3
    w_out = torch.randn(v, d, generator=g) * 0.3
    b = blocks * bb
    ctx = torch.randint(0, v, (b,), generator=g)
    ctx[: b // 3] = 5  # a frequent context row, hit many times per tile
    tgt = torch.randint(0, v, (b // 4,), generator=g).repeat_interleave(4)
    neg = torch.randint(0, v, (blocks, n), generator=g)
    neg[:, 0] = tgt[::bb]  # a negative equal to a target: skipped, as in word2vec
    wt = torch.ones(b)
    wt[-7:] = 0.0
    out = (w_in, w_out, ctx, tgt, neg, wt)
    return tuple(x.to(DEV) for x in out)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


@pytest.mark.parametrize("cap", [0.0, 4.0])
def test_skipgram_step_equals_the_torch_path(cap):
    w_in, w_out, ctx, tgt, neg, wt = _batch()
    lr = torch.tensor(0.05, device=DEV)
    a_in, a_out = w_in.clone(), w_out.clone()
    in_rows, in_step, out_rows, out_step, loss = sg_shared_step(
        a_in, a_out, ctx, tgt, neg, wt, lr, 5, cap, "fp32"
    )
    apply_step(a_in, in_rows, in_step)
    apply_step(a_out, out_rows, out_step)
    b_in, b_out = w_in.clone(), w_out.clone()
    fused = T.sg_ns_shared_step_(b_in, b_out, ctx, tgt, neg, wt, lr, 5, cap, staged=True)
    assert _max_diff(a_in, w_in) > 1e-3 and _max_diff(a_out, w_out) > 1e-3  # a real step
    assert _max_diff(a_in, b_in) < TOL
    assert _max_diff(a_out, b_out) < TOL
    assert float(fused) == pytest.approx(float(loss), rel=1e-5)


def test_cbow_output_step_equals_the_torch_path():
    _, w_out, _, tgt, neg, wt = _batch(seed=1)
    u = torch.randn(tgt.shape[0], w_out.shape[1], device=DEV) * 0.3  # context means
    lr = torch.tensor(0.05, device=DEV)
    a_out = w_out.clone()
    grad_u, rows, step, loss, _ = ns_shared_step(u, a_out, tgt, neg, wt, lr, 5, 4.0, "fp32")
    apply_step(a_out, rows, step)
    b_out = w_out.clone()
    fused_grad, fused_loss = T.ns_shared_output_(u, b_out, tgt, neg, wt, lr, 5, 4.0, staged=True)
    assert _max_diff(grad_u, fused_grad) < TOL
    assert _max_diff(a_out, b_out) < TOL
    assert float(fused_loss) == pytest.approx(float(loss), rel=1e-5)


def test_direct_updates_of_one_tile_equal_the_staged_step():
    # one block of one tile reads all its rows before it writes: direct == staged
    w_in, w_out, ctx, tgt, neg, wt = _batch(blocks=1, bb=48, seed=2)
    lr = torch.tensor(0.05, device=DEV)
    a_in, a_out, b_in, b_out = w_in.clone(), w_out.clone(), w_in.clone(), w_out.clone()
    T.sg_ns_shared_step_(a_in, a_out, ctx, tgt, neg, wt, lr, 5, 4.0, staged=True)
    T.sg_ns_shared_step_(b_in, b_out, ctx, tgt, neg, wt, lr, 5, 4.0)
    assert _max_diff(a_in, b_in) < TOL and _max_diff(a_out, b_out) < TOL


@pytest.mark.parametrize("hs", [False, True])
def test_logistic_terms_equal_the_torch_path(hs):
    # pair NS (R = B examples, a target and 5 negatives each) and HS path pieces (R pieces
    # of B examples, K nodes, padded), 170 rows: several 32-row tiles of the kernel
    ids0, vocab = planted_corpus(sentences=20)
    c = _small(torch_negatives="pair", torch_dup_cap=4.0)
    trainer = TorchTrainer(make_corpus(ids0, vocab, 1000), c, init_weights(c, vocab), DEV)
    g = torch.Generator().manual_seed(3)
    b, r, k, d = 120, 170, 6, c.dim
    u = torch.randn(b, d, generator=g) * 0.3
    w_out = torch.randn(vocab, d, generator=g) * 0.3
    if hs:
        row_of = torch.sort(torch.randint(0, b, (r,), generator=g)).values
        ids = torch.randint(0, vocab, (r, k), generator=g)
        valid = (torch.arange(k)[None, :] < torch.randint(1, k + 1, (r, 1), generator=g)).float()
        label = torch.randint(0, 2, (r, k), generator=g).float() * valid
    else:
        row_of, r = None, b
        ids = torch.randint(0, vocab, (b, k), generator=g)
        ids[:, 0] = torch.randint(0, vocab, (b // 4,), generator=g).repeat_interleave(4)
        valid = torch.ones(b, k)
        valid[:, 1:] = (ids[:, 1:] != ids[:, :1]).float()
        label = torch.zeros(b, k)
        label[:, 0] = 1.0
    u, w_out, ids, valid, label = (x.to(DEV) for x in (u, w_out, ids, valid, label))
    row_of = None if row_of is None else row_of.to(DEV)
    trainer.w_out = w_out.clone()
    grad, loss = trainer._logistic(u, ids, valid, label, 0.05, label > 0, row_of)
    fused_out = w_out.clone()
    damp = row_damping(ids, valid, vocab, 4.0)
    fused_grad, fused_loss = T.logistic_update_(
        u, row_of, ids, valid, label, torch.tensor(0.05), fused_out, damp, staged=True
    )
    assert _max_diff(trainer.w_out, w_out) > 1e-3  # a real step
    assert _max_diff(trainer.w_out, fused_out) < TOL
    assert _max_diff(grad, fused_grad) < TOL
    assert float(fused_loss) == pytest.approx(float(loss), rel=1e-5)


def _small(**kw) -> SkipGramConfig:
    base = dict(backend="torch", torch_negatives="shared", torch_damping="cap",
                torch_dup_cap=8.0, torch_shared_negatives=16, device=DEV)  # fmt: skip
    base.update(kw)
    return cfg(**base)


@pytest.mark.parametrize(
    "kw",
    [
        dict(architecture="sg"),
        dict(architecture="cbow"),
        dict(architecture="sg", torch_negatives="pair"),
        dict(architecture="sg", output="hs", torch_batch_pairs=16),
        dict(architecture="cbow", output="hs", torch_batch_pairs=16),
    ],
    ids=["sg-shared", "cbow-shared", "sg-pair", "sg-hs", "cbow-hs"],
)
def test_an_epoch_with_the_kernel_equals_the_torch_path(kw):
    # steps of one tile (32 examples, or 16 HS targets: at most 32 path pieces): every
    # step reads the weights its predecessor wrote, in both paths, so a whole epoch must
    # agree to float tolerance
    ids, vocab = planted_corpus(sentences=25)
    kw = dict(epochs=1, torch_batch_pairs=32, torch_shared_block=32) | kw
    ref = train_word2vec(ids, vocab, _small(**kw), progress=False)
    fused = train_word2vec(ids, vocab, _small(**kw, torch_kernel="triton"), progress=False)
    assert _max_diff(torch.as_tensor(ref.vectors), torch.as_tensor(fused.vectors)) < 1e-4
    assert fused.loss_per_epoch[0] == pytest.approx(ref.loss_per_epoch[0], rel=1e-4)


@pytest.mark.slow
def test_the_kernel_learns_the_planted_structure():
    # four blocks per step, each adding its steps while the others read (word2vec's
    # lock-free updates): learns as the torch path does (about 45 s in the interpreter)
    ids, vocab = planted_corpus(sentences=600)
    c = _small(torch_batch_pairs=256, torch_shared_block=64, torch_kernel="triton")
    res = train_word2vec(ids, vocab, c, progress=False)
    assert twins_found(res.vectors) >= GROUPS - 1
    ref = train_word2vec(
        ids, vocab, _small(torch_batch_pairs=256, torch_shared_block=64), progress=False
    )
    assert res.loss_per_epoch[-1] == pytest.approx(ref.loss_per_epoch[-1], rel=0.05)


@pytest.mark.parametrize(
    "kw, named",
    [
        (dict(output="softmax"), "output 'softmax'"),
        (dict(torch_damping="curvature"), "torch_damping 'curvature'"),
        (dict(output="hs", torch_damping="curvature"), "torch_damping 'curvature'"),
    ],
)
def test_settings_the_kernel_cannot_run_are_config_errors(kw, named):
    ids, vocab = planted_corpus(sentences=20)
    with pytest.raises(ConfigError, match=f"skipgram.torch_kernel: triton cannot run {named}"):
        train_word2vec(ids, vocab, _small(**{**kw, "torch_kernel": "triton"}), progress=False)


@pytest.mark.skipif(DEV == "cuda", reason="the device check is for machines without CUDA")
def test_the_kernel_on_cpu_needs_the_interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    ids, vocab = planted_corpus(sentences=20)
    with pytest.raises(ConfigError, match="device cpu"):
        train_word2vec(ids, vocab, _small(torch_kernel="triton"), progress=False)


def test_torch_kernel_is_validated():
    with pytest.raises(ConfigError, match="torch_kernel"):
        from_mapping(SkipGramConfig, {"torch_kernel": "cuda"}, where="skipgram")
    assert SkipGramConfig().torch_kernel == "torch"


COMPILE_FOR_SM90 = """
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from pipeline.word2vec import triton_kernels as T

P, I = "*fp32", "*i64"
def build(fn, sig, const):
    src = ASTSource(fn=fn, signature={**sig, **{k: "constexpr" for k in const}}, constexprs=const)
    triton.compile(src, target=GPUTarget("cuda", 90, 32))
build(T._hits_kernel, dict(in_rows=I, tgt=I, neg=I, wt=P, hits_in=P, hits_out=P, scale="fp32",
      N="i32"), dict(BB=64, BLOCK_M=16, BLOCK_N=16, HAS_IN=True))
build(T._ns_shared_kernel, dict(src_in=P, in_rows=I, dst_in=P, dst_rows=I, w_out=P, dst_out=P,
      tgt=I, neg=I, wt=P, lr_ptr=P, hits_in=P, hits_out=P, loss_ptr=P, scale="fp32", cap="fp32",
      N="i32", D="i32"), dict(BB=64, BLOCK_M=32, BLOCK_N=16, BLOCK_D=32, DAMP=True, DAMP_IN=True,
      LOW=False, IEEE=True))
build(T._logistic_kernel, dict(u=P, row_of=I, ids=I, valid=P, label=P, w_out=P, dst_out=P,
      grad_u=P, damp=P, loss_ptr=P, lr_ptr=P, R="i32", D="i32"), dict(K=3, KP=4, BLOCK_M=32,
      BLOCK_D=32, DAMP=True))
print("compiled")
"""


@pytest.mark.slow
def test_the_kernels_compile_for_an_h100_without_one():
    # the interpreter does not type-check or lower the kernels; Triton's compiler (with
    # the ptxas it ships) does, for a GPU target, with no GPU present (minutes on 2 cores)
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    out = subprocess.run([sys.executable, "-c", COMPILE_FOR_SM90], capture_output=True,
                         text=True, env=env, timeout=1200, cwd=Path(__file__).parents[1])  # fmt: skip
    assert out.returncode == 0 and "compiled" in out.stdout, out.stderr[-3000:]
