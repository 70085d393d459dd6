"""Reading GLUE-format data: the HF parquet files (columns sentence, label[, idx]) and GLUE's own TSV
(a header row with `sentence` and `label` columns). Shared by the training tools and by
`tools/glue_to_tsv.py`, which `sieve eval` calls to read parquet."""
import csv
from pathlib import Path


def read_rows(path):
    """Rows of (sentence, label) from one .parquet or .tsv file."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        table = pq.read_table(path, columns=["sentence", "label"]).to_pydict()
        return list(zip(table["sentence"], (int(x) for x in table["label"])))
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if not reader.fieldnames or "sentence" not in reader.fieldnames or "label" not in reader.fieldnames:
            raise SystemExit(f"{path}: expected a TSV header with 'sentence' and 'label' columns")
        return [(r["sentence"], int(r["label"])) for r in reader]


def load_split(data_dir, split):
    """The `split` (train / validation / dev) file of a GLUE task directory, parquet or tsv."""
    data_dir = Path(data_dir)
    names = [split] + (["dev"] if split == "validation" else [])
    for name in names:
        for ext in (".parquet", ".tsv"):
            if (data_dir / (name + ext)).exists():
                return read_rows(data_dir / (name + ext))
    raise SystemExit(f"no {split}.parquet or {split}.tsv in {data_dir}")


def shuffled_train_and_dev(data_dir, rng):
    """(training rows shuffled by `rng`, validation rows): what every training tool starts from, so
    that "the first N training rows" means the same rows for all of them at the same seed."""
    train = load_split(data_dir, "train")
    dev = load_split(data_dir, "validation")
    rng.shuffle(train)
    return train, dev
