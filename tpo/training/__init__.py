"""Stage 4, training: DPO + SFT fine-tuning of a video-LM on exported pairs, and its job."""
