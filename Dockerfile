# The livecommerce server image: one app node. PostgreSQL and Redis come from docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOST=0.0.0.0 PORT=8080 DATA_DIR=/var/lib/livecommerce
WORKDIR /app
COPY pyproject.toml README.md ./
COPY livecommerce ./livecommerce
COPY web ./web
COPY migrations ./migrations
RUN pip install --no-cache-dir . \
    && useradd --system --home /var/lib/livecommerce --create-home livecommerce
USER livecommerce
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/readyz').status != 200)"
CMD ["livecommerce", "serve"]
