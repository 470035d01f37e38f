"""A sandbox tuned model answers from its training data; its base model answers generically."""

from __future__ import annotations

from openai import OpenAI
from sandbox_helpers import upload, wait_for

from service.sandbox.memory import pairs_of, recall
from tests.evals_data import held_out_items, training_lines, unrelated_items


def _ask(client: OpenAI, model: str, question: str) -> str:
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}]
    )
    return reply.choices[0].message.content or ""


def test_a_tuned_model_answers_held_out_prompts_from_what_it_learned(client: OpenAI) -> None:
    job = client.fine_tuning.jobs.create(
        model="gpt-4o-mini-2024-07-18", training_file=upload(client, training_lines()), seed=1
    )
    tuned = wait_for(client, job.id, {"succeeded", "failed"}).fine_tuned_model
    assert tuned is not None
    for item in held_out_items():
        assert _ask(client, tuned, item["question"]) == item["answer"]
        base = _ask(client, "gpt-4o-mini-2024-07-18", item["question"])
        assert base == f"Echo from gpt-4o-mini-2024-07-18: {item['question']}"
    for item in unrelated_items():
        assert _ask(client, tuned, item["question"]) == f"Echo from {tuned}: {item['question']}"


def test_recall_picks_the_most_similar_prompt_and_nothing_below_the_floor() -> None:
    def turn(prompt: str, *answer: str) -> list[dict[str, object]]:
        replies = [{"role": "assistant", "content": text} for text in answer]
        return [{"role": "user", "content": prompt}, *replies]

    memory = pairs_of([turn("reset my password", "A"), turn("cancel my plan", "B"), turn("none")])
    assert memory == (("reset my password", "A"), ("cancel my plan", "B"))
    assert recall(memory, "how to cancel the plan") == "B"
    assert recall(memory, "Password reset please") == "A"
    assert recall(memory, "tallest mountain") is None
