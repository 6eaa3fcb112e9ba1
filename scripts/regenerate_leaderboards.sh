#!/usr/bin/env bash
# Re-run the baselines that fit a CPU budget on the synthetic twins of the main protocols, then
# regenerate leaderboards/ from the run directories. Resumable: finished folds are skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
# The set fits about 20 minutes of a 2-core CPU: within-dataset k-fold and LOSO, Miao's 7-class
# set, and one cross-dataset protocol (eye-aligned on both sides).
PROTOCOLS="protocols/ckplus_7cls_si.yaml protocols/ckplus_miao_7n_last.yaml protocols/jaffe_7cls_loso.yaml
  protocols/cross_ckplus_jaffe_cspp.yaml"
.venv/bin/ferbench run $PROTOCOLS --synthetic --models microexpnet_xxs,hog_svm --epochs 10 --out runs --yes
rm -rf leaderboards/*.md leaderboards/*.html leaderboards/confusion leaderboards/plots leaderboards/faces
git checkout -- leaderboards/README.md 2>/dev/null || true
.venv/bin/ferbench leaderboard runs --out leaderboards
