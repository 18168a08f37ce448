"""Narrative reports from count histories with a local LLM and a SnapKV-compressed KV cache (no Django).

Pure PyTorch and transformers: never imports Django or Celery.
"""
