"""The storage of collected static files: WhiteNoise's compressed manifest storage, which also rewrites the relative
imports between the dashboard's ES modules to the hashed names it writes."""

from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class ModuleManifestStaticFilesStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files whose `import ... from "./x.js";` statements name the hashed files.

    Without this, a module imports the unhashed name, which WhiteNoise serves with a short cache lifetime and which can
    pair a new page's script with an old browser-cached import (or the other way round) across a deployment. Django
    leaves this off by default because its pattern may misread unusual JavaScript: tests/webapp/test_static_modules.py
    collects every static file of the project this way and checks each import."""

    support_js_module_import_aggregation = True
