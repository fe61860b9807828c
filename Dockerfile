FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY contracts ./contracts
COPY workers ./workers
RUN pip install --no-cache-dir .
USER nobody
CMD ["flowgate", "--help"]
