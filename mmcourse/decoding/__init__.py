"""Decoding: turning fused representations back into text, images and audio."""
