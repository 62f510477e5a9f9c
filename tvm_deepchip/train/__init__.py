"""Quantization-aware training (optional extra `train`: needs torch).

`qat` holds DeepChip's training-time quantizer (ternary weights with learned Wp/Wn, 8-bit
clipped activations); `digits` trains the SVHN ConvNet adapted to scikit-learn's 8x8 digits and
exports it to the standard ONNX form the compiler reads.
"""
