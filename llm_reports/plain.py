"""Plain sentences that state the facts: the fact list of the model's prompt and the verifier's replacements.

The prompt lists these sentences as the only facts the model may use, and the verifier puts one in place of a
sentence it could not mend, so they must pass the verifier's checks themselves (a test holds that). Their wording is
written for those checks: a change says its kind and direction the way `claims` reads them ("12% higher than the
previous day"), and a zone is always named with its camera, since zone names repeat across cameras.
"""

from __future__ import annotations

from datetime import datetime

from llm_reports.facts import EntityKey, Facts, format_day, format_people, format_percent, format_time, round_shown


def plain_sentences(facts: Facts) -> list[str]:
    """Every fact as a plain sentence: the period summary, the rankings, then each camera and each of its zones.

    The prompt lists these as the model's facts, and the verifier falls back on them, so they must verify.
    """
    sentences = summary_sentences(facts)
    for camera in facts.cameras:
        sentences += entity_sentences(facts, camera.key)
        for zone in facts.zones_of(camera.camera):
            sentences += entity_sentences(facts, zone.key)
    return sentences


def summary_sentences(facts: Facts) -> list[str]:
    """The period as a whole: the typical camera's count and its changes, events, rankings and highest peaks."""
    if facts.overall_mean is None:
        return ["There were no counts in this period."]
    camera_count = len(facts.cameras)
    changes = _change_phrases(facts, facts.overall_day_change.percent, facts.overall_week_change.percent)
    sentences = [
        f"Across {_counted(camera_count, 'camera')}, a camera counted {format_people(facts.overall_mean)} people "
        f"on average" + (f", {' and '.join(changes)}" if changes else "") + "."
    ]
    breach_count = sum(breach.count for breach in facts.breaches)
    alerts = f"{_counted(len(facts.alerts), 'alert')} {'was' if len(facts.alerts) == 1 else 'were'} raised"
    breaches = f"{_counted(breach_count, 'count')} went over a threshold"
    unusual = f"{_counted(len(facts.unusual), 'count')} {'was' if len(facts.unusual) == 1 else 'were'} unusual"
    events = f"{alerts}, {breaches} and {unusual} for the hour and weekday."
    sentences.append(events[0].upper() + events[1:])
    sentences += _ranking_sentences(facts, [(camera, None) for camera in facts.busiest_cameras])
    sentences += _ranking_sentences(facts, list(facts.busiest_zones))
    for key, kind in ((facts.highest_camera_peak, "camera"), (facts.highest_zone_peak, "zone")):
        if key is not None:
            series = facts.series(key)
            sentences.append(
                f"{_entity_name(key)} had the highest peak of any {kind}: {format_people(series.peak)} people "
                f"at {_when(series.peak_at)}."
            )
    return sentences


def entity_sentences(facts: Facts, key: EntityKey) -> list[str]:
    """Plain sentences about one camera (zone None) or zone: its level, changes, breaches, unusual values, alerts."""
    series = facts.series(key)
    name = _entity_name(key)
    if series.mean is None:
        return [f"{name} had no counts in this period."]
    sentences = [
        f"{name} averaged {format_people(series.mean)} people and peaked at {format_people(series.peak)} "
        f"at {_when(series.peak_at)}."
    ]
    changes = _change_phrases(facts, series.day_change.percent, series.week_change.percent)
    if changes:
        sentences.append(f"The average of {name} was {' and '.join(changes)}.")
    for breach in facts.breaches:
        if breach.key == key:
            threshold = format_people(breach.threshold)
            highest = format_people(breach.highest_peak)
            if breach.count == 1:
                sentences.append(
                    f"{name} was over its threshold of {threshold} people once, peaking at {highest} "
                    f"at {_when(breach.highest_peak_at)}."
                )
            elif breach.first_at.date() == breach.last_at.date() == breach.highest_peak_at.date():
                sentences.append(
                    f"{name} was over its threshold of {threshold} people {breach.count} times on "
                    f"{format_day(breach.first_at)}, first at {format_time(breach.first_at)} and last at "
                    f"{format_time(breach.last_at)}, with a highest peak of {highest} at "
                    f"{format_time(breach.highest_peak_at)}."
                )
            else:
                sentences.append(
                    f"{name} was over its threshold of {threshold} people {breach.count} times, first at "
                    f"{_when(breach.first_at)} and last at {_when(breach.last_at)}, with a highest peak of "
                    f"{highest} at {_when(breach.highest_peak_at)}."
                )
    for unusual in facts.unusual:
        if unusual.key == key:
            sentences.append(
                f"At {_when(unusual.at)}, {name} averaged {format_people(unusual.value)} people, "
                f"{unusual.direction} its usual {format_people(unusual.usual)} for that hour and weekday."
            )
    for alert in facts.alerts:
        if alert.key == key:
            state = "acknowledged" if alert.acknowledged else "not acknowledged"
            sentences.append(
                f"An alert was raised for {name} at {_when(alert.raised_at)}: {format_people(alert.count)} people "
                f"against a threshold of {format_people(alert.threshold)}, {state}."
            )
    return sentences


def _entity_name(key: EntityKey) -> str:
    """How sentences name an entity: a zone always with its camera, since zone names repeat across cameras."""
    camera, zone = key
    if zone is None:
        return camera
    return f"{camera}'s {zone}" + ("" if zone.lower().endswith(("zone", "area")) else " zone")


def _when(moment: datetime) -> str:
    return f"{format_time(moment)} on {format_day(moment)}"


def _counted(count: int, noun: str) -> str:
    return f"{'no' if count == 0 else count} {noun}{'' if count == 1 else 's'}"


def _change_phrases(facts: Facts, day_percent: float | None, week_percent: float | None) -> list[str]:
    """ "12% higher than the previous day": the words the verifier reads the change's kind and direction from."""
    span = "day" if facts.is_single_day else "period"
    phrases = []
    for percent, against in ((day_percent, f"the previous {span}"), (week_percent, f"the same {span} a week earlier")):
        if percent is None:
            continue
        if round_shown(percent) == 0:
            phrases.append(f"about the same as {against}")
        else:
            phrases.append(f"{format_percent(percent)} {'higher' if percent > 0 else 'lower'} than {against}")
    return phrases


def _ranking_sentences(facts: Facts, ranked: list[EntityKey]) -> list[str]:
    if len(ranked) < 2:
        return []
    kind = "camera" if ranked[0][1] is None else "zone"
    followers = [_entity_name(key) for key in ranked[1:]]
    followed_by = followers[0] if len(followers) == 1 else f"{', '.join(followers[:-1])} and {followers[-1]}"
    return [f"By average count, {_entity_name(ranked[0])} was the busiest {kind}, followed by {followed_by}."]
