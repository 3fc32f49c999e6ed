// Two threads on LSTMKit's worker pool (Sources/_LSTMKernels/pool.c) each multiplying half the columns of a
// prepacked B, as a per-step recurrent product does: wall-clock GFLOP/s (best and median of `reps` calls) and each
// part's own median rate, which separates the kernel from the pool's waits and the VM's jitter between the halves:
//   gemm_threads M N K reps          e.g. 64 2048 512 2000 (charrnn's h·W_hhᵀ)
// Build from the package root:
//   S=Sources/_LSTMKernels; clang -O2 -I $S/include -I $S Scripts/kernel_bench/gemm_threads.c $S/sgemm.c \
//     $S/pointwise.c $S/pool.c -o /tmp/gemm_threads -lm -pthread
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "LSTMKernels.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
typedef struct {long M,N,K; float*A,*P,*C; double t[2][4000]; int rep;} ctx_t;
static void task(void*c, ptrdiff_t part){ ctx_t*x=c; double s=now(); long h=x->N/2;
  lstmk_sgemm_prepacked(x->M,part*h,(part+1)*h,x->N,x->K,x->A,x->K,1,x->P,x->C,x->N,1,NULL); x->t[part][x->rep]=now()-s;}
int cmp(const void*a,const void*b){double d=*(double*)a-*(double*)b;return d<0?-1:d>0;}
int main(int argc,char**argv){
  long M=atol(argv[1]),N=atol(argv[2]),K=atol(argv[3]); int reps=atoi(argv[4]);
  float*A=aligned_alloc(64,M*K*4),*B=aligned_alloc(64,K*N*4),*C=aligned_alloc(64,M*N*4);
  for(long i=0;i<M*K;i++)A[i]=(i%7)*0.1f; for(long i=0;i<K*N;i++)B[i]=(i%5)*0.01f; for(long i=0;i<M*N;i++)C[i]=0;
  float*P=aligned_alloc(64,lstmk_sgemm_packed_size(N,K)*4);
  lstmk_sgemm_pack_b(N,K,B,N,1,P);
  lstmk_pool*pool=lstmk_pool_create(1);
  ctx_t*x=calloc(1,sizeof(ctx_t)); x->M=M;x->N=N;x->K=K;x->A=A;x->P=P;x->C=C;
  double w[4000];
  for(int r=0;r<reps;r++){x->rep=r;double s=now(); lstmk_pool_run(pool,2,task,x); w[r]=now()-s;}
  qsort(w,reps,8,cmp); qsort(x->t[0],reps,8,cmp); qsort(x->t[1],reps,8,cmp);
  double f=2.0*M*N*K;
  printf("%ldx%ldx%ld 2 threads: wall best %.1f med %.1f GFLOP/s | part0 med %.1f part1 med %.1f (per-thread GFLOP/s)\n",M,N,K,f/w[0]/1e9,f/w[reps/2]/1e9,f/2/x->t[0][reps/2]/1e9,f/2/x->t[1][reps/2]/1e9);
}
