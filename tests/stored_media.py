"""The media storage the tests write to (the local disk or the run's S3 bucket): what is in it, and a file damaged
in it."""

import posixpath
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from webapp.ingest.storage import local_copy


def stored_files(folder: str = "") -> list[str]:
    """The name of every file in the media storage (the local disk or the bucket) under `folder`."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:  # a folder of the local disk that no file has made yet
        return []
    names = [posixpath.join(folder, name) for name in files]
    for inner in folders:
        names += stored_files(posixpath.join(folder, inner))
    return sorted(names)


def stored_bytes(name: str) -> bytes:
    """The content of the stored file `name`."""
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def stored_copy(field_file) -> Path:
    """A local copy of a stored file, for what reads only paths (checkpoints), as the workers make one."""
    return local_copy(field_file, settings.CROWDSCOPE_WEIGHTS_CACHE_DIR)


def replace_stored(name: str, data: bytes) -> None:
    """Put `data` in place of the stored file `name` (a file damaged in storage)."""
    default_storage.delete(name)
    assert default_storage.save(name, ContentFile(data)) == name
