"""The four-step recipe: audio branch, visual branch, fusion with frozen branches, fine-tuning."""
