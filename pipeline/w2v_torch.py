"""Batched PyTorch path of word2vec (for CUDA; also runs, slowly, on CPU).

Instead of word2vec's one-pair-at-a-time updates, each chunk of about
``torch_chunk_words`` words is turned into training examples on the device in a few
vectorised operations (subsampling, reduced windows, pairs within a sentence), shuffled,
and applied in mini-batches of ``torch_batch_pairs`` examples as sparse SGD steps:
gather the rows, one batched dot product, sigmoid / softmax, and ``index_add_`` of the
gradients (rows hit several times in a batch get the sum, as lock-free word2vec threads
would). No autograd: the gradients are the closed forms of word2vec.

Shapes: B examples per batch, D dims, K = 1 + negatives, L = longest Huffman code.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.skipgram import Corpus, SkipGramConfig, job_seed, make_jobs, negative_distribution


class TorchTrainer:
    """Callable ``(epoch, bar) -> (loss, effective_words, updates)`` on one device.

    Trains the numpy ``weights`` (``syn0`` and ``syn1neg`` or ``syn1``) on ``device`` and
    copies them back after every epoch (so checkpoints see them).
    """

    def __init__(self, corpus: Corpus, cfg: SkipGramConfig, weights, device: str) -> None:
        from pipeline import w2v_kernels as K

        self.cfg = cfg
        self.corpus = corpus
        self.weights = weights
        self.dev = torch.device(device)
        dev = self.dev
        self.words = torch.as_tensor(corpus.words.astype(np.int64), device=dev)
        lengths = np.diff(corpus.bounds)
        sent = np.repeat(np.arange(lengths.shape[0], dtype=np.int64), lengths)
        self.sent = torch.as_tensor(sent, device=dev)
        self.keep = torch.as_tensor(
            K.keep_probabilities(corpus.counts, cfg.sample).astype(np.float32), device=dev
        )
        self.chunks = make_jobs(corpus.bounds, cfg.torch_chunk_words)
        self.w_in = torch.as_tensor(weights["syn0"], device=dev).clone()
        self.out_name = "syn1neg" if cfg.output == "ns" else "syn1"
        self.w_out = torch.as_tensor(weights[self.out_name], device=dev).clone()
        if cfg.output == "ns":
            prob, alias = K.build_alias(negative_distribution(corpus.counts, cfg.ns_exponent))
            self.prob = torch.as_tensor(prob, device=dev)
            self.alias = torch.as_tensor(alias.astype(np.int64), device=dev)
        if cfg.output == "hs":
            from pipeline.skipgram import huffman_tree  # word2vec's tie order, as on CPU

            tree = huffman_tree(corpus)
            self.points = torch.as_tensor(tree.points.astype(np.int64), device=dev)  # (V, L)
            self.labels = 1.0 - torch.as_tensor(tree.codes, device=dev).float()  # (V, L)
            ln = torch.as_tensor(tree.lengths, device=dev)
            self.mask = (
                torch.arange(tree.codes.shape[1], device=dev)[None, :] < ln[:, None]
            ).float()
        self.diverged_lr: float | None = None

    def _damp(self, rows: torch.Tensor, n_rows: int) -> torch.Tensor | None:
        """Per-element factor ``1 / max(1, hits / cap)`` for updates of ``rows``.

        A row hit ``hits`` times in one batch gets the sum of its updates; lock-free
        word2vec threads never stack more than a handful of updates of one row, so sums
        over tens of thousands of hits (frequent words, popular negatives) diverge. Above
        ``torch_dup_cap`` hits per batch, the summed step is scaled down to that many.
        """
        cap = self.cfg.torch_dup_cap
        if cap <= 0:
            return None
        hits = torch.bincount(rows.reshape(-1), minlength=n_rows).to(torch.float32)
        return (1.0 / torch.clamp(hits / cap, min=1.0))[rows]

    # -- output layers: update w_out in place, return (grad of the input (B, D), loss) --
    def _ns(self, u, tgt, lr, gen):
        b, k = tgt.shape[0], self.cfg.negative
        n = self.prob.shape[0]
        idx = torch.randint(0, n, (b, k), device=self.dev, generator=gen)
        coin = torch.rand((b, k), device=self.dev, generator=gen)
        neg = torch.where(coin < self.prob[idx], idx, self.alias[idx])
        ids = torch.cat([tgt[:, None], neg], 1)  # (B, K)
        valid = torch.ones_like(ids, dtype=u.dtype)
        valid[:, 1:] = (neg != tgt[:, None]).to(u.dtype)  # word2vec skips the target
        label = torch.zeros_like(valid)
        label[:, 0] = 1.0
        v = self.w_out[ids]  # (B, K, D)
        s = torch.bmm(v, u[:, :, None]).squeeze(2)  # (B, K)
        loss = -(torch.nn.functional.logsigmoid(torch.where(label > 0, s, -s)) * valid).sum()
        g = (label - torch.sigmoid(s)) * valid * lr  # (B, K)
        grad_u = torch.bmm(g[:, None, :], v).squeeze(1)  # (B, D)
        damp = self._damp(ids, self.w_out.shape[0])
        if damp is not None:
            g = g * damp
        self.w_out.index_add_(
            0, ids.reshape(-1), (g[:, :, None] * u[:, None, :]).reshape(-1, u.shape[1])
        )
        return grad_u, loss

    def _hs(self, u, tgt, lr, gen):
        p = self.points[tgt]  # (B, L)
        m = self.mask[tgt]
        label = self.labels[tgt]
        v = self.w_out[p]  # (B, L, D)
        s = torch.bmm(v, u[:, :, None]).squeeze(2)  # (B, L)
        loss = -(torch.nn.functional.logsigmoid(torch.where(label > 0, s, -s)) * m).sum()
        g = (label - torch.sigmoid(s)) * m * lr
        grad_u = torch.bmm(g[:, None, :], v).squeeze(1)
        damp = self._damp(p, self.w_out.shape[0])
        if damp is not None:
            g = g * damp
        self.w_out.index_add_(
            0, p.reshape(-1), (g[:, :, None] * u[:, None, :]).reshape(-1, u.shape[1])
        )
        return grad_u, loss

    def _softmax(self, u, tgt, lr, gen):
        logits = u @ self.w_out.T  # (B, V)
        logp = torch.log_softmax(logits, 1)
        loss = -logp.gather(1, tgt[:, None]).sum()
        g = -torch.exp(logp)
        g[torch.arange(tgt.shape[0], device=self.dev), tgt] += 1.0
        g *= lr
        grad_u = g @ self.w_out  # (B, D)
        self.w_out += g.T @ u
        return grad_u, loss

    def _step(self, u, tgt, lr, gen):
        return {"ns": self._ns, "hs": self._hs, "softmax": self._softmax}[self.cfg.output](
            u, tgt, lr, gen
        )

    def _batch_size(self) -> int:
        b = self.cfg.torch_batch_pairs
        if self.cfg.output == "softmax":  # (B, V) logits
            b = min(b, max(1, (1 << 24) // self.w_out.shape[0]))
        return b

    def __call__(self, epoch: int, bar) -> tuple[float, int, int]:
        if self.dev.type != "cpu":
            return self._epoch(epoch, bar)
        # On CPU the ops are small: intra-op threads only spin (10-20x slower when shared).
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._epoch(epoch, bar)
        finally:
            torch.set_num_threads(prev)

    @torch.no_grad()
    def _epoch(self, epoch: int, bar) -> tuple[float, int, int]:
        cfg, dev = self.cfg, self.dev
        n_total = self.corpus.num_words
        total = cfg.epochs * n_total
        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        eff = 0
        updates = 0
        bsz = self._batch_size()
        win = cfg.window
        for c in range(self.chunks.shape[0] - 1):
            a = int(self.corpus.bounds[self.chunks[c]])
            z = int(self.corpus.bounds[self.chunks[c + 1]])
            gen = torch.Generator(device=dev)
            gen.manual_seed(job_seed(cfg.seed, epoch, c))
            w, sid = self.words[a:z], self.sent[a:z]
            kept = torch.rand(w.shape[0], device=dev, generator=gen) < self.keep[w]
            w, sid = w[kept], sid[kept]
            n = w.shape[0]
            eff += n
            reach = win - torch.randint(0, win, (n,), device=dev, generator=gen)  # reduced window
            pos = torch.arange(n, device=dev)
            if cfg.architecture == "sg":
                ctx_l, tgt_l = [], []
                for off in range(-win, win + 1):
                    if off == 0:
                        continue
                    j = pos + off
                    ok = (j >= 0) & (j < n) & (abs(off) <= reach)
                    ok[ok.clone()] &= sid[j[ok]] == sid[pos[ok]]
                    ctx_l.append(w[j[ok]])
                    tgt_l.append(w[ok])
                ctx, tgt = torch.cat(ctx_l), torch.cat(tgt_l)
                order = torch.randperm(ctx.shape[0], device=dev, generator=gen)
                ctx, tgt = ctx[order], tgt[order]
                m = ctx.shape[0]
                for s in range(0, m, bsz):
                    lr = (
                        cfg.start_lr
                        - (cfg.start_lr - cfg.min_lr)
                        * (epoch * n_total + a + (z - a) * s / max(m, 1))
                        / total
                    )
                    cb, tb = ctx[s : s + bsz], tgt[s : s + bsz]
                    grad_u, lo = self._step(self.w_in[cb], tb, lr, gen)
                    damp = self._damp(cb, self.w_in.shape[0])
                    if damp is not None:
                        grad_u = grad_u * damp[:, None]
                    self.w_in.index_add_(0, cb, grad_u)
                    loss_sum += lo.double()
                updates += m
            else:
                order = torch.randperm(n, device=dev, generator=gen)
                for s in range(0, n, bsz):
                    lr = (
                        cfg.start_lr
                        - (cfg.start_lr - cfg.min_lr)
                        * (epoch * n_total + a + (z - a) * s / max(n, 1))
                        / total
                    )
                    ib = order[s : s + bsz]  # centre positions (B,)
                    neu1 = torch.zeros((ib.shape[0], cfg.dim), device=dev)
                    cnt = torch.zeros(ib.shape[0], device=dev)
                    ctx_rows = []
                    for off in range(-win, win + 1):
                        if off == 0:
                            continue
                        j = ib + off
                        ok = (j >= 0) & (j < n) & (abs(off) <= reach[ib])
                        ok[ok.clone()] &= sid[j[ok]] == sid[ib[ok]]
                        rows = torch.nonzero(ok).squeeze(1)
                        words_j = w[j[rows]]
                        neu1.index_add_(0, rows, self.w_in[words_j])
                        cnt.index_add_(0, rows, torch.ones_like(rows, dtype=cnt.dtype))
                        ctx_rows.append((rows, words_j))
                    has = cnt > 0
                    sel = torch.nonzero(has).squeeze(1)
                    if sel.numel() == 0:
                        continue
                    h = neu1[sel] / cnt[sel, None] if cfg.cbow_mean else neu1[sel]
                    grad_h, lo = self._step(h, w[ib[sel]], lr, gen)
                    if not cfg.cbow_mean:
                        grad_h = grad_h / cnt[sel, None]
                    full = torch.zeros_like(neu1)
                    full[sel] = grad_h
                    hit = torch.cat([wj for _, wj in ctx_rows])
                    damp = self._damp(hit, self.w_in.shape[0])
                    start = 0
                    for rows, words_j in ctx_rows:
                        upd = full[rows]
                        if damp is not None:
                            upd = upd * damp[start : start + rows.shape[0], None]
                        start += rows.shape[0]
                        self.w_in.index_add_(0, words_j, upd)
                    loss_sum += lo.double()
                    updates += int(sel.numel())
            bar.update(z - a)
        self.weights["syn0"][...] = self.w_in.cpu().numpy()
        self.weights[self.out_name][...] = self.w_out.cpu().numpy()
        loss = float(loss_sum.item())
        if not np.isfinite(loss):
            self.diverged_lr = None
        return loss, eff, updates
