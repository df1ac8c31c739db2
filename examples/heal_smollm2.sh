#!/usr/bin/env bash
# The documented healing runs of docs/results.md ("Healing SmolLM2-135M-Instruct (Q4_1)"), one after another on
# a 2-core CPU (about 60 minutes in all): a pure lolcats student, a hybrid keeping softmax attention at the 4 layers
# whose attention the pure run's stage 1 reproduced worst (14, 18, 20, 23), the donor's and the students'
# zero-shot scores on the first 100 documents of each task, and the five prompts side by side.
set -euo pipefail
OUT=${OUT:-runs}
xatl fetch smollm2-135m wiki sotu pydoc evalsuite
xatl heal --donor smollm2-135m --out "$OUT/heal-lolcats" --budget 15m
xatl heal --donor smollm2-135m --out "$OUT/heal-hybrid" --attention-layers 14,18,20,23 --budget 15m
TASKS=piqa,arc_easy,hellaswag,lambada
xatl eval --model smollm2-135m --tasks "$TASKS" --limit 100 --out "$OUT/eval-donor.json"
for s in lolcats hybrid; do
  xatl eval --model "$OUT/heal-$s/train/final" --tasks "$TASKS" --limit 100 --donor-results "$OUT/eval-donor.json" \
    --out "$OUT/eval-$s.json"
done
xatl eval --model "$OUT/heal-lolcats/student" --tasks "$TASKS" --limit 100 --donor-results "$OUT/eval-donor.json" \
  --out "$OUT/eval-unhealed.json"
python examples/compare_prompts.py --donor smollm2-135m --models "$OUT/heal-lolcats/train/final" \
  "$OUT/heal-hybrid/train/final" --labels "lolcats (pure)" "hybrid (4 softmax layers)" --out "$OUT/prompts.md"
