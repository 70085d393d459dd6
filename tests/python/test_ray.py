"""Ray Data: embed a Parquet corpus with 2 actors on a local 2-CPU Ray instance, compare with one process.

Skipped when ray is not installed (it is not in python/requirements.txt: README, "Embedding a corpus
on a Ray cluster", gives the command that installs it and runs this test).
"""
import sys

import numpy as np
import pytest

from conftest import ROOT

ray = pytest.importorskip("ray")
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")
EXAMPLES = ROOT / "python" / "examples"
sys.path.insert(0, str(EXAMPLES))
import ray_embed_parquet  # noqa: E402

import sieve  # noqa: E402

WORDS = "the a man woman plays guitar piano market fell rose today slowly city river dog cat runs".split()


def corpus(n: int):
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 40)))) for _ in range(n)]


@pytest.fixture(scope="module")
def local_ray():
    # The actors import SieveEmbedder from the example module, so the workers need its folder.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(EXAMPLES)}})
    yield
    ray.shutdown()


def test_ray_data_two_actors_equal_single_process(local_ray, model_dir, tmp_path):
    texts = corpus(300)
    source = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"id": np.arange(len(texts)), "text": texts}), source)
    out = tmp_path / "embeddings"
    seconds = ray_embed_parquet.embed_parquet(str(source), str(out), str(model_dir), actors=2, threads_per_actor=1,
                                              batch_size=32, rows_per_batch=64, cpus_per_actor=0.5)
    got = ray_embed_parquet.read_embeddings(str(out))
    files = sorted(out.glob("*.parquet"))
    ids = np.concatenate([pq.read_table(f, columns=["id"]).column("id").to_numpy() for f in files])
    assert sorted(ids.tolist()) == list(range(len(texts)))
    expected = sieve.Encoder(model_dir, threads=1).encode(texts, batch_size=32)
    got = got[np.argsort(ids)]
    assert got.shape == expected.shape and got.dtype == np.float32
    # Batches of 64 rows cut into forward calls of 32 (and 32 from one list): the same sequences per
    # call, so the same vectors; a tolerance only for a GEMM that blocks a partial batch differently.
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)
    pids = set(np.concatenate([pq.read_table(f, columns=["worker_pid"]).column("worker_pid").to_numpy() for f in files]))
    print(f"ray: {len(texts)} texts, 2 actors ({len(pids)} did work), {seconds:.2f} s; "
          f"max |diff| {np.abs(got - expected).max():.2e}")
