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

Heads are batched: one GEMM gives every head's projections, one sort-based pass per level clusters
every head, and cluster means are sparse-dense products (index_add goes row by row on the CPU).
`python tools/cta_torch.py --check` prints std::mt19937_64's 10000th draw; the parity test with
Sieve is tests/python/test_cta_parity.py.
"""
import math
import warnings

import numpy as np
import torch

# torch 2.x warns that it does not validate sparse tensors; ours are built from in-range indices.
warnings.filterwarnings("ignore", message="Sparse invariant checks")

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


def _cluster_groups(codes):
    """Cluster tables of G independent hashings at once. codes [G, n, l] (float64 bucket numbers):
    rows with equal codes in the same group share a cluster. Returns (table [G, n] int64, clusters [G])
    with each group's clusters numbered from 0."""
    groups, n, l = codes.shape
    # One integer key per row, built a column at a time and renumbered after each, so it stays below
    # G n (torch.unique(dim=0) compares rows one by one, ~10x slower).
    key = torch.arange(groups).view(groups, 1).expand(groups, n).reshape(-1)
    for k in range(l):
        values, column = torch.unique(codes[:, :, k].reshape(-1), return_inverse=True)
        _, key = torch.unique(key * values.numel() + column, return_inverse=True)
    inverse = key.view(groups, n)
    # Keys are ranks with the group id most significant: each group's clusters are one contiguous range.
    first = inverse.min(dim=1).values
    table = inverse - first.unsqueeze(1)
    return table, table.max(dim=1).values + 1


def _padded_rows(table, width, dtype):
    """Each token's row in a [G width] padded cluster layout (group g's cluster c at g * width + c),
    flattened to [G n], and every row's token count (at least 1, so empty padding rows divide safely)."""
    groups = table.shape[0]
    rows = (table + torch.arange(groups).unsqueeze(1) * width).reshape(-1)
    return rows, torch.bincount(rows, minlength=groups * width).clamp(min=1).to(dtype)


def _averaging_matrix(table, width, dtype, per_group_rows=False):
    """Sparse [G width, n] (per_group_rows: [G width, G n]): row g * width + c averages the tokens of
    group g's cluster c (1 / count each), taken from one [n, dw] input shared by every group, or
    from group g's own n rows of a [G n, dw] input. Cluster means are then one sparse-dense product:
    index_add/scatter_add on the CPU go row by row, ~20x slower at these sizes, and the product's
    backward is another product."""
    groups, n = table.shape
    rows, counts = _padded_rows(table, width, dtype)
    cols = torch.arange(groups * n) if per_group_rows else torch.arange(n).repeat(groups)
    shape = (groups * width, groups * n if per_group_rows else n)
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), 1.0 / counts[rows], shape).coalesce()


