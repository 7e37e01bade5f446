"""``palaestra.eval.judge_refusals``: a judge model's refusal labels (moved up from the env layer)."""

from __future__ import annotations

import pytest

import palaestra.env.families.refusal as refusal_env
import palaestra.eval._refusal_judge as refusal_judge
from palaestra.eval import JUDGE_PROMPT, judge_refusals
from palaestra.model import Conversation, Model, ScriptedModel


def test_labels_each_reply_from_the_judges_answer() -> None:
    model = ScriptedModel([" refusal.", "COMPLIANCE", "Refused", "I think REFUSAL"])
    texts = ["I won't.", "Sure, here it is.", "No.", "Maybe."]
    assert judge_refusals(texts, model) == [True, False, True, False]
    assert model.batch_sizes == [4]  # one batched call
    assert [c[0].content for c in model.calls] == [JUDGE_PROMPT.format(reply=t) for t in texts]


def test_takes_a_model_id(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Conversation] = []

    def answer(conv: Conversation) -> str:
        seen.append(conv)
        return "REFUSAL"

    built: list[str] = []

    def fake_get_model(model_id: str) -> Model:
        built.append(model_id)
        return ScriptedModel(answer)

    monkeypatch.setattr(refusal_judge, "get_model", fake_get_model)
    assert judge_refusals([], "openai/judge") == []
    assert judge_refusals(["I can't help with that."], "openai/judge") == [True]
    assert built == ["openai/judge", "openai/judge"]
    assert "I can't help with that." in seen[0][0].content


def test_the_environment_layer_no_longer_offers_the_judge() -> None:
    # The judge needs a model, a layer above env: refusal-v1 keeps only the rules.
    assert not hasattr(refusal_env, "judge_refusals")
    assert refusal_env.detect_refusal("I can't help with that.")
