"""sieve.Encoder.classify: a tiny random classifier written by transformers (always available), and the
fine-tuned models/minilm-sst2 when it is there; both against the CLI and transformers."""
import json
import shutil

import numpy as np
import pytest

import sieve
from conftest import ROOT, run_cli

TEXTS = ["a gripping, beautiful film", "a dull, lifeless mess", "it was fine, I guess", "short"]


@pytest.fixture(scope="module")
def tiny_classifier(model_dir, tmp_path_factory):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    out = tmp_path_factory.mktemp("tiny-classifier")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=512, num_labels=3,
                                     id2label={0: "negative", 1: "neutral", 2: "positive"},
                                     label2id={"negative": 0, "neutral": 1, "positive": 2})
    model = transformers.BertForSequenceClassification(config).eval()
    with torch.no_grad():  # logits far enough apart to tell the classes
        model.classifier.weight.mul_(20)
    model.save_pretrained(out, safe_serialization=True)
    for name in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        if (model_dir / name).exists():
            shutil.copy(model_dir / name, out / name)
    tokenizer = transformers.BertTokenizerFast.from_pretrained(out)
    with torch.no_grad():
        batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
        reference = torch.softmax(model(**batch).logits, dim=-1).numpy()
    return out, reference


def cli_classify(cli, model, texts):
    lines = run_cli(cli, "classify", "--model", str(model), "--threads", "2", *texts).stdout.splitlines()
    return [json.loads(line) for line in lines]


def test_tiny_classifier_matches_transformers_and_cli(tiny_classifier, cli):
    model, reference = tiny_classifier
    m = sieve.Encoder(model, threads=2)
    assert m.num_labels == 3
    results = m.classify(TEXTS)
    probabilities = m.predict_proba(TEXTS)
    assert probabilities.dtype == np.float32 and probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities, reference, atol=1e-5)
    for r, p in zip(results, probabilities):
        assert r["label"] == ["negative", "neutral", "positive"][int(np.argmax(p))]
        assert r["score"] == pytest.approx(float(p.max()))
        assert list(r["probabilities"]) == ["negative", "neutral", "positive"]
    for r, c in zip(results, cli_classify(cli, model, TEXTS)):
        assert r["label"] == c["label"]
        for label, value in c["probabilities"].items():
            assert r["probabilities"][label] == pytest.approx(value, rel=1e-6, abs=1e-7)
    stats = m.last_stats
    assert stats["texts"] == 4 and stats["layers_run"] == 8 and stats["gflops"] > 0
    single = m.classify(TEXTS[0])
    assert single["label"] == results[0]["label"]
    with pytest.raises(sieve.InputError):
        m.classify([None])
    assert m.classify(TEXTS)[1] == results[1]


def test_pruned_classification_computes_less(tiny_classifier):
    model, _ = tiny_classifier
    m = sieve.Encoder(model, threads=2)
    long_texts = [" ".join(TEXTS * 10)] * 2
    m.classify(long_texts)
    dense = m.last_stats["tokens_computed"]
    m.classify(long_texts, policy="spatten:tokens=0.3,start=1")
    assert m.last_stats["tokens_computed"] < dense


SST2 = ROOT / "models" / "minilm-sst2"


@pytest.mark.skipif(not (SST2 / "model.safetensors").exists(), reason="models/minilm-sst2 is not in this checkout")
def test_minilm_sst2_equals_cli(cli):
    m = sieve.Encoder(SST2, threads=2)
    results = m.classify(TEXTS)
    assert results[0]["label"] != results[1]["label"]
    for r, c in zip(results, cli_classify(cli, SST2, TEXTS)):
        assert r["label"] == c["label"]
        for label, value in c["probabilities"].items():
            assert r["probabilities"][label] == pytest.approx(value, rel=1e-6, abs=1e-7)
