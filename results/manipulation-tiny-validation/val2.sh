set -e
export PYTHONPATH=/work/run/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 KNOWLAB_THREADS=1 TOKENIZERS_PARALLELISM=false
K="/work/main/.venv/bin/python -m knowlab.cli"
cd /work/val
ft() { # name base data steps lr
  [ -f ev-$1/done ] && return 0
  $K train finetune --model $2 --data $3 --out ft-$1 --preset tiny eval_every=0 final_eval=false method=full seed=0 steps=$4 full_lr=$5 --overwrite > log-$1 2>&1
  $K eval tasks ft-$1 --data $3 --out ev-$1 --batch-size 256 --beams 1 --max-rows 0 >> log-$1 2>&1
  touch ev-$1/done; echo "done $1 $(date +%T)"
}
job1() { ft mp-r175 ft-qa t-retr 175 1e-4; }
job2() { ft mp-c300 ft-qa t-cls 300 1e-4; }
job1 & job2 & wait
echo ALL2_DONE
