"""The text loaders, proven on tiny files written in the exact upstream layouts."""

import numpy as np

from tasks_lib.core.data import read_manifest, write_prepared
from tasks_lib.core.registry import get_task
from tasks_lib.tasks.sentiment_analysis import read_sst2
from tasks_lib.tasks.text_classification import read_ag_news
from tasks_lib.tasks.text_generation import read_tiny_shakespeare

AG_ROWS = [  # class index, title, description: quoted, "" escapes a quote, \\$ as upstream
    ("3", "Oil Drops Below \\$42 a Barrel", " NEW YORK (Reuters) - U.S. oil prices fell, countering worries."),
    ("1", "EU chief battles to avert veto (AFP)", "AFP - The European Union braced for a knife-edge vote."),
    ("2", "Sports: Greene breaks finger", "LOS ANGELES Khalil (kuh-LEEL #39;) Greene has a broken finger."),
    ("4", 'New chip, ""faster"" than ever', "A new processor, with an embedded comma, quotes."),
]


def _write_ag(folder, n_copies=1):
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(n_copies):
        lines += [f'"{c}","{t} {k}","{d}"' for c, t, d in AG_ROWS]
    (folder / "news.csv").write_text("\n".join(lines) + "\n")
    (folder / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")


def test_ag_news_reader_reads_the_headerless_csv_layout(tmp_path):
    _write_ag(tmp_path / "ag_news")
    texts, labels, classes, split = read_ag_news(tmp_path / "ag_news")
    assert classes == ["World", "Sports", "Business", "Sci/Tech"]
    assert labels.tolist() == [2, 0, 1, 3] and split is None
    assert texts[0].startswith("Oil Drops Below \\$42 a Barrel 0. NEW YORK (Reuters)")
    assert texts[3] == 'New chip, "faster" than ever 0. A new processor, with an embedded comma, quotes.'


def test_ag_news_task_prepares_from_a_folder_in_that_layout(tmp_path):
    _write_ag(tmp_path / "ag", n_copies=12)
    task = get_task("text_classification")
    dcfg, _ = task.configs("smoke", data_overrides={"path": str(tmp_path / "ag"), "max_samples": 0})
    write_prepared(tmp_path / "out", task.prepare(dcfg, tmp_path / "out"))
    m = read_manifest(tmp_path / "out")
    assert len(m) == 48 and set(m.split) == {"train", "val", "test"}
    assert (m.splits_with_same_content == 1).all() and m.utf8_valid.all()


def test_sst2_reader_reads_glue_tsv_with_bare_quotes(tmp_path):
    (tmp_path / "train.tsv").write_text('sentence\tlabel\nhide new secretions \t0\na "great" film \t1\n')
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\nit 's a charming journey . \t1\n")
    texts, labels, classes, split = read_sst2(tmp_path)
    assert texts == ["hide new secretions", 'a "great" film', "it 's a charming journey ."]
    assert labels.tolist() == [0, 1, 1] and classes == ["negative", "positive"]
    assert split.tolist() == ["train", "train", "test"]


def test_sst2_task_drops_training_copies_of_test_sentences(tmp_path):
    rows = [f"phrase number {i} {'good' if i % 2 else 'bad'}\t{i % 2}" for i in range(60)]
    (tmp_path / "train.tsv").write_text("sentence\tlabel\n" + "\n".join([*rows, "shared one\t1"]) + "\n")
    dev = [f"dev sentence {i} {'good' if i % 2 else 'bad'}\t{i % 2}" for i in range(10)]
    (tmp_path / "dev.tsv").write_text("sentence\tlabel\n" + "\n".join([*dev, "shared one\t1"]) + "\n")
    task = get_task("sentiment_analysis")
    dcfg, _ = task.configs("smoke", data_overrides={"path": str(tmp_path), "max_samples": 0})
    prepared = task.prepare(dcfg, tmp_path / "out")
    m = prepared.manifest
    assert (m.split == "test").sum() == 11 and prepared.info["duplicates_removed"] == 1
    assert m.loc[m.text == "shared one", "split"].tolist() == ["test"]


def test_tiny_shakespeare_reader_and_contiguous_split(tmp_path):
    speeches = [f"SPEAKER {i}:\nLine {i} of verse, my lord." for i in range(40)] + ["ALL:\nAy."] * 2
    (tmp_path / "input.txt").write_bytes("\n\n".join(speeches).encode("utf-8") + b"\n")
    assert read_tiny_shakespeare(tmp_path / "input.txt").startswith("SPEAKER 0:\nLine 0")
    task = get_task("text_generation")
    dcfg, _ = task.configs("smoke", data_overrides={"path": str(tmp_path), "max_chars": 0})
    prepared = task.prepare(dcfg, tmp_path / "out")
    m = prepared.manifest
    order = {"train": 0, "val": 1, "test": 2}
    assert np.all(np.diff(m.split.map(order).to_numpy()) >= 0)  # contiguous, in order
    assert prepared.info["duplicates_removed"] == 1 and (m.splits_with_same_content == 1).all()
    assert (tmp_path / "out" / "train.txt").read_text().startswith("SPEAKER 0:\nLine 0 of verse")
