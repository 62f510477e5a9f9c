"""Quantization-aware training (optional extra `train`: needs torch).

`prepare(model, scheme, keep)` makes any torch model of the usual parts ready for training in
one of DeepChip's schemes ("ternary", "bwn", "xnor"); `export(model, example_input, path)` writes
the trained model in the quantized ONNX form the compiler reads (`prepare_model`, `export_onnx`).
`qat` holds the ternary (TTQ) machinery, `schemes` the binary and 8-bit quantizers, `graph` what
each traced node is; `digits` trains the SVHN ConvNet adapted to scikit-learn's 8x8 digits.
"""
from .export_onnx import export
from .prepare_model import SCHEMES, prepare

__all__ = ["SCHEMES", "export", "prepare"]
