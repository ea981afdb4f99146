"""LoRA files judged from their safetensors header alone: what each key patches, what kind of LoRA a file is
(`kind`), and how much of it applies to the loaded model (`fit`)."""
