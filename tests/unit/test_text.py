"""Shared text code: tokenizer, vocabulary, hashed bigrams, request checks, dedupe, n-gram baselines."""

import math

import numpy as np
import pytest

from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.text import (
    PAD_ID,
    UNK_ID,
    Encoder,
    build_vocab,
    check_text,
    dedupe,
    stable_hash,
    texts_from_request,
    tokenize,
    utf8_valid,
)
from tasks_lib.tasks.text_generation.readers import CharNgram, loss_metrics, split_speeches


def test_tokenize_splits_words_clitics_and_punctuation():
    assert tokenize("It's  NOT good, isn't it?") == ["it's", "not", "good", ",", "isn't", "it", "?"]
    assert tokenize("Oil at \\$42 #39;ish") == ["oil", "at", "$", "42", "'ish"]


def test_vocab_is_ordered_by_frequency_then_alphabet_and_respects_min_freq():
    vocab = build_vocab([["b", "a", "c"], ["a", "b"], ["a"]], min_freq=2)
    assert vocab == ["<pad>", "<unk>", "a", "b"]


def test_encoder_pads_truncates_and_hashes_bigrams_stably():
    vocab = ["<pad>", "<unk>", "good", "film"]
    enc = Encoder(vocab, max_len=6, n_buckets=10, max_tokens=3)
    ids = enc.encode("good film zzz more")  # max_tokens=3: "good film zzz"
    assert ids.tolist()[:3] == [2, 3, UNK_ID]
    assert ids[3] == 4 + stable_hash("good film") % 10 and ids[4] == 4 + stable_hash("film zzz") % 10
    assert ids[5] == PAD_ID
    assert Encoder(vocab, 2).encode("good good good").tolist() == [2, 2]


def test_text_checks_name_the_problem():
    assert check_text("fine") == "fine"
    with pytest.raises(InvalidInput, match="empty") as e:
        check_text("  ")
    assert e.value.status == 422
    with pytest.raises(InvalidInput, match="too long") as e:
        check_text("x" * 11, max_chars=10)
    assert e.value.status == 413
    with pytest.raises(InvalidInput, match="must be a string"):
        check_text(3)
    assert texts_from_request({"texts": ["a", "b"]}) == ["a", "b"]
    with pytest.raises(InvalidInput, match="either"):
        texts_from_request({"text": "a", "texts": ["b"]})
    with pytest.raises(InvalidInput, match="at most 2"):
        texts_from_request({"texts": ["a", "b", "c"]}, max_items=2)


def test_utf8_validity_and_dedupe_keeps_the_preferred_copy():
    assert utf8_valid("héllo") and not utf8_valid("bad \udc80") and not utf8_valid(None)
    texts = ["A b", "c", "a  B", "d", "c"]
    assert dedupe(texts).tolist() == [0, 1, 3]
    prefer = np.array([False, False, True, False, False])  # e.g. the upstream test row wins
    assert dedupe(texts, prefer).tolist() == [1, 2, 3]


def test_char_ngram_losses_match_hand_computation():
    ids = np.array([0, 1, 0, 1])
    uni = CharNgram(1, 2, alpha=0.0).fit(ids)
    assert uni.loss(np.array([0, 0])) == pytest.approx(math.log(2))
    bi = CharNgram(2, 2, alpha=1.0).fit(ids)  # counts 0->1: 2, 1->0: 1, +1 each
    # P(1|0) = 3/4, P(0|1) = 2/3
    assert bi.loss(np.array([0, 1, 0])) == pytest.approx(-(math.log(3 / 4) + math.log(2 / 3)) / 2)
    m = loss_metrics(math.log(4))
    assert m["perplexity"] == pytest.approx(4) and m["bits_per_char"] == pytest.approx(2)


def test_split_speeches_on_blank_lines():
    assert split_speeches("A:\nhi\n\nB:\nyo\n\n\n") == ["A:\nhi", "B:\nyo"]
