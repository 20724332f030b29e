#!/usr/bin/python3
"""Export the test zoo: torchvision architectures as `torch.onnx.export` writes them.

Run as `/usr/bin/python3 scripts/make_zoo.py` (Debian's python3-torch 1.13, python3-torchvision
0.14 and python3-onnx). Writes tests/zoo/*.onnx, the input data tests/zoo/data*/{x,y}.npy and
tests/zoo/manifest.json. The point of the zoo is the exporter's idioms, not accuracy:
tests/cli/test_zoo.sh quantizes every model and checks that every weighted layer became integer
and that the W8A8 outputs stay within 30 dB SQNR of FP32.

How every model is made:
  - the torchvision class (or its builder) with the architecture unchanged and widths, class count
    and input resolution scaled down so each file stays under 2 MB;
  - weights from torchvision's own initialisation under torch.manual_seed(SEED), then STEPS Adam
    steps on a synthetic task (brief_train): ten smooth class prototypes plus noise. Random weights
    alone make chaotic networks far more sensitive to rounding than trained ones; the training
    also leaves BatchNorm running statistics far from 0 and 1 (BN folding must really fold);
  - torch.onnx.export with default settings (opset, constant folding, training mode off) and a
    dynamic batch axis "N" on the input and the output; resnet18_hw.onnx also has symbolic H and W
    and keeps its BatchNormalization nodes (see export()).

Extra fixture: shared_identity.onnx, a small CNN whose one Conv module runs twice (two Conv nodes
on one shared weight initializer), post-processed with the onnx module to read every weight
through an Identity node (as newer exporters write deduplicated initializers) and to compute the
final Reshape's shape from Shape -> Gather -> Unsqueeze -> Concat on static dims.

Data: data32/x.npy holds 64 samples of the same task [64,3,32,32] float32, data48/x.npy 32 samples at
[3,48,48] (the second resolution for resnet18_hw); y.npy holds their labels.
"""
import hashlib
import json
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torchvision
from onnx import helper, numpy_helper
from torchvision.models import efficientnet, mobilenetv2, mobilenetv3, resnet, shufflenetv2, squeezenet
from torchvision.models.vision_transformer import VisionTransformer

SEED = 20240806
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "zoo")
RES = 32
STEPS = 300
CLASSES = 10


class SmallResNet18(resnet.ResNet):
    """torchvision's ResNet-18 (BasicBlock, [2, 2, 2, 2]) at 1/8 of the widths (8..64 channels)."""

    def __init__(self, num_classes):
        super().__init__(resnet.BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.inplanes = 8
        self.conv1 = nn.Conv2d(3, 8, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = self._make_layer(resnet.BasicBlock, 8, 2)
        self.layer2 = self._make_layer(resnet.BasicBlock, 16, 2, stride=2)
        self.layer3 = self._make_layer(resnet.BasicBlock, 32, 2, stride=2)
        self.layer4 = self._make_layer(resnet.BasicBlock, 64, 2, stride=2)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def small_squeezenet(num_classes):
    """SqueezeNet 1.1 at half the widths of every Fire module."""
    m = squeezenet.SqueezeNet(version="1_1", num_classes=num_classes)
    F = squeezenet.Fire
    m.features = nn.Sequential(
        nn.Conv2d(3, 32, kernel_size=3, stride=2), nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        F(32, 8, 32, 32), F(64, 8, 32, 32),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        F(64, 16, 64, 64), F(128, 16, 64, 64),
        nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True),
        F(128, 24, 96, 96), F(192, 24, 96, 96), F(192, 32, 128, 128), F(256, 32, 128, 128),
    )
    final = nn.Conv2d(256, num_classes, kernel_size=1)
    nn.init.normal_(final.weight, mean=0.0, std=0.01)
    m.classifier = nn.Sequential(nn.Dropout(p=0.5), final, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1)))
    for mod in m.features.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_uniform_(mod.weight)
            nn.init.constant_(mod.bias, 0)
    return m


def small_efficientnet_b0(num_classes):
    """EfficientNet-B0's block list (depth 1.0) at width 0.25."""
    setting, last = efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=1.0)
    return efficientnet.EfficientNet(setting, 0.2, last_channel=last, num_classes=num_classes)


def small_vit(num_classes):
    """torchvision's VisionTransformer: 32x32 images, 8x8 patches, 2 layers, 2 heads, width 32."""
    return VisionTransformer(image_size=RES, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                             num_classes=num_classes)


