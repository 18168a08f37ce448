"""The tests' settings: the project's, read as a developer's machine reads them (DEBUG on unless the environment says
otherwise). Tests of production behaviour set the environment of the processes they start themselves."""

import os

os.environ.setdefault("DJANGO_DEBUG", "true")

from webapp.settings import *  # noqa: F403
