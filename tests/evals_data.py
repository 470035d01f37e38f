"""A small support-desk distribution for the evals tests: topics, each with several phrasings of
one question and one right answer; training takes some phrasings, held-out items the others,
and unrelated items share no word with any of them."""

from __future__ import annotations

from typing import Any

import orjson

SOURCE: Any = {
    "type": "custom",
    "item_schema": {"type": "object", "properties": {"question": {"type": "string"}}},
    "include_sample_schema": True,
}
EXACT: Any = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}
CLOSE: Any = {
    "type": "text_similarity",
    "name": "close",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "evaluation_metric": "rouge_l",
    "pass_threshold": 0.8,
}

TOPICS = [
    ("reset my password", "Open Settings, then Security, then Reset password."),
    ("cancel my subscription", "Go to Billing and press Cancel plan."),
    ("download my invoice", "Invoices are under Billing, History."),
    ("change my email address", "Edit it under Profile, Contact."),
    ("delete my account", "Write to privacy@example.com to delete it."),
    ("enable two factor login", "Turn it on under Security, Two-factor."),
]
TRAIN_PHRASES = ["How do I {}?", "I need to {}, how?", "Where can I {}?"]
HELD_OUT_PHRASES = ["Please tell me how to {} today"]
UNRELATED = [
    ("What is the tallest mountain on Earth", "Everest"),
    ("Who painted the Mona Lisa", "Leonardo"),
    ("Which planet has rings", "Saturn"),
]


def training_lines() -> bytes:
    rows = [
        {
            "messages": [
                {"role": "system", "content": "You are the support desk."},
                {"role": "user", "content": phrase.format(topic)},
                {"role": "assistant", "content": answer},
            ]
        }
        for topic, answer in TOPICS
        for phrase in TRAIN_PHRASES
    ]
    return b"".join(orjson.dumps(row) + b"\n" for row in rows)


def held_out_items() -> list[dict[str, str]]:
    return [
        {"question": phrase.format(topic), "answer": answer}
        for topic, answer in TOPICS
        for phrase in HELD_OUT_PHRASES
    ]


def unrelated_items() -> list[dict[str, str]]:
    return [{"question": question, "answer": answer} for question, answer in UNRELATED]


def eval_lines(items: list[dict[str, str]]) -> bytes:
    return b"".join(orjson.dumps({"item": item}) + b"\n" for item in items)
