import hashlib
import shutil
from pathlib import Path

import pytest
import tiktoken

from service.domain import tokens

BLOB_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"

SAMPLES = [
    "",
    "hello world",
    "Ünïcödé — 日本語のテキスト, emoji 🎉🎉 and tabs\t\tand\r\nnewlines",
    "def f(x):\n    return x ** 2  # comment\n",
    "<|endoftext|> is text here, not a special token",
    "1234567890 3.14159 2024-07-18T12:00:00Z",
    "   leading and trailing spaces   ",
]


@pytest.fixture
def tiktoken_from_shipped_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Let tiktoken's own registry find the shipped files in its cache, as if downloaded."""
    for name in ("cl100k_base", "o200k_base"):
        key = hashlib.sha1(BLOB_URL.format(name=name).encode()).hexdigest()
        shutil.copyfile(tokens.DATA_DIR / f"{name}.tiktoken", tmp_path / key)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))


@pytest.mark.parametrize("filename", sorted(tokens.EXPECTED_SHA256))
def test_shipped_files_are_byte_identical_to_tiktokens(filename: str) -> None:
    digest = hashlib.sha256((tokens.DATA_DIR / filename).read_bytes()).hexdigest()
    assert digest == tokens.EXPECTED_SHA256[filename]


@pytest.mark.usefixtures("tiktoken_from_shipped_files")
@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
def test_counts_equal_tiktokens_own_encoding(name: str) -> None:
    reference = tiktoken.get_encoding(name)
    ours = tokens.get_encoding(name)
    for text in SAMPLES:
        assert ours.encode_ordinary(text) == reference.encode_ordinary(text)
    assert ours.special_tokens_set == reference.special_tokens_set
    assert ours.n_vocab == reference.n_vocab


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4o", "o200k_base"),
        ("gpt-4.1-2025-04-14", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("babbage-002", "cl100k_base"),
        ("davinci-002", "cl100k_base"),
        ("ft:gpt-4.1-mini-2025-04-14:acme:support:AbC123", "o200k_base"),
        ("ft:gpt-3.5-turbo-0125:acme::xyz", "cl100k_base"),
        ("ft:davinci-002:acme::xyz", "cl100k_base"),
        ("some-future-model", "o200k_base"),
    ],
)
def test_encoding_name_for_model(model: str, expected: str) -> None:
    assert tokens.encoding_name_for_model(model) == expected


def test_count_tokens_uses_the_models_encoding() -> None:
    text = "The quick brown fox 🦊 jumps over the lazy dog."
    assert tokens.count_tokens(text, "gpt-4o") == len(
        tokens.get_encoding("o200k_base").encode_ordinary(text)
    )
    assert tokens.count_tokens(text, "gpt-3.5-turbo") == len(
        tokens.get_encoding("cl100k_base").encode_ordinary(text)
    )


def test_special_token_text_counts_as_ordinary_text() -> None:
    assert tokens.count_tokens("<|endoftext|>", "gpt-4o") > 1


def test_batch_matches_single_counts() -> None:
    texts = [f"{sample} #{i}" for i, sample in enumerate(SAMPLES * 5)]
    expected = [tokens.count_tokens(text, "gpt-4o-mini") for text in texts]
    assert tokens.count_tokens_batch(texts, "gpt-4o-mini") == expected
    assert tokens.count_tokens_batch(texts[:2], "gpt-4o-mini") == expected[:2]
    many = texts * 10  # large enough to be split across threads
    assert tokens.count_tokens_batch(many, "gpt-4o-mini") == expected * 10


def test_unshipped_encoding_is_refused() -> None:
    with pytest.raises(tokens.UnsupportedEncodingError):
        tokens.count_tokens("hello", "text-davinci-003")