def cta_attention(x, proj, offsets, w, wq, bq, wk, bk, wv, bv, heads, dropout=None, received=False):
    """One sequence, all heads of a layer (cta_head_attention in cta.cpp for each head, batched).
    Padded cluster rows (past a head's own count) are computed and never read.
    x [n, dw]; proj [n, G, 3, l] = <x, a> for each group's LSH_0/1/2 (fp32), G = heads (the paper's
    per-head reading) or 1 (share=layer); offsets [G, 3, l] float64; wq/wk/wv [heads d, dw] and
    biases (nn.Linear layout). Returns (output [n, heads d], k0, k1, k2 as [G] tensors), and with
    received=True a fifth item: the attention each token receives, sum over heads and queries of
    P_ij ([n], no gradient; what cta.cpp hands the token-pruning policies)."""
    n, groups = proj.shape[0], proj.shape[1]
    d = wq.shape[0] // heads
    with torch.no_grad():
        p = proj.double().permute(1, 0, 2, 3)                                   # [G, n, 3, l]
        ct0, k0 = _cluster_groups(torch.floor((p[:, :, 0] + offsets[:, None, 0]) / w))
        ct1, k1 = _cluster_groups(torch.floor((p[:, :, 1] + offsets[:, None, 1]) / w))
        K0, K1 = int(k0.max()), int(k1.max())
        l = p.shape[-1]
        # LSH_2's projections of the residuals by linearity: <x, a> minus its LSH_1 cluster's mean.
        mean1 = torch.sparse.mm(_averaging_matrix(ct1, K1, p.dtype, per_group_rows=True),
                                p[:, :, 2].reshape(groups * n, l)).view(groups, K1, l)
        shifted = p[:, :, 2] - mean1.gather(1, ct1.unsqueeze(2).expand(groups, n, l))
        ct2, k2 = _cluster_groups(torch.floor((shifted + offsets[:, None, 2]) / w))
        K2 = int(k2.max())
        average0, average1, average2 = (_averaging_matrix(t, k, x.dtype) for t, k in ((ct0, K0), (ct1, K1), (ct2, K2)))
        # C2 = mean over LSH_2 clusters of x - C1[CT1 x]: its C1 part is a sparse [G K2, G K1] average of C1 rows.
        rows2, counts2 = _padded_rows(ct2, K2, x.dtype)
        rows1, _ = _padded_rows(ct1, K1, x.dtype)
        c1_part = torch.sparse_coo_tensor(torch.stack([rows2, rows1]), 1.0 / counts2[rows2], (groups * K2, groups * K1)).coalesce()
    dw = x.shape[1]
    c0 = torch.sparse.mm(average0, x).view(groups, K0, dw)                     # [G, K0, dw]
    c1 = torch.sparse.mm(average1, x)
    c2 = torch.sparse.mm(average2, x) - torch.sparse.mm(c1_part, c1)
    ccat = torch.cat([c1.view(groups, K1, dw), c2.view(groups, K2, dw)], dim=1)  # [G, K1 + K2, dw]

    def project(c, weight, bias, bias_rows):  # [G, k, dw] -> [heads, k, d]
        if groups == 1:
            y = (c[0] @ weight.t()).view(c.shape[1], heads, d).permute(1, 0, 2)
        else:
            y = torch.bmm(c, weight.view(heads, d, -1).transpose(1, 2))
        return y + bias.view(heads, 1, d) * bias_rows

    ones = torch.ones(1, K0, 1, dtype=x.dtype)
    c1_rows = torch.cat([torch.ones(1, K1, 1, dtype=x.dtype), torch.zeros(1, K2, 1, dtype=x.dtype)], dim=1)
    qbar = project(c0, wq, bq, ones) * (1.0 / math.sqrt(d))
    kbar = project(ccat, wk, bk, c1_rows)         # the bias on the C1 rows only (eq. 4)
    vbar = project(ccat, wv, bv, c1_rows)
    sbar = torch.bmm(qbar, kbar.transpose(1, 2))  # [heads, K0, K1 + K2]  (eq. 5)
    key1 = ct1.expand(heads, n) if groups == 1 else ct1
    key2 = (ct2 + K1).expand(heads, n) if groups == 1 else ct2 + K1
    scores = sbar.gather(2, key1.unsqueeze(1).expand(heads, K0, n)) + sbar.gather(2, key2.unsqueeze(1).expand(heads, K0, n))
    probs = torch.softmax(scores, dim=-1)          # per key token (eq. 6)
    values = vbar.gather(1, key1.unsqueeze(2).expand(heads, n, d)) + vbar.gather(1, key2.unsqueeze(2).expand(heads, n, d))
    obar = torch.bmm(probs if dropout is None else dropout(probs), values)  # [heads, K0, d]  (eq. 7-8)
    query = ct0.expand(heads, n) if groups == 1 else ct0
    out = obar.gather(1, query.unsqueeze(2).expand(heads, n, d))
    out = out.permute(1, 0, 2).reshape(n, heads * d)
    if not received:
        return out, k0, k1, k2
    with torch.no_grad():  # every query of cluster c has row c's probabilities: weight rows by |c|
        rows0 = (ct0 + torch.arange(groups).unsqueeze(1) * K0).reshape(-1)
        count0 = torch.bincount(rows0, minlength=groups * K0).view(groups, K0).to(probs.dtype)
        got = (count0.expand(heads, K0).unsqueeze(2) * probs).sum((0, 1))
    return out, k0, k1, k2, got


class TokenPruning:
    """SpAtten's cascade token pruning inside the training forward pass, as
    policies/cascade_pruner.cpp does it (at=ffn, the default): after each layer's attention, every
    token's received attention (summed over heads and queries) is added to its score, which persists
    across layers; the keep_count(layer) highest-scoring tokens survive (ties: the earlier token),
    [CLS] and [SEP] (first and last row) are never candidates, and a pruned token is never attended
    to again. The classifier reads [CLS], so computing the pruned rows' FFN anyway (the batch stays
    rectangular) changes nothing it sees. ratios: the keep ratio of each layer
    (KeepSchedule::progressive)."""

    def __init__(self, ratios):
        self.ratios = list(ratios)
        self.kept, self.scores, self.alive = None, None, []

    @staticmethod
    def progressive(final_ratio, start, num_layers):
        """KeepSchedule::progressive: 1 before `start`, then linearly down to final_ratio at the last layer."""
        if not 0 <= final_ratio <= 1 or not 0 <= start < num_layers:
            raise ValueError("token pruning: tokens must be in [0, 1] and start a layer index")
        return [1.0 if l < start else 1.0 - (1.0 if num_layers - 1 == start else (l - start + 1) / (num_layers - start))
                * (1.0 - final_ratio) for l in range(num_layers)]

    def begin(self, lengths):
        self.kept = [torch.arange(int(n)) for n in lengths]
        self.scores = [torch.zeros(int(n)) for n in lengths]
        self.alive = []  # per layer: [batch, seq] bool, the rows still alive after its decision

    def keep_count(self, layer, prunable):
        r = self.ratios[layer]
        return prunable if r >= 1.0 else min(prunable, math.ceil(r * prunable - 1e-9))

    def after_attention(self, layer, b, received):
        kept, score = self.kept[b], self.scores[b]
        n = score.numel()
        score[kept] += received.to(score.dtype)
        special = (kept == 0) | (kept == n - 1)
        candidates = kept[~special]
        keep = self.keep_count(layer, max(n - 2, 0))
        if keep < candidates.numel():
            order = torch.sort(score[candidates], descending=True, stable=True).indices[:keep]
            self.kept[b] = torch.sort(torch.cat([kept[special], candidates[order]])).values


