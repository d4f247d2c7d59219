# Build stage: the project and every dependency as wheels (a compiler, if a dependency
# ever needs one, stays here).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY schemas schemas
COPY hookstream hookstream
COPY processors processors
COPY connectors connectors
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# Final stage: the installed wheels only, run as an unprivileged user.
FROM python:3.11-slim
RUN useradd --system --uid 10001 --no-create-home hookstream
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels hookstream && rm -rf /wheels
USER 10001
ENV HOOKSTREAM_STATE_DIR=/tmp/hookstream
ENTRYPOINT ["hookstream"]
