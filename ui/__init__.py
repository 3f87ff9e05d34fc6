"""TPO Studio's Gradio interface: one module per tab, plus the server that hosts them.

Handlers here only parse input, call :mod:`tpo`, and turn errors into messages; they never
import torch or transformers.
"""
