"""sieve.Encoder against the CLI (bit for bit), sentence-transformers' definitions, threads, bad input."""
import re
import threading
import time

import numpy as np
import pytest

import sieve
from conftest import run_cli

TEXTS = [
    "A man is playing a guitar.",
    "Someone plays an instrument.",
    "The stock market fell today.",
    "Café au lait, naïve résumé — 東京 and emoji 🙂 in one line.",
    "short",
    " ".join(["a very long sentence that goes on and on"] * 60),  # over 256 tokens: truncated
] * 6  # 36 texts: two batches of 32


def cli_embed(cli, tmp_path, texts, *options):
    source = tmp_path / "texts.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out.npy"
    run_cli(cli, "embed", "--file", str(source), "-o", str(out), *options)
    return np.load(out)


@pytest.mark.parametrize("policy", ["dense", "ltp:final=0.004", "spatten:tokens=0.3,heads=0.75"])
def test_encode_equals_cli_bit_for_bit(cli, model_dir, encoder, tmp_path, policy):
    expected = cli_embed(cli, tmp_path, TEXTS, "--model", str(model_dir), "--threads", "2", "--policy", policy)
    got = encoder.encode(TEXTS, policy=policy)
    assert got.dtype == np.float32 and got.shape == expected.shape == (len(TEXTS), 384)
    assert got.flags["C_CONTIGUOUS"] and got.flags["OWNDATA"] is False  # the engine's buffer, not a copy
    np.testing.assert_array_equal(got, expected)
    stats = encoder.last_stats
    assert stats["texts"] == len(TEXTS) and stats["policy"] == policy
    assert stats["truncated_inputs"] == [i for i, t in enumerate(TEXTS) if len(t) > 1000]
    assert stats["gflops"] > 0 and stats["layers_run"] == 6 * len(TEXTS)


def cpu_has_vnni():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            return "avx512_vnni" in handle.read()
    except OSError:
        return False


@pytest.mark.skipif(not cpu_has_vnni(), reason="int8 needs AVX-512 VNNI")
def test_int8_equals_cli_and_stays_close_to_fp32(cli, model_dir, encoder, tmp_path):
    int8 = sieve.Encoder(model_dir, threads=2, precision="int8")
    assert int8.precision == "int8"
    expected = cli_embed(cli, tmp_path, TEXTS, "--model", str(model_dir), "--threads", "2", "--precision", "int8")
    got = int8.encode(TEXTS)
    np.testing.assert_array_equal(got, expected)
    cosine = np.sum(got * encoder.encode(TEXTS), axis=1)  # both unit-normalized
    assert cosine.min() > 0.98 and cosine.mean() > 0.995, cosine


def test_chunked_long_inputs_equal_cli(cli, model_dir, tmp_path):
    m = sieve.Encoder(model_dir, threads=2, long_inputs="chunk", max_length=128, chunk_overlap=16)
    expected = cli_embed(cli, tmp_path, TEXTS[:6], "--model", str(model_dir), "--threads", "2",
                         "--long", "chunk", "--max-length", "128", "--chunk-overlap", "16")
    np.testing.assert_array_equal(m.encode(TEXTS[:6]), expected)
    assert m.last_stats["sequences"] > 6


def test_single_string_and_list_output(encoder):
    one = encoder.encode(TEXTS[0])
    assert one.shape == (384,)
    np.testing.assert_array_equal(one, encoder.encode([TEXTS[0]])[0])
    rows = encoder.encode(TEXTS[:3], convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == 3 and rows[0].shape == (384,)


def test_normalize_and_truncate_dim_as_sentence_transformers(encoder):
    # sentence-transformers' encode: truncate_embeddings(x, truncate_dim) (the first d columns),
    # then, when normalize_embeddings, torch.nn.functional.normalize(x, p=2, dim=1).
    torch = pytest.importorskip("torch")
    full = encoder.encode(TEXTS[:6])
    np.testing.assert_array_equal(encoder.encode(TEXTS[:6], truncate_dim=128), full[:, :128])
    for dim in (None, 64):
        got = encoder.encode(TEXTS[:6], normalize_embeddings=True, truncate_dim=dim)
        cut = full if dim is None else full[:, :dim]
        want = torch.nn.functional.normalize(torch.from_numpy(cut.copy()), p=2, dim=1).numpy()
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-7)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-6)
    # truncate_dim beyond the dimension keeps everything, as in sentence-transformers
    np.testing.assert_array_equal(encoder.encode(TEXTS[:2], truncate_dim=1000), full[:2])


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_four_threads_at_once_give_the_same_vectors(model_dir, precision):
    if precision == "int8" and not cpu_has_vnni():
        pytest.skip("int8 needs AVX-512 VNNI")
    try:
        m = sieve.Encoder(model_dir, threads=1, precision=precision)
    except OSError as e:  # sieve.ModelError: bf16 on a CPU oneDNN has no bf16 matmul for
        pytest.skip(str(e))
    batches = [TEXTS[i::4] for i in range(4)]
    expected = [m.encode(b, policy="dense" if i % 2 else "ltp:final=0.004") for i, b in enumerate(batches)]
    results = [None] * 4
    errors = []

    def work(i):
        try:
            for _ in range(3):
                got = m.encode(batches[i], policy="dense" if i % 2 else "ltp:final=0.004")
                np.testing.assert_array_equal(got, expected[i])
            results[i] = got
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    wall, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert not errors, errors
    assert all(r is not None for r in results)
    print(f"4 threads x 3 calls: {wall:.2f} s wall, {cpu:.2f} s CPU ({cpu / wall:.2f} cores busy)")


