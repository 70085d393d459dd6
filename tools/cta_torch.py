"""Compressed token attention (CTA) in PyTorch, with exactly Sieve's LSH draws, so a classifier can
be fine-tuned with CTA in its forward pass (the paper's recipe, section V "Methodology": the
approximation is differentiable and the model is fine-tuned with it) and then served by Sieve
with the same `cta:w=..,l=..,seed=..` spec.

The specification is `src/attention/cta.{h,cpp}`; this file mirrors it piece by piece:
  - LSH families: std::mt19937_64 seeded per (seed, layer, head, level) through std::seed_seq,
    N(0,1) by Box-Muller and U(0,1) from the top 53 bits (CtaConfig::make, LshFamily);
  - codes floor((<x, a> + b) / w) in double from fp32 projections; LSH_2 hashes the residuals
    x - C1[CT1 x], its projections taken by linearity (<x, a> minus the LSH_1 cluster's mean);
  - centroids C0, C1 (means of X) and C2 (means of the residuals); Qbar = C0 Wq + bq,
    [Kbar; Vbar] = [C1; C2] [Wk Wv] with the bias on the C1 rows only;
  - recovered scores S_ij = Sbar[CT0 i, CT1 j] + Sbar[CT0 i, k1 + CT2 j], softmax over key tokens,
    output O_i = sum_j P_ij (Vbar[CT1 j] + Vbar[k1 + CT2 j]) for i's query cluster. This is eq. 7-8's
    AP Vbar / Z written per key token (the same sums; the C++ groups equal (CT1, CT2) pairs).
Gradients: the cluster tables are piecewise constant in X (no gradient, as in the paper); everything
after them (means, projections, softmax) is differentiable, so gradients reach X and the weights
through the centroids.

`python tools/cta_torch.py --check` prints the first draws for a quick look; the parity test with
Sieve is tests/python/test_cta_parity.py.
"""
import math

import numpy as np
import torch

MASK64 = (1 << 64) - 1
MASK32 = (1 << 32) - 1


class Mt19937_64:
    """std::mt19937_64 (the C++ standard fixes every constant and the seeding), numpy-vectorized."""
    N, M = 312, 156
    MATRIX_A = np.uint64(0xB5026F5AA96619E9)
    UPPER, LOWER = np.uint64(0xFFFFFFFF80000000), np.uint64(0x7FFFFFFF)

    def __init__(self, seed):
        mt = [seed & MASK64]
        for i in range(1, self.N):
            prev = mt[-1]
            mt.append((6364136223846793005 * (prev ^ (prev >> 62)) + i) & MASK64)
        self.mt = np.array(mt, dtype=np.uint64)
        self.index = self.N

    def _twist(self):
        mt, n, m = self.mt, self.N, self.M
        one = np.uint64(1)

        def step(lo, hi, nxt, far):  # mt[lo:hi] from mt[lo:hi], mt[nxt], mt[far] (in place, in order)
            y = (mt[lo:hi] & self.UPPER) | (nxt & self.LOWER)
            mt[lo:hi] = far ^ (y >> one) ^ np.where((y & one) != 0, self.MATRIX_A, np.uint64(0))

        # i in [0, n - m): mt[i + m] is still the old value; i in [n - m, n - 1): mt[i + m - n] is new.
        step(0, n - m, mt[1:n - m + 1].copy(), mt[m:n].copy())
        step(n - m, n - 1, mt[n - m + 1:n].copy(), mt[0:m - 1].copy())
        step(n - 1, n, mt[0:1].copy(), mt[m - 1:m].copy())
        self.index = 0

    def draws(self, count):
        out = np.empty(count, dtype=np.uint64)
        filled = 0
        while filled < count:
            if self.index >= self.N:
                self._twist()
            take = min(count - filled, self.N - self.index)
            out[filled:filled + take] = self.mt[self.index:self.index + take]
            self.index += take
            filled += take
        y = out
        y = y ^ ((y >> np.uint64(29)) & np.uint64(0x5555555555555555))
        y = y ^ ((y << np.uint64(17)) & np.uint64(0x71D67FFFEDA60000))
        y = y ^ ((y << np.uint64(37)) & np.uint64(0xFFF7EEE000000000))
        return y ^ (y >> np.uint64(43))


