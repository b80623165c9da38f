"""Facial landmarks: MediaPipe detection mapped to iBUG-68, canonical alignment, gap filling, drawing."""
