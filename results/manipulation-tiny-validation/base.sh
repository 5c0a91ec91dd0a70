set -e
export PYTHONPATH=/work/run/src
K="/work/main/.venv/bin/python -m knowlab.cli"
$K data generate --out /work/val/data people=250 seed=0 values_per_attribute=20 variant=multi5+permute+fullname vocab_size=4096
$K train pretrain --data /work/val/data --out /work/val/pretrain --preset tiny --resume auto checkpoint_every=200 optim.warmup_steps=50 seed=0 steps=800
echo BASE_DONE