def seed_seq_generate(values, count):
    """std::seed_seq{values...}.generate(count words): the standard's algorithm, mod 2^32."""
    n, s = count, len(values)
    b = [0x8B8B8B8B] * n
    t = 11 if n >= 623 else 7 if n >= 68 else 5 if n >= 39 else 3 if n >= 7 else (n - 1) // 2
    p = (n - t) // 2
    q = p + t
    m = max(s + 1, n)

    def T(x):
        return x ^ (x >> 27)

    for k in range(m):
        r1 = (1664525 * T(b[k % n] ^ b[(k + p) % n] ^ b[(k - 1) % n])) & MASK32
        r2 = (r1 + (s if k == 0 else (k % n + values[k - 1]) if k <= s else k % n)) & MASK32
        b[(k + p) % n] = (b[(k + p) % n] + r1) & MASK32
        b[(k + q) % n] = (b[(k + q) % n] + r2) & MASK32
        b[k % n] = r2
    for k in range(m, m + n):
        r3 = (1566083941 * T((b[k % n] + b[(k + p) % n] + b[(k - 1) % n]) & MASK32)) & MASK32
        r4 = (r3 - k % n) & MASK32
        b[(k + p) % n] ^= r3
        b[(k + q) % n] ^= r4
        b[k % n] = r4
    return b


def lsh_family(dim, l, w, seed):
    """LshFamily(dim, l, w, seed): directions [l, dim] float32, offsets [l] float64."""
    rng = Mt19937_64(seed)
    raw = rng.draws(l * (2 * dim + 1)).reshape(l, 2 * dim + 1)
    uniform = [[int(v >> np.uint64(11)) * 2.0 ** -53 for v in row] for row in raw]
    directions = np.empty((l, dim), dtype=np.float32)
    offsets = np.empty(l, dtype=np.float64)
    for k, row in enumerate(uniform):
        # Box-Muller with the C library's log/cos (math calls libm, as std::log/std::cos do).
        directions[k] = [math.sqrt(-2.0 * math.log(1.0 - row[2 * c])) * math.cos(2.0 * math.pi * row[2 * c + 1])
                         for c in range(dim)]
        offsets[k] = row[2 * dim] * w
    return directions, offsets


class CtaConfig:
    """CtaConfig::make: one LSH_0/1/2 triple per (layer, head), or per layer with shared=True.
    directions[layer]: float32 [H, 3, l, hidden]; offsets[layer]: float64 [H, 3, l] (H = 1 if shared)."""

    def __init__(self, w, l, seed, num_layers, hidden, heads, layers=None, shared=False):
        if not (w > 0 and math.isfinite(w)) or l <= 0:
            raise ValueError("cta: w must be a positive number and l a positive integer")
        self.w, self.l, self.seed, self.shared, self.heads = float(w), int(l), int(seed), bool(shared), int(heads)
        enabled = set(range(num_layers)) if layers is None else set(layers)
        self.directions, self.offsets = {}, {}
        draw_heads = 1 if shared else heads
        for layer in sorted(enabled):
            dirs = np.empty((draw_heads, 3, l, hidden), dtype=np.float32)
            offs = np.empty((draw_heads, 3, l), dtype=np.float64)
            for h in range(draw_heads):
                for level in range(3):
                    words = seed_seq_generate([seed & MASK32, (seed >> 32) & MASK32, layer, h, level], 2)
                    dirs[h, level], offs[h, level] = lsh_family(hidden, l, w, (words[0] << 32) | words[1])
            self.directions[layer] = torch.from_numpy(dirs)
            self.offsets[layer] = torch.from_numpy(offs)

    def on(self, layer):
        return layer in self.directions


def _cluster(codes):
    """Rows with equal codes share a cluster: (table [n] int64, number of clusters)."""
    _, table = torch.unique(codes, dim=0, return_inverse=True)
    return table, int(table.max()) + 1


def _means(rows, table, k):
    sums = torch.zeros(k, rows.shape[1], dtype=rows.dtype).index_add(0, table, rows)
    counts = torch.bincount(table, minlength=k).to(rows.dtype).unsqueeze(1)
    return sums / counts


def cta_head_attention(x, proj, offsets, w, wq, bq, wk, bk, wv, bv, scale, dropout=None):
    """One sequence, one head (cta_head_attention in cta.cpp). x [n, dw]; proj [n, 3, l] = <x, a>
    for LSH_0/1/2 (fp32); offsets [3, l] float64; wq/wk/wv [d, dw] and biases [d] (nn.Linear layout).
    Returns (output [n, d], (k0, k1, k2))."""
    with torch.no_grad():
        p = proj.double()
        ct0, k0 = _cluster(torch.floor((p[:, 0] + offsets[0]) / w))
        ct1, k1 = _cluster(torch.floor((p[:, 1] + offsets[1]) / w))
        residual_mean = _means(p[:, 2], ct1, k1)
        ct2, k2 = _cluster(torch.floor(((p[:, 2] - residual_mean[ct1]) + offsets[2]) / w))
    c0 = _means(x, ct0, k0)
    c1 = _means(x, ct1, k1)
    c2 = _means(x - c1[ct1], ct2, k2)
    ccat = torch.cat([c1, c2])
    qbar = c0 @ wq.t() + bq
    bias_rows = torch.cat([torch.ones(k1, 1, dtype=x.dtype), torch.zeros(k2, 1, dtype=x.dtype)])
    kbar = ccat @ wk.t() + bias_rows * bk
    vbar = ccat @ wv.t() + bias_rows * bv
    sbar = (qbar * scale) @ kbar.t()                       # [k0, k1 + k2]   (eq. 5)
    scores = sbar[:, ct1] + sbar[:, k1 + ct2]              # [k0, n]         (eq. 6, per key token)
    probs = torch.softmax(scores, dim=-1)
    if dropout is not None:
        probs = dropout(probs)
    values = vbar[ct1] + vbar[k1 + ct2]                     # [n, d]          (eq. 4)
    obar = probs @ values                                   # [k0, d]         (eq. 7-8)
    return obar[ct0], (k0, k1, k2)


