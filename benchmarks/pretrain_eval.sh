set -e
FROC="--workers 2 --bootstrap 500 --score-threshold 0.001 --detections-per-image 100"
for m in scratch pretrained; do
  .venv/bin/mammocad eval detector --model runs/pre/$m/mammocad-detector --data phantom:n=25,seed=900000,size=full --out runs/pre/eval-$m $FROC
done
.venv/bin/python benchmarks/froc_paired.py runs/pre/eval-scratch runs/pre/eval-pretrained
