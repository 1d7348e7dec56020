# cnnviz demo image: the Streamlit app on port 8501.
#   docker build -t cnnviz .                  # CPU torch, the default: about 1.6 GB
#   docker run --rm -p 8501:8501 cnnviz
# GPU variant for the Timing page's GPU timing (CUDA torch: several GB; cu1xx is a CUDA version
# that PyTorch publishes torch==2.13.0 for and your driver supports, e.g. cu128):
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu1xx -t cnnviz:cuda .
#   docker run --rm --gpus all -p 8501:8501 cnnviz:cuda
# CI builds this file with buildah and checks the image: docker/test_image.sh.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An extra package index for torch. The default, PyTorch's CPU index, holds torch==2.13.0 as
# 2.13.0+cpu, which pip prefers to PyPI's 2.13.0 (a CUDA build that pulls several GB of nvidia-*
# wheels): the pin matches both, and a local version sorts above its public one. Everything else
# still comes from PyPI. A CUDA index (.../whl/cu1xx) or an empty value (PyPI's default build)
# gives a GPU image; CI passes an empty value and mounts its local package configuration.
ARG TORCH_INDEX="https://download.pytorch.org/whl/cpu"

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
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/_stcore/health' % os.environ.get('PORT', '8501'), timeout=4)"]
CMD ["sh", "docker/start.sh"]
