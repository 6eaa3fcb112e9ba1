#!/usr/bin/env bash
# Re-run the baselines that fit a CPU budget on the synthetic twins of the main protocols, then
# regenerate leaderboards/ from the run directories. Resumable: finished folds are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
PROTOCOLS="protocols/ckplus_7cls_si.yaml protocols/ckplus_8cls_si.yaml protocols/ckplus_8cls_random.yaml
  protocols/ckplus_miao_7n_last.yaml protocols/ckplus_miao_7n_last3.yaml protocols/jaffe_7cls_loso.yaml"
.venv/bin/ferbench run $PROTOCOLS --synthetic --models microexpnet_xxs,hog_svm --epochs 10 --out runs
.venv/bin/ferbench leaderboard runs --out leaderboards
