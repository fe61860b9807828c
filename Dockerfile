FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY flowgate_client ./flowgate_client
COPY workers ./workers
# The worker extra: `pip install flowgate` alone is the client (contracts + SDKs).
RUN pip install --no-cache-dir '.[worker]'
USER nobody
CMD ["flowgate", "--help"]