class CtaSelfAttention(torch.nn.Module):
    """Drop-in for transformers' BertSelfAttention (same query/key/value modules, same weights):
    each sequence of the batch runs CTA on its first `lengths[b]` rows (right padding); the padded
    rows get zeros. Lengths come from `state.lengths` if the caller set it, else from BERT's
    additive attention mask."""

    def __init__(self, original, config, layer, state):
        super().__init__()
        self.query, self.key, self.value, self.dropout = original.query, original.key, original.value, original.dropout
        self.heads = original.num_attention_heads
        self.config, self.layer, self.state = config, layer, state
        dirs = config.directions[layer]                          # [G, 3, l, dw]
        self.register_buffer("directions_t", dirs.reshape(-1, dirs.shape[-1]).t().contiguous(), persistent=False)

    def forward(self, hidden_states, attention_mask=None, head_mask=None, encoder_hidden_states=None,
                encoder_attention_mask=None, past_key_value=None, output_attentions=False):
        batch, seq, _ = hidden_states.shape
        cfg = self.config
        if self.state.lengths is not None:
            lengths = self.state.lengths
        elif attention_mask is not None:  # BERT's additive mask [B, 1, 1, seq]: 0 where kept (right padding)
            lengths = (attention_mask.reshape(batch, -1)[:, -seq:] == 0).sum(1).tolist()
        else:
            lengths = [seq] * batch
        groups = 1 if cfg.shared else self.heads
        pruning = self.state.pruning
        if pruning is not None and self.layer == 0:
            pruning.begin(lengths)
        outputs = []
        for b in range(batch):
            rows = torch.arange(int(lengths[b])) if pruning is None else pruning.kept[b]
            n = rows.numel()
            x = hidden_states[b, rows]
            proj = (x @ self.directions_t).view(n, groups, 3, cfg.l)  # one GEMM: every projection of the layer
            o, k0, k1, k2, *received = cta_attention(
                x, proj, cfg.offsets[self.layer], cfg.w, self.query.weight, self.query.bias, self.key.weight,
                self.key.bias, self.value.weight, self.value.bias, self.heads, self.dropout if self.training else None,
                received=pruning is not None)
            if self.state.record is not None:
                for h in range(self.heads):
                    g = 0 if cfg.shared else h
                    self.state.record.append((self.layer, h, n, int(k0[g]), int(k1[g]), int(k2[g])))
            outputs.append(o.new_zeros(seq, o.shape[1]).index_copy(0, rows, o))
            if pruning is not None:
                pruning.after_attention(self.layer, b, received[0])
        if pruning is not None:
            alive = torch.zeros(batch, seq, dtype=torch.bool)
            for b in range(batch):
                alive[b, pruning.kept[b]] = True
            pruning.alive.append(alive)
        return (torch.stack(outputs),)


class CtaState:
    def __init__(self, pruning=None):
        self.lengths = None
        self.record = None  # a list to append (layer, head, n, k0, k1, k2) to, or None
        self.pruning = pruning  # a TokenPruning, or None


def attach_cta(model, config, pruning=None):
    """Replace the self-attention of every CTA layer of a transformers BERT model (or a model whose
    `base_model` is one) in place; returns the shared state (lengths to override the mask's, and
    a list to record cluster counts in). pruning (a TokenPruning) needs CTA in every layer: the
    received attention that ranks tokens comes from CTA's probabilities."""
    encoder = model.base_model.encoder if hasattr(model, "base_model") else model.encoder
    if pruning is not None and not all(config.on(i) for i in range(len(encoder.layer))):
        raise ValueError("token pruning in the CTA forward pass needs CTA in every layer")
    state = CtaState(pruning)
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
