# cnnviz demo image: the Streamlit app on port 8501.
#   docker build -t cnnviz .
#   docker run --rm -p 8501:8501 cnnviz
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Optional extra index with CPU-only torch builds (keeps the image a few GB smaller).
ARG TORCH_INDEX=""

RUN useradd --create-home --uid 10001 cnnviz
WORKDIR /app

# Dependencies first, so that code changes do not reinstall torch.
COPY requirements.txt ./
COPY docker/install.sh docker/
RUN TORCH_INDEX="${TORCH_INDEX}" sh docker/install.sh deps

COPY pyproject.toml README.md ./
COPY cnnviz/ cnnviz/
COPY docker/ docker/
RUN sh docker/install.sh package

COPY app/ app/
COPY .streamlit/ .streamlit/

USER 10001
EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4)"]
CMD ["sh", "docker/start.sh"]
