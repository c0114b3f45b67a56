# The bot's image is the wheel, the same artifact tests/test_installed_artifact.py installs and runs.
# Stage 1 builds it (sdist, then the wheel from the sdist, so prompts/ must travel as package data);
# stage 2 installs only the wheel and runs it as an unprivileged user who cannot write to the install.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY bot ./bot
COPY prompts ./prompts
RUN pip install --no-cache-dir "build>=1.2,<2" && python -m build --outdir /dist .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 BOT_DATA_DIR=/data PORT=3000
COPY --from=build /dist/ /tmp/dist/
RUN pip install --no-cache-dir /tmp/dist/concurrency_bot-*.whl && rm -rf /tmp/dist \
    && useradd --create-home --shell /usr/sbin/nologin bot && mkdir -p /data && chown bot /data
USER bot
WORKDIR /data
EXPOSE 3000
# /healthz answers on the port in both Slack modes (HTTP mode and Socket Mode).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${PORT:-3000}/healthz', timeout=4)"
CMD ["sh", "-c", "exec concurrency-bot serve --port \"${PORT:-3000}\""]
