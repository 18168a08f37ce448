"""The overview: every camera as a card (latest frame and heatmap, count, sparkline, state, open alerts), sorted and
filtered by site and crowding; its cards fragment for live updates; sign-in and plotly served from our own host."""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.factories import ago, count_history, frame_with_result
from webapp.alerts.models import Alert
from webapp.cameras.models import Camera, Site
from webapp.ingest.models import Frame

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("pages")]


@pytest.mark.parametrize("path", ["/", "/map/", "/alerts/", "/cameras/1/", "/cameras/1/zones/", "/reports/"])
def test_pages_need_a_signed_in_user(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_the_login_page_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="password"' in response.content


def test_a_user_without_a_role_sees_nothing(sign_in, camera):
    client = sign_in(None)
    for path in ["/", "/map/", "/map/data.json", "/alerts/", f"/cameras/{camera.pk}/", "/reports/"]:
        assert client.get(path).status_code == 403, path


def test_each_camera_has_a_card_with_its_latest_count(viewer, camera, other_camera):
    frame_with_result(camera, ago(minutes=20), 12.0)
    latest = frame_with_result(camera, ago(minutes=2), 37.4)

    response = viewer.get("/")

    assert response.status_code == 200
    page = response.content.decode()
    assert f'href="/cameras/{camera.pk}/"' in page and f'href="/cameras/{other_camera.pk}/"' in page
    cards = {card.camera.pk: card for card in response.context["cards"]}
    assert cards[camera.pk].result == latest.result and cards[other_camera.pk].result is None
    assert '<span class="count">37</span>' in page
    assert "no counted frame yet" in page  # the other camera


def test_the_sparkline_follows_the_last_hours(viewer, camera):
    for minutes, count in [(300, 10.0), (200, 40.0), (100, 20.0), (5, 30.0)]:
        frame_with_result(camera, ago(minutes=minutes), count)
    frame_with_result(camera, ago(hours=8), 99.0)  # before the sparkline's six hours

    card = viewer.get("/").context["cards"][0]

    points = [tuple(map(float, pair.split(","))) for pair in card.sparkline.split()]
    assert len(points) == 4
    xs, ys = zip(*points, strict=True)
    assert list(xs) == sorted(xs)
    # SVG y grows downwards: the peak (40) is highest, then 30, 20, 10.
    assert sorted(range(4), key=lambda i: ys[i]) == [1, 3, 2, 0]
    assert min(ys) == pytest.approx(2.0)


def test_cards_show_live_stale_failing_and_new_cameras(viewer, site):
    live = Camera.objects.create(site=site, name="live")
    frame_with_result(live, ago(minutes=1), 5.0)
    stale = Camera.objects.create(site=site, name="stale", stale_after_minutes=10)
    Frame.objects.filter(pk=frame_with_result(stale, ago(minutes=30), 5.0).pk).update(received_at=ago(minutes=30))
    failing = Camera.objects.create(site=site, name="failing")
    frame_with_result(failing, ago(minutes=5), 5.0)
    Frame.objects.create(
        camera=failing,
        captured_at=ago(minutes=1),
        content_hash="1" * 64,
        width=8,
        height=8,
        status=Frame.Status.FAILED,
        error="not an image",
    )
    new = Camera.objects.create(site=site, name="new")
    # Back-filling: yesterday's frames arrive and are counted now; nothing of the present is counted yet.
    behind = Camera.objects.create(site=site, name="behind")
    frame_with_result(behind, ago(days=1), 5.0)

    cards = {card.camera.pk: card.state for card in viewer.get("/").context["cards"]}

    assert cards == {live.pk: "live", stale.pk: "stale", failing.pk: "failing", new.pk: "new", behind.pk: "behind"}
    assert all(Camera.objects.get(pk=pk).state() == state for pk, state in cards.items())


def test_a_stale_camera_is_live_again_with_a_new_frame(camera):
    camera.stale_after_minutes = 5
    Frame.objects.filter(pk=frame_with_result(camera, ago(minutes=6), 1.0).pk).update(received_at=ago(minutes=6))
    assert camera.state() == "stale"
    frame_with_result(camera, ago(seconds=10), 1.0)
    assert camera.state() == "live"


@pytest.fixture
def fleet(db):
    """Two sites; cameras over, near and under their thresholds, and one without a threshold."""
    north, south = Site.objects.create(name="North"), Site.objects.create(name="South")
    made = {}
    for name, site, threshold, count in [
        ("A over", north, 100, 150.0),
        ("B high", north, 100, 80.0),
        ("C normal", south, 100, 20.0),
        ("D unknown", south, None, 500.0),
    ]:
        made[name] = Camera.objects.create(site=site, name=name, alert_threshold=threshold)
        frame_with_result(made[name], ago(minutes=1), count)
    return {"north": north, "south": south, **made}


def names(response) -> list[str]:
    return [card.camera.name for card in response.context["cards"]]


def test_cards_filter_by_site(viewer, fleet):
    assert names(viewer.get("/", {"site": fleet["north"].pk})) == ["A over", "B high"]
    assert names(viewer.get("/", {"site": fleet["south"].pk})) == ["C normal", "D unknown"]


def test_cards_filter_and_sort_by_crowding(viewer, fleet):
    assert [card.crowding for card in viewer.get("/").context["cards"]] == ["over", "high", "normal", "unknown"]
    assert names(viewer.get("/", {"crowding": "over"})) == ["A over"]
    assert names(viewer.get("/", {"crowding": "high"})) == ["B high"]
    assert names(viewer.get("/", {"sort": "crowding"})) == ["A over", "B high", "C normal", "D unknown"]
    # Grouped by site: South, whose D counts most, then North.
    assert names(viewer.get("/", {"sort": "count"})) == ["D unknown", "C normal", "A over", "B high"]


def test_filters_that_match_nothing_say_so(viewer, fleet):
    response = viewer.get("/", {"site": fleet["south"].pk, "crowding": "over"})
    assert "No camera matches these filters." in response.content.decode()


def test_unknown_filter_values_are_ignored(viewer, fleet):
    for site in ["x", "²"]:
        assert len(viewer.get("/", {"crowding": "packed", "sort": "shoe-size", "site": site}).context["cards"]) == 4


def test_the_cards_fragment_keeps_the_filters_and_shows_new_counts(viewer, fleet):
    page = viewer.get("/", {"site": fleet["north"].pk}).content.decode()
    assert f'data-live-url="/?site={fleet["north"].pk}&fragment=cards"' in page

    frame_with_result(fleet["B high"], timezone.now() - timedelta(seconds=5), 123.0)
    fragment = viewer.get("/", {"site": fleet["north"].pk, "fragment": "cards"})

    body = fragment.content.decode()
    assert "<html" not in body and '<span class="count">123</span>' in body
    assert "C normal" not in body


def test_open_alerts_show_on_the_card_and_in_the_banner(viewer, fleet):
    frame = fleet["A over"].frames.get()
    Alert.objects.create(
        camera=fleet["A over"], threshold=100, value=150, peak=150, frame=frame, raised_at=frame.captured_at
    )
    page = viewer.get("/").content.decode()
    assert '<span class="alert-flag">1 alert</span>' in page
    assert "1 open alert</a> waiting for acknowledgement" in page


def test_the_overview_says_when_there_are_no_cameras(viewer):
    assert "No cameras yet" in viewer.get("/").content.decode()


def test_plotly_is_served_from_static(client, pages):
    response = client.get("/static/plotly/plotly.min.js")
    assert response.status_code == 200
    assert "javascript" in response["Content-Type"]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert len(body) > 1_000_000
    assert b"plotly.js" in body[:1000]


def test_the_overview_costs_the_same_queries_for_many_cameras(viewer, site):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_for_cards() -> int:
        with CaptureQueriesContext(connection) as captured:
            viewer.get("/", {"fragment": "cards"})
        return len(captured)

    for index in range(2):
        frame_with_result(
            Camera.objects.create(site=site, name=f"few {index}", alert_threshold=10), ago(minutes=1), 5.0
        )
    few = queries_for_cards()
    for index in range(10):
        frame_with_result(Camera.objects.create(site=site, name=f"many {index}"), ago(minutes=1), 5.0)
    assert queries_for_cards() == few


@pytest.fixture
def needy(db):
    """Cameras on two sites, one of each kind of attention, made so that their names sort against their urgency."""
    quiet, busy = Site.objects.create(name="A quiet site"), Site.objects.create(name="B busy site")
    made = {name: Camera.objects.create(site=busy, name=name, alert_threshold=100) for name in ("1 fine", "2 over")}
    frame_with_result(made["1 fine"], ago(minutes=1), 10.0)
    frame_with_result(made["2 over"], ago(minutes=1), 150.0)
    for name in ("3 alert", "4 stale", "5 behind", "6 near", "7 new", "8 fine"):
        made[name] = Camera.objects.create(site=quiet, name=name, alert_threshold=100)
    alerted = frame_with_result(made["3 alert"], ago(minutes=1), 50.0)
    Alert.objects.create(
        camera=made["3 alert"], threshold=100, value=120, peak=120, frame=alerted, raised_at=ago(hours=1)
    )
    Frame.objects.filter(pk=frame_with_result(made["4 stale"], ago(minutes=30), 5.0).pk).update(
        received_at=ago(minutes=30)
    )
    frame_with_result(made["5 behind"], ago(minutes=3), 5.0)
    Frame.objects.create(  # waiting for a worker for half an hour
        camera=made["5 behind"],
        captured_at=ago(minutes=30),
        received_at=ago(minutes=30),
        content_hash="2" * 64,
        width=8,
        height=8,
    )
    frame_with_result(made["6 near"], ago(minutes=1), 80.0)
    frame_with_result(made["8 fine"], ago(minutes=1), 30.0)
    return made


def test_what_needs_attention_comes_first_grouped_by_site(viewer, needy):
    response = viewer.get("/")
    # The busy site first: its camera over threshold is the most pressing of all; then the quiet site's, by urgency.
    assert names(response) == ["2 over", "1 fine", "3 alert", "4 stale", "5 behind", "6 near", "8 fine", "7 new"]
    assert [card.attention for card in response.context["cards"]] == [
        "over",
        "live",
        "alerts",
        "stale",
        "behind",
        "high",
        "live",
        "new",
    ]
    [busy, quiet] = response.context["groups"]
    assert (busy.site.name, busy.cameras, busy.attention) == ("B busy site", 2, [("over", "over threshold", 1)])
    assert quiet.attention == [
        ("alerts", "open alerts", 1),
        ("stale", "stale", 1),
        ("behind", "behind", 1),
        ("high", "near threshold", 1),
    ]
    page = response.content.decode()
    assert page.index(">B busy site</a>") < page.index(">A quiet site</a>")
    assert "1 frame waiting, the oldest for 30" in page
    assert 'href="?attention=stale">1 stale</a>' in page


def test_the_overview_filters_by_attention_and_by_name(viewer, needy):
    assert names(viewer.get("/", {"attention": "stale"})) == ["4 stale"]
    # Both live: the quiet site's camera is the fuller of the two, so its site comes first.
    assert names(viewer.get("/", {"attention": "live"})) == ["8 fine", "1 fine"]
    assert names(viewer.get("/", {"q": "FINE"})) == ["8 fine", "1 fine"]
    quiet = needy["8 fine"].site_id
    assert names(viewer.get("/", {"q": "fine", "site": quiet})) == ["8 fine"]
    # The counts by kind stay those of the other filters, so another kind is one click away.
    kinds = viewer.get("/", {"attention": "stale", "site": quiet}).context["kinds"]
    assert ("alerts", "open alerts", 1) in kinds and ("over", "over threshold", 1) not in kinds
    assert "No camera matches these filters." in viewer.get("/", {"q": "nothing like it"}).content.decode()
    assert len(viewer.get("/", {"attention": "panic"}).context["cards"]) == 8  # an unknown kind is ignored


def test_the_overview_pages_through_the_fleet_in_bounded_pages(viewer, site):
    Camera.objects.bulk_create(Camera(site=site, name=f"cam {index:03d}") for index in range(120))

    first = viewer.get("/")
    assert len(first.context["cards"]) == 50 and first.context["matching"] == 120
    assert 'href="?page=2" rel="next"' in first.content.decode()
    last = viewer.get("/", {"page": 3, "sort": "name"})
    assert names(last) == [f"cam {index:03d}" for index in range(100, 120)]
    assert "cameras 101\N{EN DASH}120 of 120" in last.content.decode()
    assert 'href="?sort=name&page=2" rel="prev"' in last.content.decode()
    assert len(viewer.get("/", {"per_page": 10_000}).context["cards"]) == 120  # at most 200 a page
    assert len(viewer.get("/", {"per_page": 7, "page": "x"}).context["cards"]) == 7
    assert names(viewer.get("/", {"page": 99, "sort": "name"}))[-1] == "cam 119"  # past the end: the last page
    assert 'data-live-url="/?page=2&fragment=cards"' in viewer.get("/", {"page": 2}).content.decode()


def test_a_page_of_cards_costs_the_same_queries_for_a_longer_history(viewer, site):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    camera = Camera.objects.create(site=site, name="kept", alert_threshold=10)
    frame_with_result(camera, ago(minutes=1), 5.0)

    def queries_for_cards() -> int:
        with CaptureQueriesContext(connection) as captured:
            viewer.get("/", {"fragment": "cards"})
        return len(captured)

    short = queries_for_cards()
    count_history(camera, [ago(minutes=5 * step) for step in range(2, 2000)], lambda moment: 7.0)
    assert queries_for_cards() == short
