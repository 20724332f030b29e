#!/usr/bin/env bash
# The PTQ methods of part 2 in docs/RESULTS.md, four sections made by
# scripts/results_methods.sh (1000 calibration samples of the train split,
# all 10,000 test images):
#  - cle: per-tensor W8A8 on the CNNs, with and without equalization;
#  - smoothquant: W4A8 on the ViT, fixed and searched alpha, with GPTQ and bias correction;
#  - adaround: W4A8 per channel, AdaRound against GPTQ (both with bias correction);
#  - a4: 4-bit activations (W4A4 per channel, W2A4 in groups of 16) on every model, with and
#    without act-range (consumer-aware activation ranges);
#  - auto: --method auto at W4A4 per channel, with what it picked (not fmnist_mlp: AdaRound,
#    one of its candidates, takes minutes on its 784-input layer).
#   scripts/results_methods2.sh [--update] [QTOOL]
#   env: RESULTS2_ONLY="cle smoothquant adaround a4 auto" (the default) to make some of them
set -euo pipefail
cd "$(dirname "$0")/.."
by='`scripts/results_methods2.sh`'
only=" ${RESULTS2_ONLY:-cle smoothquant adaround a4 auto} "
if [[ $only == *" cle "* ]]; then
	RESULTS_SECTION=methods-cle RESULTS_TITLE="PTQ methods: cross-layer equalization" RESULTS_BY="$by" \
		RESULTS_MODELS="fmnist_mobilenet fmnist_cnn fmnist_resnet" METHODS_CONFIGS="w8a8:tensor" \
		METHODS="rtn bias-correction cle cle,bias-correction" bash scripts/results_methods.sh "$@"
fi
if [[ $only == *" smoothquant "* ]]; then
	RESULTS_SECTION=methods-smoothquant RESULTS_TITLE="PTQ methods: SmoothQuant" RESULTS_BY="$by" \
		RESULTS_MODELS="fmnist_vit" METHODS_CONFIGS="w4a8:channel w8a8:tensor" \
		METHODS="gptq,bias-correction smoothquant=0.5,gptq,bias-correction smoothquant=auto,gptq,bias-correction" \
		bash scripts/results_methods.sh "$@"
fi
if [[ $only == *" adaround "* ]]; then
	RESULTS_SECTION=methods-adaround RESULTS_TITLE="PTQ methods: AdaRound against GPTQ" RESULTS_BY="$by" \
		METHODS_CONFIGS="w4a8:channel w3a8:group32" METHODS="gptq,bias-correction adaround,bias-correction" \
		bash scripts/results_methods.sh "$@"
fi
if [[ $only == *" a4 "* ]]; then
	RESULTS_SECTION=methods-a4 RESULTS_TITLE="PTQ methods: 4-bit activations" RESULTS_BY="$by" \
		METHODS_CONFIGS="w4a4:channel w2a4:group16" \
		METHODS="rtn gptq,bias-correction act-range,gptq,bias-correction" bash scripts/results_methods.sh "$@"
fi
if [[ $only == *" auto "* ]]; then
	RESULTS_SECTION=methods-auto RESULTS_TITLE="PTQ methods: --method auto" RESULTS_BY="$by" \
		RESULTS_MODELS="fmnist_cnn fmnist_mobilenet fmnist_resnet fmnist_vit" METHODS_CONFIGS="w4a4:channel" \
		METHODS="rtn auto" bash scripts/results_methods.sh "$@"
fi
