// Time to pack W (4H, K) gate-interleaved for the stash-free inference step (lstmk_sgemm_pack_b_gates), best of
// `reps`, and a checksum of the packed panels (equal before and after a packing change):
//   pack_gates H K reps
// Build as gemm.c: clang -O2 -I $S/include -I $S Scripts/kernel_bench/pack_gates.c $S/sgemm.c $S/pointwise.c ...
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "LSTMKernels.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int c,char**v){ long H=atol(v[1]),K=atol(v[2]); int reps=atoi(v[3]);
  float*W=aligned_alloc(64,4*H*K*4); for(long i=0;i<4*H*K;i++)W[i]=i*0.001f;
  float*P=aligned_alloc(64,lstmk_sgemm_packed_size(4*H,K)*4+64);
  double best=1e9; for(int r=0;r<reps;r++){double s=now(); lstmk_sgemm_pack_b_gates(H,K,W,1,K,P); double e=now()-s; if(e<best)best=e;}
  double sum=0; for(long i=0;i<4*H*K;i+=97)sum+=P[i];
  printf("pack gates H=%ld K=%ld: %.2f ms (%g)\n",H,K,best*1e3,sum);}
