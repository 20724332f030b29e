#!/usr/bin/env bash
# The PTQ methods of part 2 in docs/RESULTS.md, three sections made by
# scripts/results_methods.sh (1000 calibration samples of the train split,
# all 10,000 test images):
#  - cle: per-tensor W8A8 on the CNNs, with and without equalization;
#  - smoothquant: W4A8 on the ViT, fixed and searched alpha, with GPTQ and bias correction;
#  - adaround: W4A8 per channel, AdaRound against GPTQ (both with bias correction).
#   scripts/results_methods2.sh [--update] [QTOOL]
set -euo pipefail
cd "$(dirname "$0")/.."
by='`scripts/results_methods2.sh`'
RESULTS_SECTION=methods-cle RESULTS_TITLE="PTQ methods: cross-layer equalization" RESULTS_BY="$by" \
	RESULTS_MODELS="fmnist_mobilenet fmnist_cnn fmnist_resnet" METHODS_CONFIGS="w8a8:tensor" \
	METHODS="rtn bias-correction cle cle,bias-correction" bash scripts/results_methods.sh "$@"
RESULTS_SECTION=methods-smoothquant RESULTS_TITLE="PTQ methods: SmoothQuant" RESULTS_BY="$by" \
	RESULTS_MODELS="fmnist_vit" METHODS_CONFIGS="w4a8:channel w8a8:tensor" \
	METHODS="gptq,bias-correction smoothquant=0.5,gptq,bias-correction smoothquant=auto,gptq,bias-correction" \
	bash scripts/results_methods.sh "$@"
RESULTS_SECTION=methods-adaround RESULTS_TITLE="PTQ methods: AdaRound against GPTQ" RESULTS_BY="$by" \
	METHODS_CONFIGS="w4a8:channel w3a8:group32" METHODS="gptq,bias-correction adaround,bias-correction" \
	bash scripts/results_methods.sh "$@"
