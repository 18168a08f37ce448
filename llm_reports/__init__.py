"""Narrative reports from count histories with a local LLM and SnapKV-compressed KV cache (the LLM reports issue).

Pure PyTorch and transformers: never imports Django or Celery.
"""
