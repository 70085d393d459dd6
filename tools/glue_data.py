"""Reading GLUE-format data: the HF parquet files (columns sentence, label[, idx], or sentence1,
sentence2 for pair tasks such as MRPC and RTE) and GLUE's own TSV (a header row with the same column
names). Shared by the training tools and by `tools/glue_to_tsv.py`, which `sieve eval` calls to read
parquet.

A row is (text, label); text is a str for single-sentence tasks and a (first, second) tuple for pair
tasks. `encode` hands either kind to a Hugging Face tokenizer.

The held-out protocol: every knob (keep ratios, thresholds, tau) is chosen on a *calibration slice*
of the training split that fine-tuning never sees, and validation is reported once. `split_train`
defines that slice, the same for every tool (it does not depend on the training seed).
"""
import csv
import random
from pathlib import Path

# The calibration slice: drawn with its own fixed seed, so it is the same rows for every tool and
# training seed. For SST-2 it is drawn from rows of at least CALIBRATION_MIN_WORDS words: SST-2's
# training split is mostly short phrases (median 7 words) while validation holds whole sentences
# (median 19), and knobs chosen on two-word phrases would not transfer.
CALIBRATION_SEED = 20261201
CALIBRATION_ROWS = {"sst2": 2000, "mrpc": 400, "rte": 250, "stsb": 1500, "default": 1000}
CALIBRATION_MIN_WORDS = {"sst2": 9}


def read_rows(path):
    """Rows of (text, label) from one .parquet or .tsv file; text is a pair for two-sentence tasks."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        names = pq.read_schema(path).names
        if "sentence" in names:
            table = pq.read_table(path, columns=["sentence", "label"]).to_pydict()
            texts = table["sentence"]
        elif "sentence1" in names and "sentence2" in names and "score" in names:
            # STS-B: a similarity score in [0, 5] instead of a class label.
            table = pq.read_table(path, columns=["sentence1", "sentence2", "score"]).to_pydict()
            return list(zip(zip(table["sentence1"], table["sentence2"]), (float(x) for x in table["score"])))
        elif "sentence1" in names and "sentence2" in names:
            table = pq.read_table(path, columns=["sentence1", "sentence2", "label"]).to_pydict()
            texts = list(zip(table["sentence1"], table["sentence2"]))
        else:
            raise SystemExit(f"{path}: expected columns 'sentence' or 'sentence1'+'sentence2', and 'label'")
        return list(zip(texts, (int(x) for x in table["label"])))
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        fields = reader.fieldnames or []
        if "label" not in fields or not ("sentence" in fields or {"sentence1", "sentence2"} <= set(fields)):
            raise SystemExit(f"{path}: expected a TSV header with 'sentence' (or 'sentence1', 'sentence2') and 'label'")
        if "sentence" in fields:
            return [(r["sentence"], int(r["label"])) for r in reader]
        return [((r["sentence1"], r["sentence2"]), int(r["label"])) for r in reader]


def load_split(data_dir, split):
    """The `split` (train / validation / dev) file of a GLUE task directory, parquet or tsv."""
    data_dir = Path(data_dir)
    names = [split] + (["dev"] if split == "validation" else [])
    for name in names:
        for ext in (".parquet", ".tsv"):
            if (data_dir / (name + ext)).exists():
                return read_rows(data_dir / (name + ext))
    raise SystemExit(f"no {split}.parquet or {split}.tsv in {data_dir}")


def task_name(data_dir):
    return Path(data_dir).resolve().name.lower()


def split_train(data_dir, rows, calibration_rows=None):
    """(fit rows, calibration rows) of a training split, both in file order. The calibration rows are
    the held-out slice on which knobs are chosen; fine-tuning and exit training use only the fit rows."""
    task = task_name(data_dir)
    n = CALIBRATION_ROWS.get(task, CALIBRATION_ROWS["default"]) if calibration_rows is None else calibration_rows
    min_words = CALIBRATION_MIN_WORDS.get(task, 0)

    def words(text):
        return sum(len(t.split()) for t in (text if isinstance(text, tuple) else (text,)))

    eligible = [i for i, (text, _) in enumerate(rows) if words(text) >= min_words]
    if n > len(eligible):
        raise SystemExit(f"{data_dir}: wants {n} calibration rows, only {len(eligible)} eligible")
    chosen = set(random.Random(CALIBRATION_SEED).sample(eligible, n))
    fit = [r for i, r in enumerate(rows) if i not in chosen]
    calibration = [r for i, r in enumerate(rows) if i in chosen]
    return fit, calibration


def shuffled_train_and_dev(data_dir, rng, calibration_rows=None):
    """(fit rows shuffled by `rng`, calibration rows, validation rows): what every training tool starts
    from, so that "the first N training rows" means the same rows for all of them at the same seed."""
    fit, calibration = split_train(data_dir, load_split(data_dir, "train"), calibration_rows)
    dev = load_split(data_dir, "validation")
    rng.shuffle(fit)
    return fit, calibration, dev


def encode(tokenizer, rows, max_length, **kwargs):
    """Tokenize the texts of `rows` (single sentences or pairs) as one padded batch."""
    texts = [r[0] for r in rows]
    if texts and isinstance(texts[0], tuple):
        return tokenizer([t[0] for t in texts], [t[1] for t in texts], padding=True, truncation=True,
                         max_length=max_length, return_tensors="pt", **kwargs)
    return tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt", **kwargs)


def write_tsv(rows, out):
    """GLUE TSV as `sieve eval` reads it: `sentence` or `sentence1`+`sentence2`, then `label`."""
    def clean(s):
        return s.replace("\t", " ").replace("\n", " ").replace("\r", " ")

    if rows and isinstance(rows[0][0], tuple):
        column = "score" if isinstance(rows[0][1], float) else "label"  # STS-B scores are floats
        out.write(f"sentence1\tsentence2\t{column}\n")
        for (a, b), label in rows:
            out.write(f"{clean(a)}\t{clean(b)}\t{label!r}\n" if column == "score" else f"{clean(a)}\t{clean(b)}\t{label}\n")
    else:
        out.write("sentence\tlabel\n")
        for sentence, label in rows:
            out.write(f"{clean(sentence)}\t{label}\n")
