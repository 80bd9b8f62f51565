#!/usr/bin/env bash
# The README's first command's environment: `pip install -e .`, no extras, so no torch.
# Checks that the app's runtime works there: fer-predict labels the test photo with every
# model and the ensemble, Explain draws without torch, asking for PyTorch is one line,
# and the window starts under Xvfb and labels a video.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv-runtime
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q -e .
py="$venv/bin/python"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

if "$py" -c "import torch" 2>/dev/null; then
  echo "runtime-only: torch is installed by 'pip install -e .'" >&2; exit 1
fi
echo "runtime-only: $(du -sh "$venv" | cut -f1) environment, no torch"

photo=tests/data/astronaut.jpg
for model in baseline_cnn attention_cnn resnet50 resnet50_cbam ensemble; do
  label=$("$venv/bin/fer-predict" "$photo" --model "$model" --json \
          | "$py" -c "import json, sys; print(json.load(sys.stdin)[0]['faces'][0]['label'])")
  echo "runtime-only: fer-predict --model $model: $label"
  [ "$label" = happy ] || { echo "runtime-only: expected happy" >&2; exit 1; }
done
"$venv/bin/fer-predict" "$photo" --model resnet50_cbam --annotate "$out/attention" --explain attention >/dev/null
"$venv/bin/fer-predict" "$photo" --model ensemble --annotate "$out/gradcam" --explain >/dev/null
ls "$out"/attention/* "$out"/gradcam/* >/dev/null
echo "runtime-only: Explain (attention, and the ensemble's Grad-CAM) drew its maps"

set +e
refused=$("$venv/bin/fer-predict" "$photo" --backend torch 2>&1 >/dev/null); status=$?
set -e
if [ "$status" -ne 2 ] || [ "$(printf '%s\n' "$refused" | wc -l)" -ne 1 ] \
   || ! printf '%s' "$refused" | grep -q "fer-desktop\[torch\]"; then
  echo "runtime-only: --backend torch without torch should be one line naming the extra (status 2):" >&2
  echo "$refused" >&2; exit 1
fi
echo "runtime-only: --backend torch says: $refused"

# The window under Xvfb, labelling a video made from the test photo.
"$py" - "$photo" "$out/faces.mp4" <<'PY'
import sys, cv2, numpy as np
face = cv2.resize(cv2.imread(sys.argv[1])[13:193, 46:226], (240, 240))
writer = cv2.VideoWriter(sys.argv[2], cv2.VideoWriter_fourcc(*"mp4v"), 15, (640, 360))
for i in range(60):
    frame = np.full((360, 640, 3), 90, np.uint8)
    x = 200 + int(20 * np.sin(i / 6))
    frame[60:300, x:x + 240] = face
    writer.write(frame)
writer.release()
PY
if command -v xvfb-run >/dev/null; then
  FER_DESKTOP_PLUGIN=bench.window_hooks:screenshot FER_DESKTOP_SMOKE_SCREENSHOT="$out/window.png" FER_DESKTOP_SMOKE_RESULTS=10 QT_QPA_PLATFORM=xcb \
    timeout 180 xvfb-run -a -s "-screen 0 1280x800x24" "$venv/bin/fer-desktop" --source "$out/faces.mp4" \
    --model resnet50_cbam --explain attention | tee "$out/window.log"
  grep -q "results with faces" "$out/window.log" && [ -s "$out/window.png" ]
  echo "runtime-only: the window labelled the video"
else
  echo "runtime-only: xvfb-run missing (apt-get install xvfb xauth): window not checked" >&2; exit 1
fi
