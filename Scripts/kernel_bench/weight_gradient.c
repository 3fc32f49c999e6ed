// A weight-gradient product C (M, N) += Aᵀ·B with A read in place (K × M, row stride M: δZ of T·B rows), split by
// rows over `parts` parts of LSTMKit's worker pool, as LSTM's δW = δZᵀ·H is: wall-clock time and GFLOP/s (median of
// `reps`) and each part's median time:
//   weight_gradient M N K reps [parts]     e.g. 512 128 1600 2000 2 (small's δW_hh)
// Build from the package root:
//   S=Sources/_LSTMKernels; clang -O2 -I $S/include -I $S Scripts/kernel_bench/weight_gradient.c $S/sgemm.c \
//     $S/pointwise.c $S/pool.c -o /tmp/weight_gradient -lm -pthread
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "LSTMKernels.h"
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}
typedef struct {long M,N,K,parts; float*A,*B,*C; double t[8][4000]; int rep;} ctx_t;
static void task(void*c, ptrdiff_t part){ ctx_t*x=c; double s=now(); long h=x->M/x->parts;
  lstmk_sgemm(h,x->N,x->K,x->A+part*h,1,x->M,x->B,x->N,1,x->C+part*h*x->N,x->N,1); x->t[part][x->rep]=now()-s;}
int cmp(const void*a,const void*b){double d=*(double*)a-*(double*)b;return d<0?-1:d>0;}
int main(int argc,char**argv){
  long M=atol(argv[1]),N=atol(argv[2]),K=atol(argv[3]); int reps=atoi(argv[4]); long parts=argc>5?atol(argv[5]):2;
  float*A=aligned_alloc(64,M*K*4),*B=aligned_alloc(64,K*N*4),*C=aligned_alloc(64,M*N*4);
  for(long i=0;i<M*K;i++)A[i]=(i%7)*0.1f; for(long i=0;i<K*N;i++)B[i]=(i%5)*0.01f; for(long i=0;i<M*N;i++)C[i]=0;
  lstmk_pool*pool=lstmk_pool_create(1);
  ctx_t*x=calloc(1,sizeof(ctx_t)); x->M=M;x->N=N;x->K=K;x->A=A;x->B=B;x->C=C;x->parts=parts;
  double w[4000];
  for(int r=0;r<reps;r++){x->rep=r;double s=now(); lstmk_pool_run(pool,parts,task,x); w[r]=now()-s;}
  qsort(w,reps,8,cmp); for(int p=0;p<parts;p++) qsort(x->t[p],reps,8,cmp);
  double f=2.0*M*N*K;
  printf("%ldx%ldx%ld %ld parts: wall med %.1f us (%.1f GFLOP/s) | part med us:",M,N,K,parts,w[reps/2]*1e6,f/w[reps/2]/1e9);
  for(int p=0;p<parts;p++) printf(" %.1f", x->t[p][reps/2]*1e6); printf("\n");
}
