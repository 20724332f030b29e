#!/usr/bin/python3
"""Export the test zoo: torchvision architectures as `torch.onnx.export` writes them.

Run as `/usr/bin/python3 scripts/make_zoo.py [--cache DIR]` (Debian's python3-torch 1.13,
python3-torchvision 0.14 and python3-onnx; only this generator needs them, CI uses the committed
files). Writes tests/zoo/*.onnx, the input data tests/zoo/data*/{x,y}.npy and
tests/zoo/manifest.json. tests/cli/test_zoo.sh quantizes every model, checks that every weighted
layer became integer and that the W8A8 outputs stay within 30 dB SQNR of FP32.

How every model is made:
  - the torchvision class (or its builder) with the architecture unchanged and widths, class count
    and input resolution scaled down so each file stays under 2 MB;
  - weights from torchvision's own initialisation under torch.manual_seed(SEED), then trained to
    high accuracy on a synthetic task (train(): STEPS AdamW steps, warm-up and cosine decay, weight
    decay; ten smooth class prototypes plus noise, fresh samples every step), and BatchNorm's
    running statistics recomputed through the final weights (settle_bn()). The accuracy of each
    model goes into the manifest. A barely trained network is ill-conditioned: its FP32 outputs
    already hinge on the 8-bit rounding of its input, which says nothing about the quantizer;
  - torch.onnx.export with default settings (opset, constant folding, training mode off) and a
    dynamic batch axis "N" on the input and the output; resnet18_hw.onnx also has symbolic H and W
    and keeps its BatchNormalization nodes (see export()). ResNet-18 is trained at 32x32 and
    48x48, the two resolutions resnet18_hw is tested at.

Training takes tens of minutes on a CPU. --cache DIR keeps each trained model in DIR (NAME.pt)
and reuses it; `--cache DIR --only A,B` trains just those into DIR and stops, so several
processes can train disjoint models at once before one plain run with the same --cache exports.
Each model's samples come from its own seeded generator, so the result is the same either way.

Extra fixture: shared_identity.onnx, a small CNN whose one Conv module runs twice (two Conv nodes
on one shared weight initializer), post-processed with the onnx module to read every weight
through an Identity node (as newer exporters write deduplicated initializers) and to compute the
final Reshape's shape from Shape -> Gather -> Unsqueeze -> Concat on static dims.

Data: data32/x.npy holds N32 samples of the same task [N32,3,32,32] float32, data48/x.npy N48 samples
at [3,48,48] (the second resolution for resnet18_hw); y.npy holds their labels. The test
calibrates on all but the last 32 and evaluates on those 32.
"""
import argparse
import hashlib
import json
import math
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
CLASSES = 10
NOISE = 1.0
# Training (train()): AdamW, linear warm-up then cosine decay to 0, fresh samples every step.
STEPS = 1000
BATCH = 64
LR = 2e-3
WD = 0.05
WARMUP = 100
N32, N48 = 160, 64  # samples in data32 and data48 (tests/cli/test_zoo.sh: calibrate on all but the last 32)
SETTLE = 32  # batches of 128 for BatchNorm's final statistics
LR_OF = {"squeezenet": 5e-4}  # no BatchNorm: at 2e-3 its ReLUs die and it stays near chance


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
    # Stochastic depth (a training-time regularizer; identity in the exported graph) off: with it
    # the small model needs several times the steps to converge.
    return efficientnet.EfficientNet(setting, 0.2, stochastic_depth_prob=0.0, last_channel=last,
                                     num_classes=num_classes)


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
    """n images of a random class each: 0.7 x its prototype plus N(0, NOISE^2) noise; and the labels."""
    y = torch.randint(0, CLASSES, (n,), generator=gen)
    return prototypes(gen, res)[y] * 0.7 + NOISE * torch.randn(n, 3, res, res, generator=gen), y


