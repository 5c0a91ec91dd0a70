"""The data layer: people, templates, augmentations, QA, tokenizer, dataset folders."""
