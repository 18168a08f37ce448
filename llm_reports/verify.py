"""Check a generated narrative sentence by sentence against the computed facts, and mend what does not match.

The model writes fluent sentences with wrong numbers, so nothing it writes reaches an operator unchecked. Each
sentence is held to the rules in `checks`, reading "it" as the entity an earlier sentence named; a sentence with
nothing to check passes. A failing sentence is re-asked through a callback when one is given, and otherwise (or when
every answer still fails) replaced by a plain sentence built from the facts about the same entity (`plain`); plain
sentences always pass (a test holds that).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from llm_reports.checks import SentenceCheck, check_sentence
from llm_reports.claims import LIST_MARKER, sentence_segments
from llm_reports.fact_index import FactIndex, Scope
from llm_reports.facts import EntityKey, Facts
from llm_reports.plain import entity_sentences, summary_sentences

Action = Literal["kept", "regenerated", "replaced", "dropped"]
# A sentence this long is not a report sentence any more (small models ramble); it is mended like a wrong one.
MAX_SENTENCE_WORDS = 45


@dataclass(frozen=True)
class Attempt:
    """One answer of the regenerate callback that still failed, and why."""

    text: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class SentenceOutcome:
    """What happened to one sentence of the narrative."""

    original: str
    final: str  # "" when it was dropped: it stated no fact, or every plain sentence about its entity was in the text
    action: Action
    reasons: tuple[str, ...]  # why the original failed; empty when kept
    attempts: tuple[Attempt, ...] = ()  # failed regenerations, in order


@dataclass(frozen=True)
class Verification:
    """The verified narrative and the fate of each of its sentences."""

    text: str
    sentences: tuple[SentenceOutcome, ...]

    @property
    def replaced(self) -> int:
        return sum(outcome.action == "replaced" for outcome in self.sentences)

    @property
    def regenerated(self) -> int:
        return sum(outcome.action == "regenerated" for outcome in self.sentences)

    @property
    def untouched(self) -> bool:
        """True when the model's narrative passed as it was written."""
        return all(outcome.action == "kept" for outcome in self.sentences)


def verify(
    narrative: str,
    facts: Facts,
    regenerate: Callable[[str], str] | None = None,
    max_attempts: int = 2,
    strict: bool = False,
) -> Verification:
    """Check every sentence of `narrative`; re-ask or replace the ones that state something the facts do not.

    `regenerate(prompt)` gets a self-contained correction prompt (`correction_prompt`) and returns the model's new
    sentence; each answer is verified like the original, and one that states nothing checkable is not accepted
    (a chatty "Sure, here it is:" must not replace a wrong fact). After `max_attempts` failed answers, or without a
    callback, the sentence is replaced by the first plain sentence about its entity not already in the text.

    `strict` is for text that operators read as a report: a sentence that states no fact at all (no number, time or
    known name: filler the model invents, which nothing can check) is dropped, and an over-long one is mended.
    """
    index = FactIndex(facts)
    carried: Scope | None = None
    in_text: set[str] = set()  # sentences already in the result, without list markers: no replacement repeats one
    outcomes: list[SentenceOutcome] = []
    pieces: list[str] = []
    for sentence, separator in sentence_segments(narrative):
        if not sentence.strip():
            pieces.append(sentence + separator)
            continue
        list_marker = LIST_MARKER.match(sentence)
        marker = list_marker.group(0) if list_marker else ""
        check = check_sentence(sentence, index, carried)
        if strict and not check.reasons and len(sentence.split()) > MAX_SENTENCE_WORDS:
            check = replace(check, reasons=[f"longer than {MAX_SENTENCE_WORDS} words"])
        if strict and not check.reasons and not check.substantive:
            outcome = SentenceOutcome(original=sentence, final="", action="dropped", reasons=("states no fact",))
        elif check.reasons:
            outcome = _mend(sentence, check, index, carried, regenerate, max_attempts, in_text)
            carried = _check_text(outcome.final, index, carried).carried
            in_text.add(outcome.final)
            if outcome.final and marker:
                outcome = replace(outcome, final=marker + outcome.final)  # the mended sentence keeps its list item
        else:
            outcome = SentenceOutcome(original=sentence, final=sentence, action="kept", reasons=())
            carried = check.carried
            in_text.add(sentence.removeprefix(marker))
        outcomes.append(outcome)
        if outcome.final:
            pieces.append(outcome.final + separator)
    text = "".join(pieces)
    if outcomes and not outcomes[-1].final:
        text = text.rstrip()
    return Verification(text=text, sentences=tuple(outcomes))


