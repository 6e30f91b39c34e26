"""Hardware-aware training through the behavioral engine (`kelvin train`, `kelvin evaluate`).

- `data`: the Keras-style .npz and the built-in digits, iris and mnist data sets;
- `loss`, `optim`, `schedule`: softmax cross-entropy / MSE, SGD with momentum and Adam, learning-rate schedules;
- `loop`: minibatch training with per-epoch checkpoints, resume, and pipelined updates;
- `export`: trained weights back into the original ONNX graph;
- `commands`: the CLI's train and evaluate, with metrics JSON and the training-curve PNG.
"""
