"""The pages' scripts are ES modules, collected as production collects them: hashed names, and each relative import
naming the hashed file it loads, which WhiteNoise serves (with DEBUG off) as cacheable for ever."""

import posixpath
import re
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.contrib.staticfiles.storage import staticfiles_storage
from django.core.management import call_command

from webapp.cameras.models import Camera

pytestmark = pytest.mark.django_db

# A module's relative imports: `import ... from "./x.js";`, `export ... from "../y.js";`, `import "./z.js";`.
RELATIVE_IMPORT = re.compile(r"""(?:\bfrom|\bimport)\s*["'](\.{1,2}/[^"']+)["']""")
OWN_SCRIPTS = sorted(
    path.relative_to(django_settings.BASE_DIR / "static").as_posix()
    for path in (django_settings.BASE_DIR / "static").rglob("*.js")
)


@pytest.fixture
def collected(settings, tmp_path) -> dict[str, str]:
    """Every static file collected into a fresh STATIC_ROOT by the production storage; its manifest (name to hashed
    name)."""
    settings.DEBUG = False
    settings.STATIC_ROOT = tmp_path / "collected"
    call_command("collectstatic", "--noinput", verbosity=0)
    return dict(staticfiles_storage.hashed_files)


def imports_of(script: str) -> list[str]:
    return RELATIVE_IMPORT.findall(script)


def test_the_scripts_import_one_another():
    """The premise of the other tests: some scripts import others (so a broken rewrite would show)."""
    sources = {name: (django_settings.BASE_DIR / "static" / name).read_text() for name in OWN_SCRIPTS}
    assert "./fetch.js" in imports_of(sources["dashboard/camera.js"])
    assert set(imports_of(sources["calibration/calibrate.js"])) == {"../dashboard/fetch.js", "./marker.js"}


def test_collected_modules_import_the_hashed_files(collected, settings):
    root = Path(settings.STATIC_ROOT)
    for name in OWN_SCRIPTS:
        hashed = collected[name]
        assert hashed != name, f"{name} was not given a hashed name"
        for target in imports_of((root / hashed).read_text()):
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(hashed), target))
            assert resolved in collected.values(), f"{hashed} imports {target}, which is no hashed file"
            assert (root / resolved).is_file()


def test_the_camera_page_loads_its_module_and_what_it_imports_as_cacheable_files(
    collected, viewer, camera: Camera, settings
):
    # `viewer` turned DEBUG on for the pages; production has it off, and WhiteNoise then serves the collected files.
    settings.DEBUG = False
    page = viewer.get(f"/cameras/{camera.pk}/").content.decode()
    script = f"/static/{collected['dashboard/camera.js']}"
    assert f'<script type="module" src="{script}"></script>' in page
    served = viewer.get(script)
    assert served.status_code == 200
    body = b"".join(served.streaming_content).decode()
    [fetch_helper] = imports_of(body)
    helper = viewer.get(posixpath.normpath(posixpath.join(posixpath.dirname(script), fetch_helper)))
    assert helper.status_code == 200
    assert "immutable" in helper["Cache-Control"]
