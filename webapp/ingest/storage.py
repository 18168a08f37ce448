"""Media files through Django's storage API, on the local disk or in an S3-compatible bucket alike: writing and
reading them, telling a storage that cannot take a file *now* (full, over quota, throttling, unreachable: worth
another try later, nothing lost) from any other failure, and local copies for libraries that read only paths."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, default_storage
from django.db.models.fields.files import FieldFile
from storages.utils import clean_name

log = logging.getLogger(__name__)

# The disk (or the user's quota) is full: worth trying again once an operator has made room.
STORAGE_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
# What S3-compatible servers answer when they cannot take a write now but may later: full or over quota (MinIO's
# own codes included), throttling, a server in trouble; and a bucket not there (yet), which an operator fixes.
BUCKET_BUSY_CODES = frozenset(
    {
        "QuotaExceeded",
        "XMinioAdminBucketQuotaExceeded",
        "XMinioStorageFull",
        "InsufficientStorage",
        "SlowDown",
        "ServiceUnavailable",
        "RequestTimeout",
        "InternalError",
        "NoSuchBucket",
    }
)
BUCKET_BUSY_STATUSES = frozenset({500, 502, 503, 504, 507})


class StorageUnavailable(OSError):
    """The media storage cannot take or give a file now (disk full, bucket full, over quota, throttling or
    unreachable): nothing was written, and the same call is worth making again later. An OSError, so that code which
    cleans up after any failed write does so after this one too."""


def on_local_disk(storage: Storage) -> bool:
    """Whether `storage` keeps its files on this host's disk (else: a bucket that every host shares)."""
    return isinstance(storage, FileSystemStorage)


def unavailability(error: BaseException) -> str | None:
    """Why the storage cannot serve now, when `error` (or an error it was raised from) says so, in words fit for a
    gateway (no path, no address); None for an error that another try would meet again (a missing file, a refused
    credential, a bug)."""
    # botocore is imported here, on a failure only: a web process on the local disk never loads it.
    from botocore.exceptions import ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, StorageUnavailable):
            return str(cause)
        if isinstance(cause, OSError) and cause.errno in STORAGE_FULL_ERRNOS:
            return f"the media disk is full: {os.strerror(cause.errno)}"  # not the file's path: gateways read it
        if isinstance(cause, (BotoConnectionError, HTTPClientError)):
            return f"the media bucket is unreachable ({type(cause).__name__})"  # not its address: gateways read it
        if isinstance(cause, ClientError):
            code = cause.response.get("Error", {}).get("Code", "")
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in BUCKET_BUSY_CODES or status in BUCKET_BUSY_STATUSES:
                return f"the media bucket cannot take it now ({code or 'error'}, HTTP {status})"
        cause = cause.__cause__ or cause.__context__
    return None


@contextmanager
def unavailable_as_retryable() -> Iterator[None]:
    """Raise StorageUnavailable, from the original error, for any failure inside that `unavailability` explains."""
    try:
        yield
    except StorageUnavailable:
        raise
    except Exception as error:
        reason = unavailability(error)
        if reason is None:
            raise
        raise StorageUnavailable(reason) from error


def free_media_bytes() -> int | None:
    """Free bytes on the file system that holds MEDIA_ROOT (or would, before the first file creates it); None when the
    media storage is a bucket, which has no free space to read and says it is full by refusing writes."""
    if not on_local_disk(default_storage):
        return None
    path = Path(settings.MEDIA_ROOT).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def write_media_file(field_file: FieldFile, filename: str, data: bytes) -> None:
    """Write `data` as `field_file`'s file (named by its field's upload_to; the row is not saved). Raises
    StorageUnavailable when the storage cannot take it now; a write that fails leaves no partial file behind."""
    field, storage = field_file.field, field_file.storage
    wanted = field.generate_filename(field_file.instance, filename)
    with unavailable_as_retryable():
        if not on_local_disk(storage):
            # A PUT is all or nothing: no partial object to look for. The storage picks a free name itself.
            field_file.name = storage.save(wanted, ContentFile(data), field.max_length)
            return
        name = storage.get_available_name(wanted, field.max_length)
        try:
            field_file.name = storage.save(name, ContentFile(data), field.max_length)
        except OSError:
            # Only a partial file: a whole one at this name is another writer's, who took the name first.
            if storage.exists(name) and storage.size(name) < len(data):
                storage.delete(name)
            raise


def read_media_file(field_file: FieldFile) -> bytes:
    """The stored file's bytes. Raises FileNotFoundError when it is gone, StorageUnavailable when the storage cannot
    be read now."""
    with unavailable_as_retryable(), field_file.storage.open(field_file.name, "rb") as handle:
        return handle.read()


# S3's DeleteObjects takes at most this many keys a request.
BUCKET_DELETE_BATCH = 1000


def delete_media_files(files: Iterable[FieldFile]) -> None:
    """Delete the stored files (a name already gone is no error): one by one on the disk, a thousand names a request
    in a bucket, where retention deletes hundreds of thousands a day."""
    in_buckets: dict[int, tuple[Storage, list[str]]] = {}
    for file in files:
        if on_local_disk(file.storage) or not hasattr(file.storage, "bucket"):
            file.storage.delete(file.name)
        else:
            in_buckets.setdefault(id(file.storage), (file.storage, []))[1].append(file.name)
    for storage, names in in_buckets.values():
        # The keys as S3Storage.delete makes them (its location prefix before the name).
        keys = [storage._normalize_name(clean_name(name)) for name in names]
        for start in range(0, len(keys), BUCKET_DELETE_BATCH):
            batch = keys[start : start + BUCKET_DELETE_BATCH]
            storage.bucket.delete_objects(Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True})


def _fingerprint(storage: Storage, name: str) -> str:
    """What changes when the stored file is replaced: its ETag in a bucket (one HEAD), size and modification time
    on a disk. Raises FileNotFoundError when it is gone."""
    if on_local_disk(storage):
        return f"{storage.size(name)}-{storage.get_modified_time(name).timestamp()}"
    from botocore.exceptions import ClientError
    from storages.utils import clean_name

    # django-storages' own key for the name (the bucket's prefix, CROWDSCOPE_S3_PREFIX, before it).
    stored = storage.bucket.Object(storage._normalize_name(clean_name(name)))
    try:
        return stored.e_tag.strip('"')
    except ClientError as error:
        if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            raise FileNotFoundError(f"{name} is not in the media bucket") from error
        raise


def local_copy(field_file: FieldFile, folder: Path) -> Path:
    """A file on this host with the stored file's bytes, for libraries that load only from a path (torch
    checkpoints): `folder/<digest of the stored name and its fingerprint>/<the stored file's own name>`, so the copy
    keeps the stored file's name, an unchanged file is fetched once per host and a replaced one anew. Written to a
    temporary file and renamed, so that processes sharing the folder never load half a file.

    Raises FileNotFoundError when the stored file is gone, StorageUnavailable when the storage cannot be read now."""
    storage, name = field_file.storage, field_file.name
    with unavailable_as_retryable():
        key = hashlib.sha256(f"{name}\0{_fingerprint(storage, name)}".encode()).hexdigest()[:32]
        target = Path(folder) / key / PurePosixPath(name).name
        if target.is_file():
            return target
        data = read_media_file(field_file)
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".partial-")
    try:
        with os.fdopen(descriptor, "wb") as partial:
            partial.write(data)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    log.info("copied %s (%d bytes) from the media storage to %s", name, len(data), target)
    return target