MODELS = [
    ("resnet18", "torchvision ResNet (BasicBlock, [2,2,2,2]) widths 8/16/32/64",
     lambda: SmallResNet18(CLASSES), False),
    ("resnet18_hw", "resnet18 exported with symbolic H and W, BatchNormalization kept (TrainingMode.PRESERVE)",
     lambda: SmallResNet18(CLASSES), True),
    ("mobilenetv2", "torchvision mobilenet_v2(width_mult=0.25)",
     lambda: mobilenetv2.mobilenet_v2(width_mult=0.25, num_classes=CLASSES), False),
    ("mobilenetv3_small", "torchvision mobilenet_v3_small(width_mult=0.25)",
     lambda: mobilenetv3.mobilenet_v3_small(width_mult=0.25, num_classes=CLASSES), False),
    ("shufflenetv2", "torchvision ShuffleNetV2(stages [4,8,4], channels [24,48,96,192,512])",
     lambda: shufflenetv2.ShuffleNetV2([4, 8, 4], [24, 48, 96, 192, 512], num_classes=CLASSES), False),
    ("squeezenet", "torchvision SqueezeNet 1.1, Fire widths halved", lambda: small_squeezenet(CLASSES), False),
    ("efficientnet_b0", "torchvision EfficientNet-B0 blocks, width_mult 0.25, depth_mult 1.0",
     lambda: small_efficientnet_b0(CLASSES), False),
    ("vit", "torchvision VisionTransformer(image 32, patch 8, 2 layers, 2 heads, hidden 32, mlp 64)",
     lambda: small_vit(CLASSES), False),
]


def prototypes(gen, res):
    """Ten smooth class prototypes (8x8 noise upsampled bilinearly) at resolution res."""
    g = torch.Generator().manual_seed(SEED + 1)
    small = torch.randn(CLASSES, 3, 8, 8, generator=g)
    return nn.functional.interpolate(small, size=res, mode="bilinear", align_corners=False)


def samples(gen, n, res):
    """n images of a random class each: 0.7 x its prototype plus N(0, 1) noise; and the labels."""
    y = torch.randint(0, CLASSES, (n,), generator=gen)
    return prototypes(gen, res)[y] * 0.7 + torch.randn(n, 3, res, res, generator=gen), y


def brief_train(model, gen, steps=STEPS):
    """A few hundred Adam steps on the prototype task. Random weights make chaotic networks whose
    outputs hinge on every rounding (8-bit weights alone cost ResNet-18 ~16 dB); brief training
    gives the ordinary conditioning of a trained model. BatchNorm running statistics come from
    these train-mode passes, so they are far from the trivial 0 and 1."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(steps):
        x, y = samples(gen, 32, RES)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y = samples(gen, 256, RES)
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean()), float(loss)


def export(model, path, dynamic_hw):
    axes = {0: "N", 2: "H", 3: "W"} if dynamic_hw else {0: "N"}
    dummy = torch.zeros(1, 3, RES, RES)
    # The exporter folds eval-mode BatchNorm into the Conv before it writes the file; the
    # symbolic-H/W variant keeps them (TrainingMode.PRESERVE on a model in eval mode writes
    # inference BatchNormalization nodes) so qtool's own folding runs on real exporter output.
    extra = {"training": torch.onnx.TrainingMode.PRESERVE} if dynamic_hw else {}
    torch.onnx.export(model, dummy, path, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": axes, "logits": {0: "N"}}, **extra)


class SharedConvNet(nn.Module):
    """One 3x3 conv module applied twice (shared weight), a classifier on the flattened map."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.shared = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(4)
        self.fc = nn.Linear(8 * 8 * 8, CLASSES)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(self.shared(x))
        x = torch.relu(self.shared(x))
        x = self.pool(x)
        return self.fc(x.reshape(x.shape[0], -1))