class CtaSelfAttention(torch.nn.Module):
    """Drop-in for transformers' BertSelfAttention (same query/key/value modules, same weights):
    each sequence of the batch runs CTA on its first `lengths[b]` rows (right padding); the padded
    rows get zeros. The caller sets `state.lengths` before each forward (CtaBert does)."""

    def __init__(self, original, config, layer, state):
        super().__init__()
        self.query, self.key, self.value, self.dropout = original.query, original.key, original.value, original.dropout
        self.heads = original.num_attention_heads
        self.head_dim = original.attention_head_size
        self.config, self.layer, self.state = config, layer, state
        dirs = config.directions[layer]                          # [H, 3, l, dw]
        self.register_buffer("directions_t", dirs.reshape(-1, dirs.shape[-1]).t().contiguous(), persistent=False)

    def forward(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, past_key_value=None, output_attentions=False):
        batch, seq, dw = hidden_states.shape
        cfg, d, l = self.config, self.head_dim, self.config.l
        lengths = self.state.lengths if self.state.lengths is not None else [seq] * batch
        offsets = cfg.offsets[self.layer]
        out = hidden_states.new_zeros(batch, seq, self.heads * d)
        rows = []
        for b in range(batch):
            n = int(lengths[b])
            x = hidden_states[b, :n]
            proj = (x @ self.directions_t).reshape(n, -1, 3, l)  # one GEMM for every head's projections
            heads_out = []
            for h in range(self.heads):
                g = 0 if cfg.shared else h
                cols = slice(h * d, (h + 1) * d)
                o, ks = cta_head_attention(
                    x, proj[:, g], offsets[g], cfg.w, self.query.weight[cols], self.query.bias[cols],
                    self.key.weight[cols], self.key.bias[cols], self.value.weight[cols], self.value.bias[cols],
                    1.0 / math.sqrt(d), self.dropout if self.training else None)
                heads_out.append(o)
                if self.state.record is not None:
                    self.state.record.append((self.layer, h, n) + ks)
            rows.append(torch.cat(heads_out, dim=1))
        for b, r in enumerate(rows):
            out = out.index_copy(0, torch.tensor([b]), torch.nn.functional.pad(r, (0, 0, 0, seq - r.shape[0])).unsqueeze(0))
        return (out,)


class CtaState:
    def __init__(self):
        self.lengths = None
        self.record = None  # a list to append (layer, head, n, k0, k1, k2) to, or None


def attach_cta(model, config):
    """Replace the self-attention of every CTA layer of a transformers BERT model (or a model whose
    `base_model` is one) in place; returns the shared state whose `lengths` the caller sets."""
    encoder = model.base_model.encoder if hasattr(model, "base_model") else model.encoder
    state = CtaState()
    for i, layer in enumerate(encoder.layer):
        if config.on(i):
            layer.attention.self = CtaSelfAttention(layer.attention.self, config, i, state)
    return state


def rl_ra(record, dw, d):
    """RL and RA over recorded heads (the C++ CtaCounts definitions): linear MACs
    (k0 + 2 (k1 + k2)) dw d against 3 n dw d, attention 2 k0 (k1 + k2) d against 2 n^2 d."""
    lin = sum((k0 + 2 * (k1 + k2)) * dw * d for _, _, _, k0, k1, k2 in record)
    lin_dense = sum(3 * n * dw * d for _, _, n, *_ in record)
    att = sum(2 * k0 * (k1 + k2) * d for _, _, _, k0, k1, k2 in record)
    att_dense = sum(2 * n * n * d for _, _, n, *_ in record)
    return lin / max(lin_dense, 1), att / max(att_dense, 1)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="print std::mt19937_64's 10000th draw (must be 9981545732273789042)")
    args = ap.parse_args()
    if args.check:
        print(int(Mt19937_64(5489).draws(10000)[-1]))
