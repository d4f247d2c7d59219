FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY hookstream hookstream
COPY processors processors
COPY connectors connectors
COPY schemas schemas
RUN pip install --no-cache-dir -e .
ENTRYPOINT ["hookstream"]
