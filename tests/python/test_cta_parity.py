"""CTA in PyTorch (tools/cta_torch.py, used to fine-tune with CTA in the loop) against Sieve's C++ CTA:
same LSH draws from the same seed, same clusters, same embeddings within 1e-4; and with SpAtten's
token pruning in the same forward pass, the same classifier probabilities."""
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tools"))
import cta_torch  # noqa: E402

TEXTS = [
    "A man is playing a guitar on a stage while the crowd sings along with every chorus.",
    "The stock market fell today, and analysts said the drop was driven by weak earnings reports from "
    "several large technology companies, rising interest rates, and worries about slowing growth in "
    "Europe and Asia; bond yields climbed while the dollar weakened against most major currencies.",
    " ".join(["it is a charming and often affecting journey, though the film never quite earns its ending ."] * 6),
]


def torch_embeddings(model_dir, ids, mask, config):
    model = transformers.AutoModel.from_pretrained(str(model_dir)).eval()
    state = cta_torch.attach_cta(model, config) if config is not None else None
    records = []
    if state is not None:
        state.record = records
    with torch.no_grad():
        vectors = []
        for row, keep in zip(ids, mask):  # one sequence at a time: no padding to worry about
            n = sum(keep)
            if state is not None:
                state.lengths = [n]
            out = model(input_ids=torch.tensor([row[:n]]), attention_mask=torch.ones(1, n, dtype=torch.long))
            vectors.append(out.last_hidden_state[0].mean(0).numpy())
    vectors = np.stack(vectors)
    # all-MiniLM-L6-v2's sentence-transformers pipeline ends with Normalize, as Sieve's encode does.
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), records


@pytest.mark.parametrize("w,l,seed,shared", [(24.0, 6, 5, False), (16.0, 4, 11, True)])
def test_torch_cta_equals_sieve(model_dir, encoder, w, l, seed, shared):
    tokens = encoder.tokenize(TEXTS)
    hf = transformers.AutoConfig.from_pretrained(str(model_dir))
    config = cta_torch.CtaConfig(w, l, seed, hf.num_hidden_layers, hf.hidden_size, hf.num_attention_heads, shared=shared)
    spec = f"cta:w={w:g},l={l},seed={seed}" + (",share=layer" if shared else "")

    expected, records = torch_embeddings(model_dir, tokens["input_ids"], tokens["attention_mask"], config)
    got = encoder.encode(TEXTS, policy=spec)
    dense = encoder.encode(TEXTS)
    # The settings compress (the test would be empty otherwise) and CTA changes the output by far
    # more than the tolerance, so agreement is not the dense output agreeing with itself.
    compressed = [k0 < n for _, _, n, k0, _, _ in records]
    assert sum(compressed) > len(records) // 2
    assert np.abs(dense - got).max() > 1e-2
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)


def test_lsh_draws_are_std_mt19937_64():
    # The C++ standard fixes mt19937_64's 10000th output for the default seed.
    assert int(cta_torch.Mt19937_64(5489).draws(10000)[-1]) == 9981545732273789042
    # seed_seq{7, 0, 3, 5, 2}.generate(2 words), as libstdc++ computes it (checked with g++).
    assert cta_torch.seed_seq_generate([7, 0, 3, 5, 2], 2) == [3182400406, 4059833000]


@pytest.mark.parametrize("shared,tokens,start", [(False, 0.5, 1), (True, 0.3, 2)])
def test_torch_cta_with_token_pruning_equals_sieve(model_dir, tmp_path, shared, tokens, start):
    import sieve

    # A classifier on the default model's encoder, its head drawn at random: [CLS] after the last
    # layer is what the pruned tokens must not reach, so the probabilities are the check.
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(str(model_dir), num_labels=3).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(50)  # logits far apart, so a wrong token set shows
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.save_pretrained(tmp_path)
    hf = model.config
    w, l, seed = 12.0, 6, 3
    config = cta_torch.CtaConfig(w, l, seed, hf.num_hidden_layers, hf.hidden_size, hf.num_attention_heads, shared=shared)
    ratios = cta_torch.TokenPruning.progressive(tokens, start, hf.num_hidden_layers)
    state = cta_torch.attach_cta(model, config, cta_torch.TokenPruning(ratios))
    spec = f"spatten:tokens={tokens},start={start}+cta:w={w:g},l={l},seed={seed}" + (",share=layer" if shared else "")

    expected, kept = [], []
    with torch.no_grad():
        for text in TEXTS:  # one at a time: no padding
            ids = tokenizer(text, return_tensors="pt")
            n = ids["input_ids"].shape[1]
            state.lengths = [n]
            expected.append(torch.softmax(model(**ids).logits, -1)[0].numpy())
            kept.append((n, state.pruning.kept[0].numel()))
    got = sieve.Encoder(tmp_path, threads=2).predict_proba(TEXTS, policy=spec)
    # The long texts lost tokens (else this would be the CTA test again), and the output differs
    # from the dense one by far more than the tolerance.
    assert all(k < n for n, k in kept if n > 20)
    dense = sieve.Encoder(tmp_path, threads=2).predict_proba(TEXTS)
    assert np.abs(dense - got).max() > 1e-2
    np.testing.assert_allclose(got, np.stack(expected), atol=1e-4, rtol=0)
