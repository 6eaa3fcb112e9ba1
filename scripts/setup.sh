#!/usr/bin/env bash
# Create .venv and install ferbench with its test extras (torch from the local wheels via pip).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/pip install -q -e ".[test]"
