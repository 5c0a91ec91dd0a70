set -e
export PYTHONPATH=/work/run/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 KNOWLAB_THREADS=1 TOKENIZERS_PARALLELISM=false
K="/work/main/.venv/bin/python -m knowlab.cli"
M=/work/val/pretrain
cd /work/val
ft() { # name steps lr seed
  [ -f ev-$1/done ] && return 0
  $K train finetune --model $M --data t-retr --out ft-$1 --preset tiny eval_every=0 final_eval=false method=full seed=$4 steps=$2 full_lr=$3 --overwrite > log-$1 2>&1
  $K eval tasks ft-$1 --data t-retr --out ev-$1 --batch-size 256 --beams 1 --max-rows 0 >> log-$1 2>&1
  touch ev-$1/done; echo "done $1 $(date +%T)"
}
job1() { ft r75 75 1e-4 0; ft r175-lr5e-5 175 5e-5 0; }
job2() { ft r125 125 1e-4 0; ft r175-s1 175 1e-4 1; }
job1 & job2 & wait
echo ALL3_DONE
