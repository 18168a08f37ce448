"""The report benchmark: histories with planted events, an independent check of every sentence, recall and speed."""