def train(model, gen, lr, multi_res=False):
    """Train model on the prototype task until it is a real classifier: STEPS AdamW steps on
    batches of BATCH fresh samples, the learning rate warmed up linearly to lr for WARMUP steps
    then decayed to 0 on a cosine, decoupled weight decay WD. multi_res: every other batch at 48x48
    (the second resolution resnet18_hw is evaluated at), so the model is trained at both.
    Then BatchNorm's running statistics are settled (settle_bn) and the accuracy measured in eval
    mode on 1024 fresh samples (per resolution). Returns ({res: accuracy}, last loss)."""
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)  # no decay on biases, BN and LayerNorm
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr)

    def lr_at(step):
        if step < WARMUP:
            return (step + 1) / WARMUP
        return 0.5 * (1 + math.cos(math.pi * (step - WARMUP) / (STEPS - WARMUP)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    for step in range(STEPS):
        x, y = samples(gen, BATCH, 48 if multi_res and step % 2 else RES)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    settle_bn(model, gen, multi_res)
    model.eval()
    acc = {}
    with torch.no_grad():
        for res in ((RES, 48) if multi_res else (RES,)):
            x, y = samples(gen, 1024, res)
            acc[res] = float((model(x).argmax(1) == y).float().mean())
    return acc, float(loss)


def settle_bn(model, gen, multi_res):
    """Replace BatchNorm's running statistics, an exponential average over weights that kept
    changing during training, by the plain average over SETTLE batches run through the final
    weights (train-mode passes without gradients; momentum None makes the average cumulative)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        for i in range(SETTLE):
            model(samples(gen, 128, 48 if multi_res and i % 2 else RES)[0])
    model.eval()


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


def trained(name, make, index, cache):
    """The model called name, trained (train()) from torchvision's initialisation under SEED with
    its own sample stream (seed SEED + 100 + index, so each model's weights depend on nothing
    else). With cache (a folder), the weights and figures are kept there as NAME.pt and reused.
    Returns (model in eval mode, {res: accuracy}, last loss)."""
    torch.manual_seed(SEED)
    model = make()
    path = cache and os.path.join(cache, name + ".pt")
    if path and os.path.exists(path):
        saved = torch.load(path)
        model.load_state_dict(saved["state"])
        return model.eval(), saved["accuracy"], saved["loss"]
    gen = torch.Generator().manual_seed(SEED + 100 + index)
    acc, loss = train(model, gen, LR_OF.get(name, LR), name == "resnet18")
    if path:
        os.makedirs(cache, exist_ok=True)
        torch.save({"state": model.state_dict(), "accuracy": acc, "loss": loss}, path)
    return model.eval(), acc, loss


def main():
    ap = argparse.ArgumentParser(description="Export the test zoo to tests/zoo (see the module's docstring).")
    ap.add_argument("--cache", help="folder for the trained weights (NAME.pt), reused when present")
    ap.add_argument("--only", help="comma-separated models: train these into --cache and stop")
    args = ap.parse_args()
    names = [m[0] for m in MODELS]
    only = args.only.split(",") if args.only else None
    if only and (not args.cache or not set(only) <= set(names)):
        sys.exit(f"--only needs --cache and names among {', '.join(names)}")
    os.makedirs(OUT, exist_ok=True)
    entries = []
    built = {}
    for index, (name, arch, make, dyn) in enumerate(MODELS):
        if only and name not in only:
            continue
        if name == "resnet18_hw":
            model, acc, _ = built["resnet18"]  # the same weights, other axes
        else:
            model, acc, loss = trained(name, make, index, args.cache)
            built[name] = (model, acc, loss)
            print(f"{name}: {STEPS} steps, last loss {loss:.4f}, accuracy "
                  + ", ".join(f"{a:.4f} at {r}x{r}" for r, a in acc.items()), flush=True)
        if only:
            continue
        path = os.path.join(OUT, name + ".onnx")
        export(model, path, dyn)
        entries.append((name, arch, path, dyn, acc))
    if only:
        return

    torch.manual_seed(SEED)
    net = SharedConvNet().eval()
    path = os.path.join(OUT, "shared_identity.onnx")
    export(net, path, False)
    identity_alias(path)
    entries.append(("shared_identity", "one Conv module applied twice; weights read through Identity; "
                    "Reshape shape from Shape->Gather->Unsqueeze->Concat->Mul", path, False, None))

    dgen = torch.Generator().manual_seed(SEED + 2)
    for folder, n, res in (("data32", N32, 32), ("data48", N48, 48)):
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
        "weights": f"torchvision init under the seed, then {STEPS} AdamW steps (batch {BATCH}, lr {LR} "
                   f"(per model: {LR_OF}), {WARMUP} warm-up steps then cosine decay to 0, weight decay {WD} on "
                   "weight tensors) on fresh prototype-task samples (see samples(); resnet18 also at 48x48); "
                   f"BatchNorm running stats then averaged over {SETTLE} batches of 128 through the final "
                   "weights; shared_identity untrained",
        "data": {"data32": f"x.npy [{N32},3,32,32] float32 prototype-task samples, y.npy [{N32}] their labels",
                 "data48": f"x.npy [{N48},3,48,48] float32 prototype-task samples, y.npy [{N48}] their labels"},
        "models": [],
    }
    for name, arch, path, dyn, acc in entries:
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
        if acc:
            # Top-1 of the FP32 model in eval mode on 1024 fresh samples per resolution.
            manifest["models"][-1]["accuracy"] = {f"{r}x{r}": round(a, 4) for r, a in acc.items()}
        print(f"{name}: {size} bytes, opset {m.opset_import[0].version}, {sum(ops.values())} nodes")
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
