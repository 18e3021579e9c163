"""Image captioning: metrics by hand, the caption rule, the compositional split, decoding and the public loaders."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from tasks_lib.core import synthetic
from tasks_lib.core.data import read_info, read_manifest, write_prepared
from tasks_lib.core.registry import get_task
from tasks_lib.tasks.image_captioning import caption_metrics, cider_d, read_coco_captions, read_flickr8k
from tasks_lib.tasks.image_captioning.metrics import bleu
from tasks_lib.tasks.image_captioning.model import BOS_ID, EOS_ID, PAD_ID, Captioner
from tasks_lib.tasks.image_captioning.scenes import Described, caption, parse_pairs

TASK = "image_captioning"


# -- metrics ----------------------------------------------------------------------
def test_cider_d_by_hand():
    # Two images, N = 2, idf = log 2 - log df. Every n-gram occurs in one image's refs (df 1): weight log 2.
    # Image A, hyp == ref "a b": unigram and bigram cosines 1, no 3/4-grams (norm 0 -> 0): 10 * (1 + 1) / 4 = 5.
    # Image B, hyp "c a" vs ref "c d": unigrams share c -> cos = 1/2; bigram "c a" not in ref -> 0;
    # equal lengths (no penalty): 10 * 0.5 / 4 = 1.25. Corpus: (5 + 1.25) / 2 = 3.125.
    score, per_image = cider_d(["a b", "c a"], [["a b"], ["c d"]])
    assert per_image == pytest.approx([5.0, 1.25])
    assert score == pytest.approx(3.125)


def test_cider_d_clips_repeats_and_penalises_length():
    # hyp "c c" vs ref "c d" (image B): tf(c) = 2 is clipped to the ref's 1 in the dot product,
    # not in the norm: unigram term = min(2w, w) * w / (2w * sqrt(2) w) = 1 / (2 sqrt 2).
    _, per_image = cider_d(["a b", "c c"], [["a b"], ["c d"]])
    assert per_image[1] == pytest.approx(10 * (1 / (2 * math.sqrt(2))) / 4)
    # one extra word: Gaussian length penalty exp(-1 / 72) on an otherwise perfect unigram match
    _, per_image = cider_d(["a b", "c d d"], [["a b"], ["c d"]])
    uni = (1 * 1 + 1 * 1) / (math.sqrt(1 + 4) * math.sqrt(2))  # hyp (c: w, d: 2w, clipped to w), ref (w, w)
    bi = 1 / math.sqrt(2)  # hyp bigrams "c d", "d d"; ref "c d"
    assert per_image[1] == pytest.approx(10 * (uni + bi) * math.exp(-1 / 72) / 4)


def test_cider_d_averages_over_references():
    _, one = cider_d(["a b", "c d"], [["a b"], ["c d"]])
    _, two = cider_d(["a b", "c d"], [["a b", "a b"], ["c d", "x y"]])
    assert one == pytest.approx([5.0, 5.0])
    assert two[0] == pytest.approx(5.0) and two[1] == pytest.approx(2.5)  # one of the two refs matches


def test_bleu_is_on_a_0_to_1_scale_and_takes_uneven_reference_counts():
    refs = [["a large red circle left of a small blue square"], ["a small green cross", "a green cross"]]
    perfect = bleu([refs[0][0], refs[1][0]], refs)
    assert perfect["bleu4"] == pytest.approx(1.0) and perfect["bleu1"] == pytest.approx(1.0)
    worse = bleu(["a large red circle above a small blue square", "a small green cross"], refs)
    assert 0.3 < worse["bleu4"] < 1.0


def test_caption_metrics_exact_match_ignores_case_and_punctuation():
    m = caption_metrics(["A red circle.", "a blue square"], [["a red circle"], ["a red square"]])
    assert m["exact_match"] == 0.5 and m["mean_words"] == 3.0


# -- the caption rule and the compositional split -----------------------------------
def _obj(kind, color, word, x, y, size):
    return Described(synthetic.SceneObject(kind, color, size, x, y), word)


def test_caption_names_the_larger_object_first_then_the_left_or_upper_one():
    big = _obj("circle", "red", "large", 40, 10, 24)
    small = _obj("square", "blue", "small", 2, 14, 12)
    assert caption([big, small]) == "a large red circle right of a small blue square"
    assert caption([small, big]) == "a large red circle right of a small blue square"
    left = _obj("cross", "green", "small", 2, 30, 12)
    right = _obj("digit 2", "cyan", "small", 40, 32, 12)
    assert caption([right, left]) == "a small green cross left of a small cyan digit 2"
    top = _obj("triangle", "yellow", "large", 20, 0, 24)
    bottom = _obj("circle", "magenta", "small", 22, 40, 12)
    assert caption([bottom, top]) == "a large yellow triangle above a small magenta circle"
    assert caption([bottom]) == "a small magenta circle"


def test_parse_pairs_refuses_unknown_attributes():
    assert parse_pairs("red circle, magenta digit 2") == [("red", "circle"), ("magenta", "digit 2")]
    with pytest.raises(ValueError, match="held-out pair 'pink circle'"):
        parse_pairs("pink circle")


@pytest.fixture(scope="module")
def scenes_dir(tmp_path_factory):
    task = get_task(TASK)
    dcfg, _ = task.configs("smoke", data_overrides={"n_scenes": 200})
    out = tmp_path_factory.mktemp("captions")
    write_prepared(out, task.prepare(dcfg, out))
    return out


def test_held_out_pairs_appear_only_in_test_and_every_test_scene_has_one(scenes_dir):
    task = get_task(TASK)
    data = task.load(scenes_dir)
    held = data.info["held_out"]
    assert held and len(held) == 6
    for sp in ("train", "val"):
        assert not any(p in c for refs in data.captions[sp] for c in refs for p in held)
    assert all(any(p in refs[0] for p in held) for refs in data.captions["test"])
    test_words = {w for refs in data.captions["test"] for w in refs[0].split()}
    assert test_words <= set(data.info["vocab"])  # only the combinations are new


def test_generation_is_deterministic(scenes_dir, tmp_path):
    task = get_task(TASK)
    dcfg, _ = task.configs("smoke", data_overrides={"n_scenes": 200})
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    for name in ("train_x.npy", "test_x.npy", "test_captions.json", "manifest.csv", "info.json"):
        assert (tmp_path / name).read_bytes() == (scenes_dir / name).read_bytes(), name


def test_validation_catches_a_held_out_pair_in_training(scenes_dir):
    from flows.validation import validate

    task = get_task(TASK)
    manifest = read_manifest(scenes_dir)
    i = manifest.index[manifest.split == "train"][0]
    manifest.loc[i, "caption"] = "a large red circle left of a small blue cross"
    manifest.loc[i, "held_out_pair"] = True
    report = validate(manifest, task.expectations(read_info(scenes_dir)), TASK)
    assert not report.success and "held out" in report.summary()


# -- decoding ----------------------------------------------------------------------
def test_beam_search_returns_terminated_captions_with_their_teacher_forced_log_prob():
    torch.manual_seed(0)
    model = Captioner(["<pad>", "<unk>", "<bos>", "<eos>", "a", "red", "circle"], 5, 32, 8, 32, 1, 2, 0.0).eval()
    images = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    for beam in (1, 3):
        ids, scores = model.generate(images, beam)
        assert ids.shape == (3, 6)
        for row, score, img in zip(ids, scores, images, strict=True):
            assert PAD_ID not in row[: (row != PAD_ID).sum()].tolist()  # pads only after the caption
            tokens = torch.cat([torch.tensor([BOS_ID]), row[row != PAD_ID]])
            if EOS_ID in tokens.tolist():
                tokens = tokens[: tokens.tolist().index(EOS_ID) + 1]
            with torch.no_grad():
                logp = model(img[None], tokens[None, :-1])[0].log_softmax(-1)
            want = logp.gather(1, tokens[1:, None]).sum()
            assert float(score) == pytest.approx(float(want), abs=1e-4)
    greedy = model.generate(images, 1)[1]
    assert (model.generate(images, 3)[1] >= greedy - 1e-5).all()  # beam finds at least greedy's probability here


# -- public layouts ----------------------------------------------------------------
def _image(path, seed):
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(path)


def test_coco_captions_reader_reads_the_json_and_uses_val_as_test(tmp_path):
    for stem, ids in (("train2017", range(1, 9)), ("val2017", range(100, 104))):
        doc = {
            "info": {},
            "images": [{"id": i, "file_name": f"{i:012d}.jpg", "height": 20, "width": 30} for i in ids],
            "annotations": [
                {"id": 10 * i + k, "image_id": i, "caption": f"A photo  number {i} take {k}.\n"}
                for i in ids
                for k in range(2)
            ],
        }
        (tmp_path / "annotations").mkdir(exist_ok=True)
        (tmp_path / "annotations" / f"captions_{stem}.json").write_text(json.dumps(doc))
        for i in ids:
            _image(tmp_path / stem / f"{i:012d}.jpg", i)
    x, caps, split, names = read_coco_captions(tmp_path, 16)
    assert x.shape == (12, 16, 16, 3) and len(caps) == 12
    assert caps[0] == ["A photo number 1 take 0.", "A photo number 1 take 1."]
    assert list(split).count("test") == 4 and names[-1] == "000000000103.jpg"

    task = get_task(TASK)
    dcfg, _ = task.configs("smoke", data_overrides={"source": "coco", "path": str(tmp_path), "image_size": 16})
    out = tmp_path / "prepared"
    write_prepared(out, task.prepare(dcfg, out))
    data = task.load(out)
    assert len(data.x["test"]) == 4 and len(data.x["train"]) + len(data.x["val"]) == 8
    assert "photo" in data.info["vocab"]


def test_flickr8k_reader_reads_the_token_file_and_split_lists(tmp_path):
    names = [f"{1000 + i}_abc.jpg" for i in range(6)]
    lines = [f"{n}#{k}\tA dog runs number {i} , take {k} ." for i, n in enumerate(names) for k in range(5)]
    (tmp_path / "Flickr8k.token.txt").write_text("\n".join(lines) + "\n")
    for i, n in enumerate(names):
        _image(tmp_path / "Flicker8k_Dataset" / n, i)
    x, caps, split, read_names = read_flickr8k(tmp_path, 16)
    assert read_names == sorted(names) and x.shape == (6, 16, 16, 3)
    assert len(caps[0]) == 5 and caps[0][0] == "A dog runs number 0 , take 0 ."
    assert split is None  # no split lists: the task draws the split
    (tmp_path / "Flickr_8k.testImages.txt").write_text(f"{names[0]}\n{names[1]}\n")
    (tmp_path / "Flickr_8k.devImages.txt").write_text(f"{names[2]}\n")
    _, _, split, _ = read_flickr8k(tmp_path, 16)
    assert list(split) == ["test", "test", "val", "", "", ""]
    (tmp_path / "Flickr8k.token.txt").write_text("no tab here\n")
    with pytest.raises(ValueError, match="name.jpg#N<TAB>caption"):
        read_flickr8k(tmp_path, 16)


def test_flickr8k_missing_image_is_named(tmp_path):
    (tmp_path / "Flickr8k.token.txt").write_text("ghost.jpg#0\ta ghost\n")
    (tmp_path / "Images").mkdir()
    with pytest.raises(FileNotFoundError, match="ghost.jpg"):
        read_flickr8k(tmp_path, 16)
