# modelport platform image: API, workers, beat and Flower share it (see docker-compose.yml).
FROM python:3.11.7-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 modelport
WORKDIR /app

COPY pyproject.toml README.md ./
COPY modelport ./modelport
COPY alembic ./alembic
COPY alembic.ini Procfile ./
# torch first and exactly: the CPU/CUDA wheel choice is made here, not by a range.
RUN pip install torch==2.13.0 && pip install .

USER modelport
ENV HF_HOME=/home/modelport/.cache/huggingface
EXPOSE 5000 5555
CMD ["gunicorn", "--worker-class", "gthread", "--workers", "2", "--threads", "300", "--bind", "0.0.0.0:5000", "modelport.api.wsgi:app"]
