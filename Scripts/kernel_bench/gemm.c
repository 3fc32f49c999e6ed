// One-core GFLOP/s of the C kernel's Float product (Sources/_LSTMKernels/sgemm.c), best of `reps` calls:
//   gemm M N K reps [mode]   mode 0: B prepacked once (the recurrent weights), 1: plain (B packed per call)
// Build from the package root (the Swift toolchain's clang; gcc generates worse code for these kernels):
//   S=Sources/_LSTMKernels; clang -O2 -I $S/include -I $S Scripts/kernel_bench/gemm.c $S/sgemm.c $S/pointwise.c \
//     -o /tmp/gemm -lm -pthread && /tmp/gemm 32 128 1024 2000 0
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "LSTMKernels.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
int main(int argc,char**argv){
  long M=atol(argv[1]),N=atol(argv[2]),K=atol(argv[3]); int reps=atoi(argv[4]); int mode=argc>5?atoi(argv[5]):0;
  float*A=aligned_alloc(64,M*K*4),*B=aligned_alloc(64,K*N*4),*C=aligned_alloc(64,M*(N+16)*4);
  for(long i=0;i<M*K;i++)A[i]=(i%7)*0.1f; for(long i=0;i<K*N;i++)B[i]=(i%5)*0.01f;
  float*P=aligned_alloc(64,lstmk_sgemm_packed_size(N,K)*4);
  lstmk_sgemm_pack_b(N,K,B,N,1,P);
  double best=1e9;
  for(int r=0;r<reps;r++){double s=now();
    if(mode==0) lstmk_sgemm_prepacked(M,0,N,N,K,A,K,1,P,C,N+16,1,NULL);
    else lstmk_sgemm(M,N,K,A,K,1,B,N,1,C,N+16,0);
    double e=now()-s; if(e<best)best=e;}
  printf("%ldx%ldx%ld mode %d: %.1f GFLOP/s\n",M,N,K,mode,2.0*M*N*K/best/1e9);
}
