#!/bin/sh
# A/B of free_probe: before (/tmp/bh0) and after (/tmp/b), interleaved, 3 runs each
export FI_TCP_IFACE=lo HYDRA_IFACE=lo DSM_HEAP_SIZE=64G DSM_PROVIDER=shm
for run in 1 2 3; do
 for v in before after; do
  lib=/tmp/b; [ $v = before ] && lib=/tmp/bh0
  for args in "1" "16" "256" "16 200 shared"; do
   printf "%s %s: " $v "$args"
   LD_LIBRARY_PATH=$lib mpiexec -n 2 /tmp/free_probe $args 2>&1 | grep -o "median.*"
  done
 done
done
