set -e
export PYTHONPATH=/work/run/src OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 KNOWLAB_THREADS=1 TOKENIZERS_PARALLELISM=false
K="/work/main/.venv/bin/python -m knowlab.cli"
cd /work/val
ft() { # name base steps lr
  [ -f ev-$1/done ] && return 0
  $K train finetune --model $2 --data t-retr --out ft-$1 --preset tiny eval_every=0 final_eval=false method=lora seed=0 steps=$3 lora_lr=$4 --overwrite > log-$1 2>&1
  $K eval tasks ft-$1 --data t-retr --out ev-$1 --batch-size 256 --beams 1 --max-rows 0 >> log-$1 2>&1
  touch ev-$1/done; echo "done $1 $(date +%T)"
}
job1() { ft lora-r175 pretrain 175 1e-3; ft mp-lora-r175 ft-qa/model 175 1e-3; }
job2() { ft lora-r350 pretrain 350 1e-3; ft mp-lora-r175-3e-4 ft-qa/model 175 3e-4; }
job1 & job2 & wait
echo ALL4_DONE
