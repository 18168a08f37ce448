"""Verifier: right sentences pass untouched, wrong ones are re-asked or replaced by plain sentences from the facts."""

import pytest

from llm_reports.facts import compute_facts
from llm_reports.plain import plain_sentences
from llm_reports.verify import (
    correction_prompt,
    sentence_problems,
    split_sentences,
    verify,
)
from tests.llm_reports.sample_history import build_history

FACTS = compute_facts(build_history())

CORRECT_NARRATIVE = (
    "On Sat 28 Nov, East entrance was the busiest camera, averaging 57 people and peaking at 220 at 2 pm. "
    "Its Far side zone went over its threshold of 150 once, at 14:00, and an alert was raised there at 2:10 p.m. "
    "West gate peaked at 140 at 19:00 after breaching its 100-person threshold twice, with an alert at 18:05. "
    "Gate 2 dipped to 5 people at 8 a.m., below its usual 20.\n"
    "Across all 3 cameras the average was 4% lower than the previous day and 17% higher than a week earlier."
)


def test_a_correct_narrative_passes_untouched():
    verification = verify(CORRECT_NARRATIVE, FACTS)
    assert [outcome.reasons for outcome in verification.sentences] == [()] * 5
    assert verification.text == CORRECT_NARRATIVE
    assert verification.untouched and (verification.replaced, verification.regenerated) == (0, 0)


def problems(text):
    """Every reason the verifier gives for the text, read as a narrative (so "It" refers back)."""
    return [reason for outcome in verify(text, FACTS).sentences for reason in outcome.reasons]


@pytest.mark.parametrize(
    "text",
    [
        "East entrance averaged 56.5 people over the 24 hours of Saturday.",
        "On 28 November 2026 East entrance counted 2,880 frames.",
        "On 28/11 Gate 2 averaged about 19 people, 3% down on the day before.",
        "Far side of East entrance peaked at 160 people at 14:00 on Saturday.",
        "East entrance peaked at 220 between 14:00 and 15:00.",
        "West gate was the 2nd busiest camera, with 2 alerts raised across the site.",
        "At Bund Plaza, the East entrance camera averaged 57 people, 175 at the 14:00 spike.",
        "Gate 2 (usually 20 people at 8 AM) fell to 5.",
        "Overall the average across all cameras fell by -4% on the previous day, and rose 17 per cent on the week.",
        "West gate's peak of 140 people at 7 pm was 40% above its threshold.",
        "Operators should keep an eye on the evening rush.",
        "East entrance averaged 57 people. It peaked at 220 at 14:00.",
    ],
)
def test_right_facts_in_other_words_pass(text):
    assert problems(text) == []


def test_a_difference_that_is_no_fact_fails():
    """121 = 175 - 54 is true, but it is not a computed fact: the verifier accepts facts, not arithmetic."""
    assert problems("East entrance was 121 above its usual level.") == ["121 is not a fact about East entrance"]


@pytest.mark.parametrize(
    ("sentence", "reason"),
    [
        ("West gate peaked at 220 people.", "220 is not a fact about West gate"),
        ("Near side of East entrance peaked at 160.", "160 is not a fact about East entrance"),
        ("East entrance averaged 57 people. It peaked at 140.", "140 is not a fact about East entrance"),
        ("Camera 7 recorded a peak of 220.", "'7' is not a known camera or zone"),
        ("The North plaza camera stayed quiet all day.", "'North plaza' is not a known camera or zone"),
        ("East entrance peaked at 220 at 15:00.", "15:00 is not a time in the facts about East entrance"),
        ("East entrance peaked at 220 at 3 pm.", "3 pm is not a time in the facts about East entrance"),
        ("West gate peaked at 140 at 14:00.", "14:00 is not a time in the facts about West gate"),
        ("East entrance peaked at 220 on Sunday.", "Sunday is not a day of this report"),
        (
            "East entrance peaked at 220 at 14:00 on Fri 27 Nov.",
            "14:00 is not a time in the facts about East entrance on the day named",
        ),
        ("Across 3 cameras the average was 4% higher than the previous day.", "4% is not a fact in this report"),
        ("The average of West gate was 52% higher than the previous day.", "52% is not a fact about West gate"),
        ("East entrance recorded a 10% decrease over last week.", "10% is not a fact about East entrance"),
        ("Across 3 cameras the average changed by -17% on the week.", "-17% is not a fact in this report"),
        ("West gate was the busiest camera.", "West gate is not the busiest camera"),
        ("The quietest zone was Far side.", "Far side is not the quietest zone"),
        ("East entrance was the 2nd busiest camera.", "2nd is not the rank of East entrance"),
        ("In 2025 East entrance was busy.", "2025 is not a fact about East entrance"),
    ],
)
def test_wrong_facts_fail_with_a_reason(sentence, reason):
    assert reason in problems(sentence)


def test_a_wrong_number_is_replaced_by_a_plain_sentence():
    narrative = "East entrance peaked at 1234 people at 14:00. Gate 2 dipped to 5 people at 8 a.m."
    verification = verify(narrative, FACTS)
    first, second = verification.sentences
    assert first.action == "replaced"
    assert first.reasons == ("1234 is not a fact about East entrance",)
    assert first.final == "East entrance averaged 57 people and peaked at 220 at 14:00 on Sat 28 Nov."
    assert second.action == "kept"
    assert "1234" not in verification.text
    assert verification.replaced == 1 and verification.regenerated == 0
    assert verification.text == f"{first.final} Gate 2 dipped to 5 people at 8 a.m."