def sentence_problems(sentence: str, facts: Facts) -> list[str]:
    """Why one sentence, read on its own, does not match the facts; empty when it does."""
    return check_sentence(sentence, FactIndex(facts), None).reasons


def split_sentences(text: str) -> list[str]:
    """The sentences (and separate lines) of a narrative, as the verifier sees them."""
    return [sentence for sentence, _ in sentence_segments(text) if sentence.strip()]


def correction_prompt(sentence: str, reasons: Sequence[str], facts: Facts, about: Iterable[EntityKey] = ()) -> str:
    """A self-contained prompt asking the model to rewrite one wrong sentence from the facts about its entity."""
    keys = sorted(set(about), key=_key_order)
    fact_lines = [line for key in keys for line in entity_sentences(facts, key)] or summary_sentences(facts)
    return (
        "Facts:\n"
        + "\n".join(f"- {line}" for line in fact_lines)
        + f'\n\nThis sentence from a report does not match the facts: "{sentence}"\n'
        + f"Problems: {'; '.join(reasons)}.\n"
        + "Rewrite it as one sentence that states only facts listed above, with camera and zone names written "
        "exactly as above. Reply with the sentence only."
    )


def _key_order(key: EntityKey) -> tuple[str, str]:
    """A camera before its zones."""
    return (key[0], key[1] or "")


def _check_text(text: str, index: FactIndex, carried: Scope | None) -> SentenceCheck:
    """Check a (possibly multi-sentence) answer as consecutive sentences."""
    reasons: list[str] = []
    subject, substantive = None, False
    for sentence in split_sentences(text):
        check = check_sentence(sentence, index, carried)
        reasons += check.reasons
        subject = subject or check.subject
        substantive = substantive or check.substantive
        carried = check.carried
    return SentenceCheck(reasons=reasons, subject=subject, carried=carried, substantive=substantive)


# --- Mending a sentence -----------------------------------------------------------------------------------------


def _mend(
    sentence: str,
    check: SentenceCheck,
    index: FactIndex,
    carried: Scope | None,
    regenerate: Callable[[str], str] | None,
    max_attempts: int,
    in_text: set[str],
) -> SentenceOutcome:
    about = check.subject.keys if check.subject else frozenset()
    attempts: list[Attempt] = []
    if regenerate is not None:
        wrong, reasons = sentence, check.reasons
        for _ in range(max_attempts):
            answer = _answer_text(regenerate(correction_prompt(wrong, reasons, index.facts, about)))
            answer_check = _check_text(answer, index, carried)
            if answer and answer_check.substantive and not answer_check.reasons:
                return SentenceOutcome(sentence, answer, "regenerated", tuple(check.reasons), tuple(attempts))
            reasons = answer_check.reasons or ["it states nothing that can be checked against the facts"]
            attempts.append(Attempt(answer, tuple(reasons)))
            wrong = answer or wrong
    candidates = [line for key in sorted(about, key=_key_order) for line in entity_sentences(index.facts, key)]
    replacement = next((line for line in candidates or summary_sentences(index.facts) if line not in in_text), "")
    return SentenceOutcome(sentence, replacement, "replaced", tuple(check.reasons), tuple(attempts))


def _answer_text(answer: str) -> str:
    """The model's answer without quotes and lead-in lines ("Here is the corrected sentence:")."""
    lines = [line.strip().strip("\"“”'").strip() for line in answer.strip().splitlines()]
    return " ".join(line for line in lines if line and not line.endswith(":"))
