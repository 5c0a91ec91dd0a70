set -e
export PYTHONPATH=/work/run/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 KNOWLAB_THREADS=1 TOKENIZERS_PARALLELISM=false
K="/work/main/.venv/bin/python -m knowlab.cli"
M=/work/val/pretrain
cd /work/val
[ -d hold ] || $K data holdout data --out hold
[ -d t-retr ] || $K data tasks hold --out t-retr --tasks retrieval --seed 0
[ -d t-cls ] || $K data tasks hold --out t-cls --tasks classification --hints mixed --seed 0
ft() { # name data steps lr
  [ -f ev-$1/done ] && return 0
  $K train finetune --model $M --data $2 --out ft-$1 --preset tiny eval_every=0 final_eval=false method=full seed=0 steps=$3 full_lr=$4 --overwrite > log-$1 2>&1
  if [ "$2" = hold ]; then $K eval qa ft-$1 --data hold --split test --beams 1 --batch-size 256 --out ev-$1.json >> log-$1 2>&1; mkdir -p ev-$1
  else $K eval tasks ft-$1 --data $2 --out ev-$1 --batch-size 256 --beams 1 --max-rows 0 >> log-$1 2>&1; fi
  touch ev-$1/done; echo "done $1 $(date +%T)"
}
job1() { ft qa hold 75 1e-4; ft r300 t-retr 300 1e-4; ft r175 t-retr 175 1e-4; ft c600 t-cls 600 1e-4; }
job2() { ft c300 t-cls 300 1e-4; ft c300hot t-cls 300 3e-4; }
job1 & job2 & wait
echo ALL_DONE
