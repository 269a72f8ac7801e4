"""mixsweep: reproducible sweeps for the stability of finetuning pretrained language models."""

__version__ = "0.1.0"