def identity_alias(path):
    """Route every Conv/Gemm weight and bias through an Identity node and make the Reshape's shape
    a Shape -> Gather -> Unsqueeze -> Concat chain of static dims (C, H, W of the pooled map)."""
    m = onnx.load(path)
    g = m.graph
    inits = {t.name for t in g.initializer}
    alias = {}
    new_nodes = []
    for n in g.node:
        if n.op_type in ("Conv", "Gemm"):
            for k in range(1, len(n.input)):
                src = n.input[k]
                if src not in inits:
                    continue
                if src not in alias:
                    alias[src] = src + "_alias"
                    new_nodes.append(helper.make_node("Identity", [src], [alias[src]], name="Identity_" + src))
                n.input[k] = alias[src]
    for n in list(g.node):
        if n.op_type == "Reshape":
            pooled = n.input[0]
            shp = "static_shape"
            nodes = [helper.make_node("Shape", [pooled], [shp + "_all"], name="shape_of_pooled")]
            parts = []
            for i, d in ((1, "c"), (2, "h"), (3, "w")):
                idx = numpy_helper.from_array(np.array(i, dtype=np.int64), "idx_" + d)
                g.initializer.append(idx)
                nodes.append(helper.make_node("Gather", [shp + "_all", "idx_" + d], ["dim_" + d], axis=0,
                                              name="gather_" + d))
                nodes.append(helper.make_node("Unsqueeze", ["dim_" + d, "axes0"], ["udim_" + d],
                                              name="unsqueeze_" + d))
                parts.append("udim_" + d)
            g.initializer.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "axes0"))
            g.initializer.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "minus1"))
            nodes.append(helper.make_node("Concat", ["minus1"] + parts, [shp + "_cat"], axis=0, name="concat_shape"))
            # The product of C*H*W through constant arithmetic: ReduceProd is not folded by shape,
            # so multiply the three one-element tensors instead.
            nodes.append(helper.make_node("Mul", ["udim_c", "udim_h"], ["chw_0"], name="mul_ch"))
            nodes.append(helper.make_node("Mul", ["chw_0", "udim_w"], ["chw"], name="mul_chw"))
            nodes.append(helper.make_node("Concat", ["minus1", "chw"], [shp], axis=0, name="concat_flat"))
            for k, nn_ in enumerate(g.node):
                if nn_ is n:
                    break
            for j, extra in enumerate(nodes):
                g.node.insert(k + j, extra)
            n.input[1] = shp
    for j, extra in enumerate(new_nodes):
        g.node.insert(j, extra)
    # Topological order for the checker: the Identity nodes come first, the shape chain before the
    # Reshape it feeds (inserted above). Drop the intermediate Concat nobody reads.
    g.node.remove([n for n in g.node if n.name == "concat_shape"][0])
    onnx.checker.check_model(m)
    onnx.save(m, path)


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_npy(path, arr):
    np.save(path, arr, allow_pickle=False)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    entries = []
    built = {}
    for name, arch, make, dyn in MODELS:
        if name == "resnet18_hw":
            model = built["resnet18"]  # the same weights, other axes
        else:
            torch.manual_seed(SEED)
            model = make()
            acc, loss = brief_train(model, gen)
            print(f"{name}: trained {STEPS} steps, last loss {loss:.3f}, accuracy {acc:.3f}", flush=True)
            built[name] = model
        path = os.path.join(OUT, name + ".onnx")
        export(model, path, dyn)
        entries.append((name, arch, path, dyn))

    torch.manual_seed(SEED)
    net = SharedConvNet().eval()
    path = os.path.join(OUT, "shared_identity.onnx")
    export(net, path, False)
    identity_alias(path)
    entries.append(("shared_identity", "one Conv module applied twice; weights read through Identity; "
                    "Reshape shape from Shape->Gather->Unsqueeze->Concat->Mul", path, False))

    dgen = torch.Generator().manual_seed(SEED + 2)
    for folder, n, res in (("data32", 64, 32), ("data48", 32, 48)):
        d = os.path.join(OUT, folder)
        os.makedirs(d, exist_ok=True)
        x, y = samples(dgen, n, res)
        save_npy(os.path.join(d, "x.npy"), x.numpy().astype(np.float32))
        save_npy(os.path.join(d, "y.npy"), y.numpy().astype(np.int64))

    manifest = {
        "generated_by": "scripts/make_zoo.py",
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "onnx_version": onnx.__version__,
        "seed": SEED,
        "export": "torch.onnx.export defaults; input 'input' [N,3,32,32] (N symbolic), output 'logits' [N,10]",
        "weights": f"torchvision init under the seed, then {STEPS} Adam steps (lr 1e-3, batch 32) on the "
                   "prototype task (see samples()); BatchNorm running stats from those train-mode passes",
        "data": {"data32": "x.npy [64,3,32,32] float32 prototype-task samples, y.npy [64] their labels",
                 "data48": "x.npy [32,3,48,48] float32 prototype-task samples, y.npy [32] their labels"},
        "models": [],
    }
    for name, arch, path, dyn in entries:
        m = onnx.load(path)
        ops = {}
        for n in m.graph.node:
            ops[n.op_type] = ops.get(n.op_type, 0) + 1
        size = os.path.getsize(path)
        if size > 2 * 1024 * 1024:
            sys.exit(f"{path}: {size} bytes, more than the 2 MB budget")
        manifest["models"].append({
            "name": name, "file": os.path.basename(path), "arch": arch, "sha256": sha256(path),
            "size_bytes": size, "opset": m.opset_import[0].version,
            "input_shape": ["N", 3, "H", "W"] if dyn else ["N", 3, RES, RES], "op_types": ops,
        })
        print(f"{name}: {size} bytes, opset {m.opset_import[0].version}, {sum(ops.values())} nodes")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
