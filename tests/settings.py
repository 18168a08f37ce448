"""The tests' settings: the project's, read as a developer's machine reads them (DEBUG on unless the environment says
otherwise). Tests of production behaviour set the environment of the processes they start themselves.

CROWDSCOPE_TEST_STORAGE picks the media storage of the whole run: `local` (the default: MEDIA_ROOT on disk) or `s3`,
a bucket on a loopback S3 server (moto) that tests/conftest.py starts for the session. The storage settings go into
the environment, so the processes the end-to-end tests start (which inherit it) use the same bucket."""

import os

from tests.loopback import free_port

os.environ.setdefault("DJANGO_DEBUG", "true")

TEST_STORAGE = os.environ.setdefault("CROWDSCOPE_TEST_STORAGE", "local")
if TEST_STORAGE not in ("local", "s3"):
    raise RuntimeError(f"CROWDSCOPE_TEST_STORAGE must be local or s3, not {TEST_STORAGE!r}")
# setdefault: a process started by a test inherits the values of the run that started it (its server's port).
os.environ.setdefault("CROWDSCOPE_TEST_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
os.environ.setdefault("CROWDSCOPE_TEST_S3_BUCKET", "crowdscope-tests")
if TEST_STORAGE == "s3":
    os.environ.setdefault("CROWDSCOPE_STORAGE", "s3")
    os.environ.setdefault("CROWDSCOPE_S3_BUCKET", os.environ["CROWDSCOPE_TEST_S3_BUCKET"])
    os.environ.setdefault("CROWDSCOPE_S3_ENDPOINT_URL", os.environ["CROWDSCOPE_TEST_S3_ENDPOINT_URL"])
    os.environ.setdefault("CROWDSCOPE_S3_ACCESS_KEY_ID", "crowdscope-tests")
    os.environ.setdefault("CROWDSCOPE_S3_SECRET_ACCESS_KEY", "crowdscope-tests")

from webapp.settings import *  # noqa: E402, F403
