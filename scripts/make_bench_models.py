#!/usr/bin/python3
"""Write the benchmark models of `make bench-ort` into a folder (build/bench_ort).

torchvision ResNet-18 and MobileNetV2 at 224x224 with random weights from a
fixed seed (speed does not depend on the weight values; nothing is
downloaded), exported by torch.onnx.export with its default settings and a
dynamic batch axis, plus one folder of random-input samples per model (and for the bundled
fmnist_vit) for
`qtool calibrate --data npy:DIR`.

    /usr/bin/python3 scripts/make_bench_models.py OUTDIR [N_CALIB]

Needs Debian's python3-torch and python3-torchvision. Never committed: the
files are regenerated on demand into build/.
"""
import os
import sys

import numpy as np
import torch
import torchvision


def randomize_batchnorm(model):
    """Give every BatchNorm its own statistics, as a trained model has.

    Freshly built torchvision models have identical BatchNorms (mean 0, var
    1, weight 1, bias 0): folded into the convs they give equal bias tensors,
    which the exporter deduplicates into Identity nodes, so the file would
    look unlike any trained model."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0.0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0.0, 0.1)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench_ort"
    n_calib = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    for name, ctor in (("resnet18", torchvision.models.resnet18), ("mobilenet_v2", torchvision.models.mobilenet_v2)):
        path = os.path.join(out, name + ".onnx")
        if not os.path.exists(path):
            model = ctor(weights=None).eval()
            randomize_batchnorm(model)
            x = torch.randn(1, 3, 224, 224)
            tmp = path + ".tmp"
            torch.onnx.export(model, x, tmp, input_names=["input"], output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
            os.replace(tmp, path)
        cal = os.path.join(out, name + "_calib")
        os.makedirs(cal, exist_ok=True)
        # Inputs like ImageNet after normalisation: roughly N(0, 1) per channel.
        for i in range(n_calib):
            np.save(os.path.join(cal, "%04d.npy" % i), rng.standard_normal((3, 224, 224)).astype(np.float32))
        print(path)
    # The bundled ViT's calibration inputs: Fashion-MNIST-like values in [0, 1).
    cal = os.path.join(out, "fmnist_vit_calib")
    os.makedirs(cal, exist_ok=True)
    for i in range(n_calib):
        np.save(os.path.join(cal, "%04d.npy" % i), rng.random((1, 28, 28), dtype=np.float32))


if __name__ == "__main__":
    main()