def test_gil_is_released_while_computing(model_dir):
    # A pure-Python counter thread can only count while the main thread is inside the engine if the
    # engine released the GIL; held, it would count at most one switch interval (5 ms) of it.
    m = sieve.Encoder(model_dir, threads=1)
    texts = TEXTS[:6] * 4
    m.encode(texts)
    count, stop = [0], threading.Event()

    def counter():
        while not stop.is_set():
            count[0] += 1

    t = threading.Thread(target=counter)
    t.start()
    try:
        time.sleep(0.2)
        c0, t0 = count[0], time.perf_counter()
        time.sleep(0.3)
        rate = (count[0] - c0) / (time.perf_counter() - t0)
        c0, t0 = count[0], time.perf_counter()
        m._engine.embed(texts, "dense", 32, None)
        during, seconds = count[0] - c0, time.perf_counter() - t0
    finally:
        stop.set()
        t.join()
    assert seconds > 0.1, "the call was too short to tell"
    assert during > 0.25 * rate * seconds, (during, rate, seconds)


BAD_INPUTS = [
    (None, "texts is None"),
    ([TEXTS[0], 7], "texts[1] is int"),
    ([], "empty"),
    ([TEXTS[0], None], "texts[1] is NoneType"),
    (b"bytes", "not bytes"),
    (["lone surrogate \ud800"], "not valid Unicode"),
    (12, "not int"),
]


@pytest.mark.parametrize("bad,message", BAD_INPUTS)
def test_bad_input_raises_and_encoder_stays_usable(encoder, bad, message):
    before = encoder.encode(TEXTS[:3])
    for call in (encoder.encode, encoder.tokenize):
        with pytest.raises(sieve.InputError, match=re.escape(message)) as info:
            call(bad)
        assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)
    np.testing.assert_array_equal(encoder.encode(TEXTS[:3]), before)


def test_bad_options_raise_value_error(encoder):
    before = encoder.encode(TEXTS[:3])
    with pytest.raises(ValueError, match="unknown policy 'bogus'"):
        encoder.encode(TEXTS[:3], policy="bogus")
    with pytest.raises(ValueError, match="ratio|range|\\[0, 1\\]"):
        encoder.encode(TEXTS[:3], policy="spatten:tokens=7")
    with pytest.raises(ValueError, match="batch_size"):
        encoder.encode(TEXTS[:3], batch_size=0)
    with pytest.raises(ValueError, match="truncate_dim"):
        encoder.encode(TEXTS[:3], truncate_dim=-1)
    np.testing.assert_array_equal(encoder.encode(TEXTS[:3]), before)


def test_model_errors(model_dir, tmp_path):
    with pytest.raises(FileNotFoundError, match="model directory not found"):
        sieve.Encoder(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(sieve.ModelError) as info:
        sieve.Encoder(tmp_path)
    assert isinstance(info.value, OSError) and str(info.value)
    with pytest.raises(ValueError, match="unknown policy"):
        sieve.Encoder(model_dir, policy="nope")
    with pytest.raises(ValueError, match="precision"):
        sieve.Encoder(model_dir, precision="fp8")
    with pytest.raises(sieve.ModelError, match="no sequence-classification head"):
        sieve.Encoder(model_dir).classify(["text"])


def test_tokenize(encoder):
    out = encoder.tokenize(["Hello world!", TEXTS[5]])
    assert out["tokens"][0] == ["[CLS]", "hello", "world", "!", "[SEP]"]
    assert out["input_ids"][0] == [101, 7592, 2088, 999, 102]
    assert out["attention_mask"][0] == [1] * 5 and out["token_type_ids"][0] == [0] * 5
    assert out["truncated"] == [False, True] and len(out["input_ids"][1]) == encoder.max_length == 256


def test_properties(encoder):
    assert encoder.dimension == encoder.get_sentence_embedding_dimension() == 384
    assert encoder.precision == "fp32" and encoder.num_labels == 0
    assert "all-MiniLM-L6-v2" in repr(encoder)
