"""The PinCLIP encoder: model, shared preprocessing, ONNX export and the serving runtime.

Owns: the model definition (`config`, `towers`, `fusion`, `model`), preprocessing shared by
training and serving (`preprocess`, `tokenizer`), export to a versioned model directory
(`export`, `manifest`), and serving (`runtime` onnxruntime sessions, `batcher` asyncio
micro-batching, `service` versioned, hot-swappable embedding).

Imports nothing of ours. Serving modules (`preprocess`, `tokenizer`, `manifest`, `runtime`,
`batcher`, `service`) never import torch or transformers; only `towers`, `fusion`, `model` and
`export` do. This file imports nothing, so `import encoder` stays light.
"""