def test_a_list_keeps_its_numbers_and_markers():
    narrative = (
        "**Daily report - Saturday, 28 November 2026**\n\n"
        "1. East entrance was the busiest camera, with a peak of 220 at 14:00.\n"
        "2. West gate peaked at 999 people.\n"
        "- Gate 2 dipped to 5 people at 08:00."
    )
    verification = verify(narrative, FACTS)
    assert [outcome.action for outcome in verification.sentences] == ["kept", "kept", "replaced", "kept"]
    plain = "West gate averaged 30 people and peaked at 140 at 19:00 on Sat 28 Nov."
    assert verification.sentences[2].final == f"2. {plain}"
    assert verification.text == narrative.replace("West gate peaked at 999 people.", plain)


def test_the_replaced_count_and_no_repeated_replacement():
    narrative = (
        "East entrance peaked at 1234 people. East entrance averaged 99 people. "
        "West gate peaked at 140 at 19:00. Camera 9 was empty."
    )
    verification = verify(narrative, FACTS)
    assert [outcome.action for outcome in verification.sentences] == ["replaced", "replaced", "kept", "replaced"]
    assert verification.replaced == 3
    first, second = verification.sentences[0].final, verification.sentences[1].final
    assert first != second and "East entrance" in second, "the next plain sentence about the same camera"
    assert verification.sentences[3].final == plain_sentences(FACTS)[0], "no known entity: the period summary"
    assert verify(verification.text, FACTS).untouched


def test_regenerate_is_asked_and_its_correct_answer_kept():
    prompts = []

    def regenerate(prompt):
        prompts.append(prompt)
        return 'Here is the corrected sentence:\n"East entrance peaked at 220 people at 14:00."'

    verification = verify("East entrance peaked at 180 people at 14:00.", FACTS, regenerate=regenerate)
    (outcome,) = verification.sentences
    assert (outcome.action, outcome.final) == ("regenerated", "East entrance peaked at 220 people at 14:00.")
    assert verification.regenerated == 1 and verification.replaced == 0
    assert len(prompts) == 1
    assert "East entrance peaked at 180 people at 14:00." in prompts[0]
    assert "180 is not a fact about East entrance" in prompts[0]
    assert "East entrance averaged 57 people and peaked at 220 at 14:00 on Sat 28 Nov." in prompts[0]


def test_failed_regenerations_end_in_a_replacement():
    answers = iter(["East entrance peaked at 230 people.", "Sure, happy to help!", "never asked"])
    verification = verify("East entrance peaked at 180.", FACTS, regenerate=lambda _: next(answers), max_attempts=2)
    (outcome,) = verification.sentences
    assert outcome.action == "replaced"
    assert [attempt.text for attempt in outcome.attempts] == [
        "East entrance peaked at 230 people.",
        "Sure, happy to help!",
    ]
    assert outcome.attempts[0].reasons == ("230 is not a fact about East entrance",)
    assert outcome.attempts[1].reasons == ("it states nothing that can be checked against the facts",)
    assert verification.replaced == 1


@pytest.mark.parametrize("history", [build_history(), build_history(planted=False), build_history(weeks=1)])
def test_plain_sentences_always_verify(history):
    facts = compute_facts(history)
    sentences = plain_sentences(facts)
    assert [sentence_problems(sentence, facts) for sentence in sentences] == [[]] * len(sentences)
    verification = verify(" ".join(sentences), facts)
    assert verification.untouched
    assert split_sentences(verification.text) == sentences


def test_correction_prompt_lists_the_facts_about_the_entity():
    prompt = correction_prompt(
        "West gate peaked at 220.", ["220 is not a fact about West gate"], FACTS, [("West gate", None)]
    )
    assert "West gate averaged 30 people and peaked at 140 at 19:00 on Sat 28 Nov." in prompt
    assert "East entrance averaged" not in prompt
    assert prompt.endswith("Reply with the sentence only.")


def test_sentences_split_on_ends_and_lines_but_not_on_times_or_decimals():
    text = "Peak at 2 p.m. on Saturday. East entrance averaged 56.5 people!\nGate 2 was calm."
    assert split_sentences(text) == [
        "Peak at 2 p.m. on Saturday.",
        "East entrance averaged 56.5 people!",
        "Gate 2 was calm.",
    ]


def test_strict_checking_drops_filler_and_mends_rambling():
    """In a report, a sentence with nothing checkable is invented filler; an endless one is no report sentence."""
    filler = "Operators also collected audio recordings and GPS tracks across the city."
    rambling = "East entrance " + " and then ".join(["people walked on"] * 20) + "."
    lenient = verify(filler, FACTS)
    assert lenient.text == filler
    strict = verify(f"{filler} {rambling}", FACTS, strict=True)
    assert "audio" not in strict.text
    assert [outcome.action for outcome in strict.sentences] == ["dropped", "replaced"]
    for sentence in split_sentences(strict.text):
        assert sentence_problems(sentence, FACTS) == []
